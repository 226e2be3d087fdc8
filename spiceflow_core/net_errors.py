"""Why a connection could not be made, in words an operator can act on.

One classifier for the REST client and the WebSocket transports, so a venue that cannot
be reached says the same thing whichever way it was tried: the URL, how long it took
and how many attempts, and the cause (DNS lookup, refused, TLS, timeout, HTTP status)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpcore
import httpx

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class HttpStatusError(Exception):
    """The server answered, but not with what was asked for (a REST error status or
    a WebSocket upgrade refused)."""

    def __init__(self, status: int, reason: str = "", body: bytes = b"") -> None:
        self.status = status
        self.reason = reason
        self.body = body
        super().__init__(status, reason, body)

    def __str__(self) -> str:
        text = f"HTTP {self.status}"
        if self.reason:
            text += f" {self.reason}"
        snippet = self.body[:200].decode("utf-8", "replace").strip()
        return f"{text}: {snippet}" if snippet else text


def host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "", port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` then what it wraps (cause, context, group members), outermost first."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for inner in (current.__cause__, current.__context__):
            if inner is not None:
                todo.append(inner)


def _status_of(exc: BaseException) -> str | None:
    if isinstance(exc, HttpStatusError):
        return str(exc)
    # websockets' InvalidStatus carries the refusing response (status_code, reason_phrase, body)
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        body = getattr(response, "body", b"")
        body = bytes(body) if isinstance(body, bytes | bytearray | memoryview) else b""
        return str(HttpStatusError(status, str(getattr(response, "reason_phrase", "")), body))
    return None


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError | httpx.TimeoutException | httpcore.TimeoutException)


def classify(exc: BaseException, url: str, *, timeout: float | None = None) -> str:
    """The cause of a failed connection or request to ``url``, e.g. ``connection refused
    (127.0.0.1:9443)``. The outermost recognisable error wins: a timeout whose wait was
    interrupted inside the TLS code is a timeout, not a TLS error."""
    host, port = host_port(url)
    for cause in _causes(exc):
        status = _status_of(cause)
        if status is not None:
            return status
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed for {host} ({cause.strerror or cause})"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused ({host}:{port})"
        if _is_timeout(cause):
            return f"timeout (after {timeout:g} s)" if timeout is not None else "timeout"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS error ({cause.verify_message or cause})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error ({cause.reason or cause})"
    innermost = list(_causes(exc))[-1]
    return f"{type(innermost).__name__}: {innermost}" if str(innermost) else type(innermost).__name__


def describe(
    action: str,
    url: str,
    exc: BaseException,
    *,
    elapsed: float,
    attempts: int = 1,
    timeout: float | None = None,
) -> str:
    """``"<action> <url> failed after 0.52 s (1 attempt): connection refused (host:port)"``."""
    plural = "attempt" if attempts == 1 else "attempts"
    return f"{action} {url} failed after {elapsed:.2f} s ({attempts} {plural}): {classify(exc, url, timeout=timeout)}"
