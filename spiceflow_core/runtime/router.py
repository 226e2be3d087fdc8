"""RouterActor: decodes frames with the connection's venue session and routes typed
events — acknowledgements and heartbeats back to the connection, book events to the
order book actor, trades and tops straight to the broadcaster.

``DummyRouter`` serves the WebSocketOnly workflow: it only looks for heartbeats (and
answers them, as the venue requires) and discards everything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
from loguru import logger

from spiceflow_core.model import BookDelta, BookSnapshot, Heartbeat, SubscribeAck, TopOfBook, Trade
from spiceflow_core.plugin.contract import ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.broadcast.actor import BroadcastActor
    from spiceflow_core.runtime.books import OrderBookActor
    from spiceflow_core.runtime.connection import WebSocketActor
    from spiceflow_core.runtime.metrics import Metrics

Item = tuple["WebSocketActor", "str | bytes", int]

#: frames routed per wake-up of the router before it yields to the other tasks
_DRAIN_MAX = 1_000


class _ErrorLog:
    """Rate-limits the log lines of each error kind: every isolated bad frame is logged
    (with its cause), a flood is not -- at most ``burst`` lines per ``window`` seconds per
    kind, and the next logged line says how many were left out. (Counting the first 3
    then every 1000th, as before, left the 4th isolated fault of a kind unlogged.)"""

    def __init__(self, burst: int = 20, window: float = 10.0) -> None:
        self.seen: dict[str, int] = {}
        self.burst = burst
        self.window = window
        self._window_start: dict[str, float] = {}
        self._in_window: dict[str, int] = {}
        self.suppressed: dict[str, int] = {}

    def should_log(self, kind: str) -> bool:
        self.seen[kind] = self.seen.get(kind, 0) + 1
        now = time.monotonic()
        if now - self._window_start.get(kind, -1e9) > self.window:
            self._window_start[kind] = now
            self._in_window[kind] = 0
        self._in_window[kind] += 1
        if self._in_window[kind] <= self.burst:
            return True
        self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
        return False

    def take_suppressed(self, kind: str) -> int:
        return self.suppressed.pop(kind, 0)


class RouterActor:
    def __init__(
        self,
        venue_name: str,
        metrics: Metrics,
        books: OrderBookActor | None,
        broadcaster: BroadcastActor | None,
        max_frame_bytes: int,
        on_heartbeat: Callable[[WebSocketActor], None] | None = None,
    ) -> None:
        self.venue_name = venue_name
        self.metrics = metrics
        self.books = books
        self.broadcaster = broadcaster
        self.max_frame_bytes = max_frame_bytes
        self.on_heartbeat = on_heartbeat
        self.inbox_send, self.inbox = anyio.create_memory_object_stream[Item](10_000)
        self.symbols: set[str] = set()  # router subscriptions: symbols whose events we route
        self._errors = _ErrorLog()
        self.last_beat = 0.0  # monotonic time of the last frame handled (actor heartbeat)
        self.log = logger.bind(venue=venue_name, actor="router")

    async def run(self) -> None:
        # Each wake-up routes every frame already waiting (at most _DRAIN_MAX, then yield
        # to the other tasks): ``receive()`` costs an event-loop round trip per frame,
        # ``receive_nowait`` none. Order is kept: one inbox, one consumer.
        receive_nowait = self.inbox.receive_nowait
        async for conn, frame, recv_ts in self.inbox:
            self.route(conn, frame, recv_ts)
            for _ in range(_DRAIN_MAX):
                try:
                    conn, frame, recv_ts = receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
                self.route(conn, frame, recv_ts)
            self.last_beat = time.monotonic()

    def parse(self, conn: WebSocketActor, frame: str | bytes, recv_ts: int) -> list:
        self.metrics.inc("frames_in")
        if len(frame) > self.max_frame_bytes:
            self._parse_error("oversized", f"frame of {len(frame)} bytes exceeds the {self.max_frame_bytes}-byte limit")
            return []
        if isinstance(frame, bytes):
            self._parse_error("binary", f"unexpected binary frame ({len(frame)} bytes)")
            return []
        try:
            return conn.session.parse(frame, recv_ts)
        except ProtocolError as exc:
            self._parse_error("protocol", f"{exc} in frame {frame[:200]!r}")
        except Exception as exc:  # a parser bug must not take the venue down
            self._parse_error("parser-bug", f"{type(exc).__name__}: {exc} in frame {frame[:200]!r}")
        return []

    def _parse_error(self, kind: str, message: str) -> None:
        self.metrics.inc("parse_errors")
        if self._errors.should_log(kind):
            left_out = self._errors.take_suppressed(kind)
            more = f" ({left_out} more of this kind not logged)" if left_out else ""
            self.log.warning("bad frame skipped ({} #{}): {}{}", kind, self._errors.seen[kind], message, more)

    def route(self, conn: WebSocketActor, frame: str | bytes, recv_ts: int) -> None:
        events = self.parse(conn, frame, recv_ts)
        if not conn.session.sends_heartbeats and self.on_heartbeat is not None:
            self.on_heartbeat(conn)  # any frame is a sign of life for such venues
        for event in events:
            if isinstance(event, (BookDelta, BookSnapshot)):
                if self.books is not None and event.symbol in self.symbols:
                    self.books.submit(event)
            elif isinstance(event, Trade):
                if self.broadcaster is not None and event.symbol in self.symbols:
                    self.metrics.inc("trades", event.symbol)
                    self.broadcaster.publish_trade(event)
            elif isinstance(event, TopOfBook):
                if self.broadcaster is not None and event.symbol in self.symbols:
                    self.metrics.inc("tops", event.symbol)
                    self.broadcaster.publish_top(event)
            elif isinstance(event, SubscribeAck):
                conn.on_ack(event)
            elif isinstance(event, Heartbeat):
                conn.last_heartbeat = time.monotonic()
                if event.reply is not None:
                    conn.send_now(event.reply)
                if self.on_heartbeat is not None:
                    self.on_heartbeat(conn)


class DummyRouter(RouterActor):
    """WebSocketOnly: answer heartbeats, note them, discard the rest."""

    def route(self, conn: WebSocketActor, frame: str | bytes, recv_ts: int) -> None:
        events = self.parse(conn, frame, recv_ts)
        if not conn.session.sends_heartbeats and self.on_heartbeat is not None:
            self.on_heartbeat(conn)
        for event in events:
            if isinstance(event, Heartbeat):
                conn.last_heartbeat = time.monotonic()
                if event.reply is not None:
                    conn.send_now(event.reply)
                if self.on_heartbeat is not None:
                    self.on_heartbeat(conn)
            elif isinstance(event, SubscribeAck):
                conn.on_ack(event)
