"""The client connections of a simulator whose market and request handling never wait.

Such a simulator queues frames on a :class:`QueuedConnection` and goes on; the
connection's own writer sends them, so one slow client never holds up the market or the
others, and the ``stall`` and ``slow`` faults delay what clients get without touching
the truth. A connection is closed by asking it (``close``, ``send_and_close``): its own
tasks, in the task group of the handler serving it, do the closing, so whoever asks
needs no task group of its own.

:class:`LiveConnections` is the ``ws`` handler to give a ``LoopbackServer``: it serves
each connection (its writer, the venue's per-connection tasks, the read loop calling the
venue's ``on_frame``) and keeps the live ones for the market to publish to.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from spiceflow_core.testkit.faults import FaultSwitches

Frame = str | bytes  # bytes: a binary frame (the ``binary`` fault)


@dataclass
class Delivery:
    """What holds back the writers of one simulator's connections, all at once."""

    faults: FaultSwitches  # ``slow``: seconds every writer sleeps before each frame
    #: monotonic time until which writers send nothing (the ``stall`` fault)
    stall_until: float = 0.0
    #: while True, writers take frames off their queues and never send them
    silent: bool = False

    def stall_remaining(self) -> float:
        return self.stall_until - time.monotonic()

    def stalled(self) -> bool:
        return self.stall_remaining() > 0


class QueuedConnection:
    """One client connection: frames queued by the simulator, sent by its own writer."""

    def __init__(self, conn_id: int, ws: ServerConnection) -> None:
        self.id = conn_id
        self.ws = ws
        #: no more frames are queued (the connection is closing or gone)
        self.closed = False
        self._out: collections.deque[Frame] = collections.deque()
        self._wake = anyio.Event()
        self._close_when_flushed: tuple[int, str] | None = None
        self._close_now: tuple[int, str] | None = None
        self._close_asked = anyio.Event()

    def send(self, frame: Frame) -> None:
        if not self.closed:
            self._out.append(frame)
            self._wake.set()

    def send_and_close(self, frame: Frame, code: int, reason: str) -> None:
        """``frame`` is the last thing the client gets: the writer closes once it is sent."""
        self.send(frame)
        self.closed = True
        self._close_when_flushed = (code, reason)

    def close(self, code: int, reason: str) -> None:
        """Close at once: frames still queued are never sent (a venue dropping clients)."""
        self.closed = True
        if self._close_now is None:
            self._close_now = (code, reason)
            self._close_asked.set()

    def reset(self) -> None:
        """A TCP reset: the client gets no close frame."""
        self.closed = True
        self.ws.transport.abort()

    async def write(self, delivery: Delivery) -> None:
        """Send what is queued until the connection goes away."""
        try:
            while True:
                if not self._out:
                    if self._close_when_flushed is not None:
                        await self.ws.close(*self._close_when_flushed)
                        return
                    self._wake = anyio.Event()
                    await self._wake.wait()
                    continue
                wait = delivery.stall_remaining()
                if wait > 0:
                    await anyio.sleep(wait)
                    continue
                if delivery.faults.slow > 0:
                    await anyio.sleep(delivery.faults.slow)
                frame = self._out.popleft()
                if not delivery.silent:
                    await self.ws.send(frame)
        except ConnectionClosed:
            pass

    async def close_when_asked(self) -> None:
        # beside the writer, not in it: a close must not wait for a stalled, slowed or
        # blocked send to finish
        await self._close_asked.wait()
        assert self._close_now is not None
        await self.ws.close(*self._close_now)


C = TypeVar("C", bound=QueuedConnection)


class LiveConnections(Generic[C]):
    """The WebSocket handler of a simulator and the connections it is serving.

    ``accept(conn_id, ws)`` makes the venue's connection object; ``on_frame(conn, text)``
    handles one client frame (it queues answers, it never waits); each of ``companions``
    runs beside the connection's writer while it is open (e.g. the venue's heartbeats).
    Every client frame is appended to ``client_frames`` first."""

    def __init__(
        self,
        *,
        path: str,
        accept: Callable[[int, ServerConnection], C],
        on_frame: Callable[[C, str], None],
        delivery: Delivery,
        client_frames: list[str],
        companions: Sequence[Callable[[C], Coroutine[Any, Any, None]]] = (),
    ) -> None:
        self.path = path
        self.delivery = delivery
        self.client_frames = client_frames
        #: connections served so far
        self.total = 0
        self._accept = accept
        self._on_frame = on_frame
        self._companions = companions
        self._live: dict[int, C] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[C]:
        # a copy: frames queued while iterating may end a connection
        return iter(list(self._live.values()))

    async def serve(self, ws: ServerConnection) -> None:
        request_path = ws.request.path if ws.request is not None else ""
        if request_path.split("?")[0] != self.path:
            await ws.close(1008, "unknown path")
            return
        conn = self._accept(next(self._ids), ws)
        self._live[conn.id] = conn
        self.total += 1
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(conn.write, self.delivery)
                tg.start_soon(conn.close_when_asked)
                for companion in self._companions:
                    tg.start_soon(companion, conn)
                try:
                    async for message in ws:
                        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                        self.client_frames.append(text)
                        self._on_frame(conn, text)
                except ConnectionClosed:
                    pass
                tg.cancel_scope.cancel()
        finally:
            conn.closed = True
            self._live.pop(conn.id, None)

    def reset_all(self) -> None:
        """TCP-reset every connection (a simulator shutting down answers nobody)."""
        for conn in self:
            conn.reset()
