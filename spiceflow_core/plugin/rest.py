"""REST access for venue plugins: one httpx client per venue with request spacing,
retries with backoff (``stamina``), and the exchanges' rate-limit answers (429 +
Retry-After, 418) honoured, so several instruments resyncing at once never trigger a ban.

A call that fails for good raises :class:`RestError` whose message says what was tried:
``GET <url> failed after 3.52 s (5 attempts): HTTP 503 Service Unavailable: ...`` (or
connection refused, DNS lookup failed, TLS error, timeout; see
:mod:`spiceflow_core.net_errors`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import stamina
from loguru import logger

from spiceflow_core.net_errors import HttpStatusError, classify, describe
from spiceflow_core.plugin.answers import RestError, RestResponse

__all__ = ["RestClient", "RestError", "RestResponse"]


class _RateLimited(HttpStatusError):
    """429 / 418: retried once the client-wide pause it set has passed."""


class RestClient:
    """Serialises and spaces a venue's REST calls.

    ``min_interval`` spaces consecutive requests; a 429/418 answer pauses every
    request of this client for ``Retry-After`` seconds (or the current backoff when
    absent). Transport errors and 5xx answers are retried with exponential backoff and
    jitter, up to ``retries`` times; other 4xx answers are not retried.
    ``on_response`` (used by ``spiceflow record``) sees every successful body.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        min_interval: float = 0.0,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        on_response: Callable[[str, int, bytes], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.min_interval = min_interval
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_response = on_response
        self._timeout = timeout
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._lock = anyio.Lock()
        self._next_allowed = 0.0
        self.requests = 0
        self.failures = 0
        self.rate_limited = 0

    @property
    def timeout(self) -> float:
        """Seconds each request may take (connect, write, read, each); retried after."""
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._timeout = seconds
        self._client.timeout = httpx.Timeout(seconds)

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    async def get_bytes(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        """GET and return the body of a 2xx answer, retrying transient failures."""
        return (await self.get(path, params)).body

    async def get(self, path: str, params: dict[str, Any] | None = None) -> RestResponse:
        """GET and return the 2xx answer (status, headers, body), retrying transient
        failures; raises RestError once they are exhausted or the answer is final."""
        url = self.url(path)
        started = time.monotonic()
        attempts = 0
        try:
            async for attempt in stamina.retry_context(
                on=_retry_decision,
                attempts=self.retries + 1,
                timeout=None,
                wait_initial=self.backoff,
                wait_max=self.max_backoff,
                wait_jitter=self.backoff,
            ):
                with attempt:
                    attempts = attempt.num
                    return await self._attempt(url, params, attempt.num, attempt.next_wait)
        except (httpx.TransportError, HttpStatusError) as exc:
            elapsed = time.monotonic() - started
            raise RestError(
                describe("GET", url, exc, elapsed=elapsed, attempts=attempts, timeout=self._timeout)
            ) from exc
        raise AssertionError("unreachable: stamina returns or raises")  # pragma: no cover

    async def _attempt(self, url: str, params: dict[str, Any] | None, num: int, backoff: float) -> RestResponse:
        """One request; ``backoff`` is the wait before the next attempt should this one fail."""
        await self._wait_turn()
        self.requests += 1
        try:
            response = await self._client.get(url, params=params)
        except httpx.TransportError as exc:
            self._failed(url, exc, num, backoff)
            raise
        if response.status_code < 300:
            body = response.content
            if self.on_response is not None:
                self.on_response(str(response.url), response.status_code, body)
            return RestResponse(str(response.url), response.status_code, dict(response.headers.items()), body)
        status, reason, text = response.status_code, response.reason_phrase, response.content[:200]
        if status in (429, 418):
            self.rate_limited += 1
            pause = _retry_after(response) or backoff
            logger.warning("rate limited by {} ({}), pausing {:.2f}s", url, status, pause)
            # every request of this client waits, not only this one (see _wait_turn)
            self._next_allowed = max(self._next_allowed, time.monotonic() + pause)
            raise _RateLimited(status, reason, text)
        error = HttpStatusError(status, reason, text)
        self._failed(url, error, num, backoff)
        raise error

    def _failed(self, url: str, exc: Exception, num: int, backoff: float) -> None:
        self.failures += 1
        if num <= self.retries and _retry_decision(exc) is True:
            cause = classify(exc, url, timeout=self._timeout)
            if isinstance(exc, httpx.TransportError):  # the library's name helps a search
                cause = f"{type(exc).__name__}: {cause}"
            logger.warning("GET {} failed ({}), retry {} in {:.2f}s or more", url, cause, num, backoff)

    async def _wait_turn(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next_allowed > now:
                await anyio.sleep(self._next_allowed - now)
            self._next_allowed = time.monotonic() + self.min_interval


def _retry_decision(exc: Exception) -> bool | float:
    """stamina's hook: retry transport errors and 5xx with its backoff; a rate limit
    right away (the pause it set is waited for in ``_wait_turn``); nothing else."""
    if isinstance(exc, _RateLimited):
        return 0.0
    if isinstance(exc, HttpStatusError):
        return exc.status >= 500
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
