"""What a REST call gives a venue plugin: an answer (:class:`RestResponse`) or a failure
(:class:`RestError`). Apart from the client (``spiceflow_core.plugin.rest``), so the plugin
contract and offline commands (``replay``) load without the HTTP stack."""

from __future__ import annotations

import msgspec


class RestError(Exception):
    """A REST call that failed after its retries; the message names URL, time spent,
    attempts and cause."""


class RestResponse(msgspec.Struct, frozen=True):
    """A successful (2xx) answer. ``headers`` has lower-case names; a repeated header's
    values are joined with ", "."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())
