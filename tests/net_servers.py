"""Loopback servers that fail in the ways a venue can be unreachable: nothing listening,
a server that accepts and never answers, one that answers plain bytes (to a TLS client:
a TLS error; to an HTTP or WebSocket client: the status it writes)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

import anyio
import anyio.abc

FORBIDDEN = (
    b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nforbidden\n"
)
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
UNRESOLVABLE_HOST = "nonexistent.invalid"  # RFC 6761: .invalid never resolves


def closed_port() -> int:
    """A loopback port with nothing listening (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _serve(handler) -> AsyncIterator[int]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        yield int(listener.extra(anyio.abc.SocketAttribute.local_port))
        tg.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never sends a byte; yields its port."""

    async def handler(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep_forever()

    async with _serve(handler) as port:
        yield port


@contextlib.asynccontextmanager
async def answering_server(answer: bytes) -> AsyncIterator[int]:
    """Reads what the client sends first, writes ``answer`` and hangs up; yields its port."""

    async def handler(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await stream.receive()
                await stream.send(answer)

    async with _serve(handler) as port:
        yield port
