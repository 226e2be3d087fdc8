"""The router: one synchronous call per received frame.

``FrameRouter.route`` runs in the reading task of the connection that received the
frame: it records it (when recording), decodes it with the connection's venue session
and hands each event on in the same call — book events to the order book actor, trades
and tops to the broadcaster, acknowledgements and heartbeats back to the connection.
Routing is derived from the subscription table (``table.routes``); nothing per frame
goes through a queue or a task switch.

In the WebSocketOnly workflow (``ws_only``) only acknowledgements and heartbeats are
looked at: there are no books and no broadcast.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from spiceflow_core.model import BookDelta, BookSnapshot, Event, Feed, Heartbeat, SubscribeAck, TopOfBook, Trade
from spiceflow_core.plugin.contract import ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.broadcast.actor import BroadcastActor
    from spiceflow_core.runtime.books import OrderBookActor
    from spiceflow_core.runtime.connection import WebSocketActor
    from spiceflow_core.runtime.metrics import Metrics
    from spiceflow_core.runtime.subscriptions import Route, SubscriptionTable


#: the staging block of a router without a broadcaster (WebSocketOnly): none
_NOTHING_STAGED = contextlib.nullcontext()


class _ErrorLog:
    """Rate-limits the log lines of each error kind: every isolated bad frame is logged
    (with its cause), a flood is not — at most ``burst`` lines per ``window`` seconds per
    kind, and the next logged line says how many were left out."""

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


class FrameRouter:
    def __init__(
        self,
        venue_name: str,
        table: SubscriptionTable,
        metrics: Metrics,
        books: OrderBookActor | None,
        broadcaster: BroadcastActor | None,
        *,
        max_frame_bytes: int,
        recorder: Any = None,
        on_heartbeat: Callable[[], None] | None = None,
        on_unrouted: Callable[[Feed, str], Route | None] | None = None,
    ) -> None:
        self.venue_name = venue_name
        self.routes = table.routes
        self.metrics = metrics
        self.books = books
        self.broadcaster = broadcaster
        self.max_frame_bytes = max_frame_bytes
        self.recorder = recorder
        self.on_heartbeat = on_heartbeat
        #: called with (feed, symbol) for an event no subscription routes; returns the
        #: route to use now (a replay subscribes instruments as their events appear)
        self.on_unrouted = on_unrouted
        self._errors = _ErrorLog()
        self.log = logger.bind(venue=venue_name, actor="router")

    def route_batch(self, conn: WebSocketActor, frames: list[str | bytes], recv_ts: int) -> None:
        """Route the frames of one socket read, then end the batch. What they publish
        reaches ZeroMQ together at the end (``BroadcastActor.staged``): one ZeroMQ
        message per run of one topic instead of one per frame."""
        with self.broadcaster.staged(recv_ts) if self.broadcaster is not None else _NOTHING_STAGED:
            for frame in frames:
                self.route(conn, frame, recv_ts)
            self.end_of_batch()

    def route(self, conn: WebSocketActor, frame: str | bytes, recv_ts: int) -> None:
        """Record, decode and hand on one frame (the frame path; never awaits)."""
        if self.recorder is not None:
            self.recorder.frame(conn.id, frame, recv_ts)
        events = self.parse(conn, frame, recv_ts)
        if not conn.sends_heartbeats and self.on_heartbeat is not None:
            self.on_heartbeat()  # any frame is a sign of life for such venues
        routes = self.routes
        for event in events:
            if isinstance(event, (BookDelta, BookSnapshot)):
                route = routes.get(event.symbol)
                if route is None or route.book is None:
                    route = self._unrouted("book", event.symbol)
                if route is not None and route.book is not None and self.books is not None:
                    self.books.on_event(route.book, event)
            elif isinstance(event, Trade):
                route = routes.get(event.symbol)
                if route is None or not route.trades:
                    route = self._unrouted("trades", event.symbol)
                if route is not None and route.trades and self.broadcaster is not None:
                    self.metrics.inc("trades", event.symbol)
                    self.broadcaster.publish_trade(event)
            elif isinstance(event, TopOfBook):
                route = routes.get(event.symbol)
                if route is None or not route.top:
                    route = self._unrouted("top", event.symbol)
                if route is not None and route.top and self.broadcaster is not None:
                    self.metrics.inc("tops", event.symbol)
                    self.broadcaster.publish_top(event)
            elif isinstance(event, SubscribeAck):
                conn.on_ack(event)
            elif isinstance(event, Heartbeat):
                conn.on_heartbeat(event)
                if self.on_heartbeat is not None:
                    self.on_heartbeat()

    def _unrouted(self, feed: Feed, symbol: str) -> Route | None:
        return self.on_unrouted(feed, symbol) if self.on_unrouted is not None else None

    def end_of_batch(self) -> None:
        """Every frame the connection had buffered has been routed."""
        if self.books is not None:
            self.books.flush()

    def parse(self, conn: WebSocketActor, frame: str | bytes, recv_ts: int) -> list[Event]:
        self.metrics.totals["frames_in"] += 1
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
