"""REST access for venue plugins: one httpx client per venue with request spacing,
retries with backoff, and the exchanges' rate-limit answers (429 + Retry-After, 418)
honoured, so several instruments resyncing at once never trigger a ban."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from loguru import logger


class RestError(Exception):
    """A REST call that failed after its retries; the message names URL and cause."""


class RestClient:
    """Serialises and spaces a venue's REST calls.

    ``min_interval`` spaces consecutive requests; a 429/418 answer pauses every
    request of this client for ``Retry-After`` seconds (or a backoff when absent).
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
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._lock = anyio.Lock()
        self._next_allowed = 0.0
        self.requests = 0
        self.failures = 0
        self.rate_limited = 0

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
        url = self.url(path)
        delay = self.backoff
        last = "no attempt"
        for attempt in range(self.retries + 1):
            await self._wait_turn()
            try:
                self.requests += 1
                response = await self._client.get(url, params=params)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    body = response.content
                    if self.on_response is not None:
                        self.on_response(str(response.url), response.status_code, body)
                    return body
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code in (429, 418):
                    self.rate_limited += 1
                    pause = _retry_after(response) or delay
                    logger.warning("rate limited by {} ({}), pausing {:.2f}s", url, response.status_code, pause)
                    self._next_allowed = max(self._next_allowed, time.monotonic() + pause)
                    delay = min(delay * 2, self.max_backoff)
                    continue
                if response.status_code < 500:
                    break  # a client error will not heal by retrying
            self.failures += 1
            if attempt < self.retries:
                logger.warning("GET {} failed ({}), retry {} in {:.2f}s", url, last, attempt + 1, delay)
                await anyio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.max_backoff)
        raise RestError(f"GET {url} failed: {last}")

    async def _wait_turn(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next_allowed > now:
                await anyio.sleep(self._next_allowed - now)
            self._next_allowed = time.monotonic() + self.min_interval


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
