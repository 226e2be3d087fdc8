"""What stands between the network and the control API: the bearer token (compared in
constant time, never logged), the request body limit (413 before the body is read
whole), and the rule that a non-loopback address needs a token.

An ASGI middleware rather than Starlette handlers, so it runs before routing and sees
the body as it streams in.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from spiceflow_core.api.page import PAGE_PATHS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

#: request bodies larger than this are refused with 413
MAX_BODY_BYTES = 64 * 1024
#: health probes answer without a token (orchestrators probe without credentials; the
#: answers hold no market data and no configuration), and so do the status page's static
#: files (the page asks for the token and sends it on its data requests)
PUBLIC_PATHS = frozenset({"/health/live", "/health/ready"}) | PAGE_PATHS
TOKEN_ENV = "SPICEFLOW_API_TOKEN"


def api_token(configured: str | None) -> str | None:
    """The token in force: ``SPICEFLOW_API_TOKEN`` when set, else ``[api] token``."""
    return os.environ.get(TOKEN_ENV) or configured or None


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def quoted(text: str, limit: int = 64) -> str:
    """User input as it may appear in an error message: quoted, cut to ``limit``."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"… ({len(text)} characters)"


async def _answer(send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A refusal before the body is read. The server closes the connection after a
    response that leaves request bytes unread; ``connection: close`` tells the client,
    which would otherwise send its next request on a connection about to close."""
    body = msgspec.json.encode({"error": error})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app: Asgi, *, token: str | None, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self._expected is not None and scope.get("path") not in PUBLIC_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await _answer(send, 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")])
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _answer(send, 413, f"request body over {self.max_body} bytes")
            return
        # Read the body up to the limit before the app sees it: a larger one is refused
        # as soon as it crosses the limit, never read whole.
        chunks: list[bytes] = []
        received = 0
        # whatever the method: a body left unread (a GET may carry one) would close the
        # connection under the client's next request
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body:
                await _answer(send, 413, f"request body over {self.max_body} bytes")
                return
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
