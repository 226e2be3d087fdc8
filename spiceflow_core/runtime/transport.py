"""WebSocket transports behind one small interface.

``httpx-ws`` is the default (the design card's client). ``websockets`` is an optional,
faster transport (about 2.5x less CPU per received frame, see the benchmarks) selected
with ``runtime.transport = "websockets"``; the actors cannot tell them apart."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

import httpx
import httpx_ws
import wsproto.events


class ConnectionLost(Exception):
    """The connection is gone (closed by the peer, reset, or a network error)."""


class WsConnection(Protocol):
    async def send(self, frame: str) -> None: ...
    async def receive(self) -> str | bytes: ...
    async def receive_many(self) -> list[str | bytes]: ...
    async def close(self) -> None: ...


class _HttpxWs:
    def __init__(self, ws: httpx_ws.AsyncWebSocketSession) -> None:
        self._ws = ws
        # httpx-ws queues received events on an anyio memory stream that its public
        # ``receive()`` reads inside ``fail_after(None)`` plus a checkpoint (~10% of the
        # process's CPU at 20,000 frames/s). An event already queued is taken directly;
        # the public call only when we must wait. Falls back to it entirely if a future
        # httpx-ws renames the attribute.
        queue = getattr(ws, "_receive_event", None)
        self._receive_nowait = getattr(queue, "receive_nowait", None)

    async def send(self, frame: str) -> None:
        try:
            await self._ws.send_text(frame)
        except (httpx_ws.HTTPXWSException, OSError, RuntimeError) as exc:
            raise ConnectionLost(f"send failed: {exc!r}") from exc
        except Exception as exc:  # wsproto LocalProtocolError once the peer closed
            raise ConnectionLost(f"send failed: {exc!r}") from exc

    async def receive(self) -> str | bytes:
        while True:
            event = None
            if self._receive_nowait is not None:
                try:
                    event = self._receive_nowait()
                except Exception:  # WouldBlock (nothing queued) or closed: the public call waits / reports
                    event = None
            try:
                if event is None:
                    event = await self._ws.receive()
                elif isinstance(event, httpx_ws.HTTPXWSException):
                    raise event  # as httpx-ws's receive() does
                elif isinstance(event, wsproto.events.CloseConnection):
                    raise httpx_ws.WebSocketDisconnect(event.code, event.reason)
            except httpx_ws.WebSocketDisconnect as exc:
                raise ConnectionLost(f"closed by peer (code {exc.code} {exc.reason or ''})".strip()) from exc
            except httpx_ws.WebSocketNetworkError as exc:
                raise ConnectionLost("network error (connection reset or keepalive timeout)") from exc
            data = getattr(event, "data", None)
            if data is not None:
                return data

    async def receive_many(self) -> list[str | bytes]:
        frames: list[str | bytes] = [await self.receive()]
        if self._receive_nowait is None:
            return frames
        while True:
            try:
                event = self._receive_nowait()
            except Exception:  # WouldBlock: nothing more is buffered
                return frames
            if isinstance(event, httpx_ws.HTTPXWSException | wsproto.events.CloseConnection):
                # Deliver what came before the close now; the next call reports the close.
                self._pending_close = event
                return frames
            data = getattr(event, "data", None)
            if data is not None:
                frames.append(data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()


class _Websockets:
    def __init__(self, ws) -> None:
        self._ws = ws

    async def send(self, frame: str) -> None:
        import websockets

        try:
            await self._ws.send(frame)
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"send failed: {exc}") from exc

    async def receive(self) -> str | bytes:
        import websockets

        try:
            return await self._ws.recv()
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"closed: {exc}") from exc

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()


@contextlib.asynccontextmanager
async def connect(
    url: str,
    *,
    transport: str = "httpx-ws",
    ping_interval: float | None = 20.0,
    max_frame_bytes: int = 4 * 2**20,
    open_timeout: float = 10.0,
) -> AsyncIterator[WsConnection]:
    """Open a WebSocket; connection failures raise ConnectionLost."""
    opened = False
    try:
        if transport == "websockets":
            from websockets.asyncio.client import connect as ws_connect

            async with ws_connect(
                url,
                ping_interval=ping_interval,
                ping_timeout=ping_interval,
                max_size=max_frame_bytes,
                open_timeout=open_timeout,
                compression=None,
            ) as ws:
                opened = True
                yield _Websockets(ws)
        else:
            async with httpx.AsyncClient(timeout=open_timeout) as client, httpx_ws.aconnect_ws(
                url,
                client,
                keepalive_ping_interval_seconds=ping_interval,
                keepalive_ping_timeout_seconds=ping_interval,
                queue_size=4096,
            ) as ws:
                opened = True
                yield _HttpxWs(ws)
    except Exception as exc:
        if opened:
            # httpx-ws wraps what escapes its block in an ExceptionGroup: unwrap one.
            if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                raise exc.exceptions[0] from None
            raise
        raise ConnectionLost(f"cannot connect to {url}: {exc!r}") from exc
