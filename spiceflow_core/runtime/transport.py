"""WebSocket transports behind one small interface.

``websockets`` (the default) is the ``websockets`` library's asyncio client: its
protocol parses frames as the event loop reads the socket, and :meth:`receive_many`
takes every complete message already parsed (at most ``MAX_BATCH``). ``httpx-ws``
(``runtime.transport = "httpx-ws"``) opens the connection with
httpx (the upgrade handshake, TLS, proxies) and then speaks WebSocket itself with
``wsproto`` on httpx's network stream: frames are read and decoded in the task that calls
:meth:`WsConnection.receive_many`, with no background task and no queue between the
socket and the caller. The actors cannot tell them apart. The default is the one that
keeps up with the higher live rate at less CPU per frame (README, Performance).

Both report a failed connect as :class:`ConnectionLost` whose message says what was
tried and why it failed (see :mod:`spiceflow_core.net_errors`)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import httpcore
import httpx
import wsproto.connection
import wsproto.events
import wsproto.utilities
from wsproto.frame_protocol import CloseReason

from spiceflow_core.net_errors import HttpStatusError, describe

if TYPE_CHECKING:  # pragma: no cover
    from websockets.asyncio.client import ClientConnection


class ConnectionLost(Exception):
    """The connection is gone (closed by the peer, reset, or a network error), or could
    not be opened; the message says which."""


class WsConnection(Protocol):
    async def send(self, frame: str) -> None: ...

    async def receive(self) -> str | bytes: ...

    async def receive_many(self) -> list[str | bytes]:
        """Every message already received (at least one; waits only when none is)."""
        ...

    async def close(self) -> None: ...


TRANSPORTS = ("httpx-ws", "websockets")
#: most messages one ``receive_many`` of the websockets transport returns: the messages
#: of a batch are published when its last one has been routed (see
#: ``BroadcastActor.staged``), so this bounds how long the first one waits (about 9 us
#: of routing per frame); a ZeroMQ message holds at most as many bodies (publisher.MAX_BODIES)
MAX_BATCH = 64
_READ_BYTES = 65536
_CLOSE_TIMEOUT = 2.0
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class _Wsproto:
    """A client WebSocket on an upgraded httpx network stream, decoded by the caller.

    Keepalive runs in :meth:`receive_many` too: each read waits at most until the next
    ping is due (or the pong is overdue), so an idle connection is pinged and a dead one
    noticed without a task of its own. The owner keeps calling ``receive_many`` (the
    runtime's reader does), which is also what keeps a live connection's data flowing."""

    def __init__(
        self,
        stream: httpcore.AsyncNetworkStream,
        *,
        ping_interval: float | None,
        max_frame_bytes: int,
        write_timeout: float,
    ) -> None:
        self._stream = stream
        self._ws = wsproto.connection.Connection(wsproto.connection.ConnectionType.CLIENT)
        self._write_lock = anyio.Lock()
        self._write_timeout = write_timeout
        self._max_frame_bytes = max_frame_bytes
        self._partial: list[str | bytes] = []
        self._partial_size = 0
        self._ping_interval = ping_interval
        self._next_ping = time.monotonic() + ping_interval if ping_interval else math.inf
        self._pong_deadline: float | None = None
        self._ping_payload = b""
        self._lost: str | None = None  # once set, every call raises ConnectionLost with it
        self._ready: list[str | bytes] = []  # decoded, not handed out yet

    # -- receiving ---------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        if not self._ready:
            self._ready = await self.receive_many()  # hand out the first, keep the rest
        return self._ready.pop(0)

    async def receive_many(self) -> list[str | bytes]:
        # Decoded messages wait in ``_ready`` until returned, so a cancellation between
        # decoding and returning (a pong write, say) loses none of them.
        while not self._ready:
            if self._lost is not None:
                raise ConnectionLost(self._lost)
            timeout = await self._keepalive() if self._ping_interval else None
            if self._lost is not None:
                continue
            try:
                data = await self._stream.read(_READ_BYTES, timeout)
            except httpcore.ReadTimeout:
                continue  # time for a ping, or to give up waiting for the pong
            except (httpcore.ReadError, OSError) as exc:
                await self._abort(f"network error (connection reset): {exc!r}")
                continue
            if not data:
                await self._abort("connection closed by the peer without a close frame (1006)")
                continue
            self._ws.receive_data(data)
            await self._handle_events()
        frames, self._ready = self._ready, []
        return frames

    async def _handle_events(self) -> None:
        frames = self._ready
        replies: list[bytes] = []
        for event in self._ws.events():
            if isinstance(event, wsproto.events.Message):
                data = event.data
                if self._partial or not event.message_finished:
                    self._partial.append(data)
                    self._partial_size += len(data)
                    if self._partial_size > self._max_frame_bytes:
                        await self._too_big(self._partial_size)
                        return
                    if not event.message_finished:
                        continue
                    data = data[:0].join(self._partial)
                    self._partial.clear()
                    self._partial_size = 0
                elif len(data) > self._max_frame_bytes:
                    await self._too_big(len(data))
                    return
                frames.append(data)
            elif isinstance(event, wsproto.events.Ping):
                replies.append(self._ws.send(event.response()))
            elif isinstance(event, wsproto.events.Pong):
                if event.payload == self._ping_payload:
                    self._pong_deadline = None
            elif isinstance(event, wsproto.events.CloseConnection):
                await self._on_close(event)
                return
        if replies:
            with contextlib.suppress(ConnectionLost):  # reported by the next read
                await self._write(b"".join(replies))

    async def _on_close(self, event: wsproto.events.CloseConnection) -> None:
        reason = f" {event.reason}" if event.reason else ""
        state = self._ws.state
        reply = b""
        if state is wsproto.connection.ConnectionState.REMOTE_CLOSING:  # the peer closes
            message = f"closed by peer (code {event.code}{reason})"
            reply = self._ws.send(event.response())
        elif state is wsproto.connection.ConnectionState.OPEN:  # the peer broke the protocol
            message = f"protocol error from peer (code {event.code}{reason})"
            reply = self._ws.send(wsproto.events.CloseConnection(event.code, event.reason))
        else:  # the answer to our own close, or garbage after it: nothing more to say
            message = f"closed (code {event.code}{reason})"
        if self._lost is None:
            self._lost = message
        if reply:
            with contextlib.suppress(ConnectionLost):
                await self._write(reply)
        await self._close_stream()

    async def _too_big(self, size: int) -> None:
        await self._fail(
            CloseReason.MESSAGE_TOO_BIG,
            f"message of {size}+ bytes exceeds the {self._max_frame_bytes}-byte limit (closed with 1009)",
        )

    async def _keepalive(self) -> float:
        """Send the ping that is due or give up on an overdue pong; the time to wait
        until the next of those."""
        now = time.monotonic()
        if self._pong_deadline is not None:
            if now < self._pong_deadline:
                return self._pong_deadline - now
            await self._fail(
                CloseReason.INTERNAL_ERROR, f"keepalive ping timeout (no pong within {self._ping_interval:g} s)"
            )
            return 0.0
        if now < self._next_ping:
            return self._next_ping - now
        assert self._ping_interval is not None
        self._ping_payload = os.urandom(4)
        self._next_ping = now + self._ping_interval
        self._pong_deadline = now + self._ping_interval
        with contextlib.suppress(ConnectionLost):  # reported by the next read
            await self._write(self._ws.send(wsproto.events.Ping(self._ping_payload)))
        return self._ping_interval

    # -- sending and closing -------------------------------------------------------------

    async def send(self, frame: str) -> None:
        if self._lost is not None:
            raise ConnectionLost(f"send failed: {self._lost}")
        async with self._write_lock:  # encode and write in one turn: frames never interleave
            try:
                data = self._ws.send(wsproto.events.TextMessage(frame))
            except wsproto.utilities.LocalProtocolError as exc:  # closing already
                raise ConnectionLost(f"send failed: {exc}") from exc
            await self._write_locked(data)

    async def _write(self, data: bytes) -> None:
        async with self._write_lock:
            await self._write_locked(data)

    async def _write_locked(self, data: bytes) -> None:
        try:
            await self._stream.write(data, self._write_timeout)
        except (httpcore.WriteError, httpcore.WriteTimeout, OSError) as exc:
            if self._lost is None:
                self._lost = f"network error (write failed): {exc!r}"
            raise ConnectionLost(f"send failed: {exc!r}") from exc

    async def _fail(self, code: int, message: str) -> None:
        """Close with ``code`` because of something on our side; remember why."""
        if self._lost is None:
            self._lost = message
        if self._ws.state is wsproto.connection.ConnectionState.OPEN:
            with contextlib.suppress(ConnectionLost):
                await self._write(self._ws.send(wsproto.events.CloseConnection(code, message[:100])))
        await self._close_stream()

    async def _abort(self, message: str) -> None:
        if self._lost is None:
            self._lost = message
        await self._close_stream()

    async def _close_stream(self) -> None:
        with contextlib.suppress(Exception):
            await self._stream.aclose()

    async def close(self) -> None:
        """Send a normal close and drop the socket. A reader waiting meanwhile gets
        ConnectionLost("closed locally")."""
        # a sender stuck on a full socket holds the write lock: do not wait for it long
        with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await self._fail(CloseReason.NORMAL_CLOSURE, "closed locally")
        with anyio.CancelScope(shield=True):
            await self._close_stream()


def _accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest()).decode()  # RFC 6455 fixes SHA-1 here


@contextlib.asynccontextmanager
async def _open_httpx(
    url: str, *, ping_interval: float | None, max_frame_bytes: int, open_timeout: float
) -> AsyncIterator[_Wsproto]:
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    async with httpx.AsyncClient(timeout=open_timeout) as client:
        with anyio.fail_after(open_timeout):  # the whole handshake, not each of its steps
            response = await client.send(client.build_request("GET", url, headers=headers), stream=True)
        try:
            if response.status_code != 101:
                body = b""
                # the refusal's text, if it comes quickly
                with anyio.move_on_after(_CLOSE_TIMEOUT), contextlib.suppress(httpx.HTTPError):
                    body = await response.aread()
                raise HttpStatusError(response.status_code, response.reason_phrase, body[:200])
            if response.headers.get("Sec-WebSocket-Accept") != _accept_key(key):
                raise ValueError("the server's upgrade answer has a wrong Sec-WebSocket-Accept")
            conn = _Wsproto(
                response.extensions["network_stream"],
                ping_interval=ping_interval,
                max_frame_bytes=max_frame_bytes,
                write_timeout=open_timeout,
            )
            try:
                yield conn
            finally:
                await conn.close()
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()


class _Websockets:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        # The frames websockets' protocol has parsed and not yet handed out (its
        # Assembler's queue, a deque of Frames): receive_many takes every complete
        # message already there without waiting, so what one socket read delivered is
        # routed and published as one batch. Not public API: without it (another
        # websockets version), a batch is one message, as from recv().
        frames = getattr(getattr(ws, "recv_messages", None), "frames", None)
        self._parsed: deque[Any] | None = getattr(frames, "queue", None)

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

    async def receive_many(self) -> list[str | bytes]:
        messages = [await self.receive()]
        parsed = self._parsed
        # a complete message waits when the next frame is a whole one (fin) or ends a
        # fragmented one already queued; recv() then returns it without waiting
        while parsed and len(messages) < MAX_BATCH and (parsed[0].fin or any(f.fin for f in parsed)):
            try:
                messages.append(await self.receive())
            except ConnectionLost:
                break  # the next receive_many raises it again, after these are routed
        return messages

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()


@contextlib.asynccontextmanager
async def _open_websockets(
    url: str, *, ping_interval: float | None, max_frame_bytes: int, open_timeout: float
) -> AsyncIterator[_Websockets]:
    from websockets.asyncio.client import connect as ws_connect

    async with ws_connect(
        url,
        ping_interval=ping_interval,
        ping_timeout=ping_interval,
        max_size=max_frame_bytes,
        open_timeout=open_timeout,
        # a dead peer never completes the close handshake: report it soon, not after 10 s
        close_timeout=_CLOSE_TIMEOUT,
        compression=None,
    ) as ws:
        yield _Websockets(ws)


@contextlib.asynccontextmanager
async def connect(
    url: str,
    *,
    transport: str = "websockets",
    ping_interval: float | None = 20.0,
    max_frame_bytes: int = 4 * 2**20,
    open_timeout: float = 10.0,
) -> AsyncIterator[WsConnection]:
    """Open a WebSocket. A failed connect raises ConnectionLost whose message names the
    URL, the time spent and the cause (DNS, refused, TLS, timeout, HTTP status)."""
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown WebSocket transport {transport!r} (choose from {', '.join(TRANSPORTS)})")
    opener = _open_websockets if transport == "websockets" else _open_httpx
    started = time.monotonic()
    opened = False
    try:
        async with opener(
            url, ping_interval=ping_interval, max_frame_bytes=max_frame_bytes, open_timeout=open_timeout
        ) as conn:
            opened = True
            yield conn
    except Exception as exc:
        if opened:
            raise
        elapsed = time.monotonic() - started
        raise ConnectionLost(describe("WebSocket connect to", url, exc, elapsed=elapsed, timeout=open_timeout)) from exc
