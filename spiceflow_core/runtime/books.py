"""The order book actor: one ``BookFeed`` per subscribed instrument (so a gap in one
symbol resyncs only that symbol), applied synchronously on the frame path, and the
resync task that heals gaps the venue's way.

The frame path calls ``on_event`` for each book event in the reading task of the
connection that received it: decode -> sync -> publish is one synchronous pass, with no
queue or task switch per frame. What must wait (a REST snapshot, a resubscription) is
not done there: ``_resync`` records the symbol in ``_wanted`` and wakes ``run_resyncs``,
the actor's task, which fetches and applies snapshots (or resubscribes) in a task group
of its own. A resync requested while that task is down (restarting under supervision)
waits in ``_wanted`` and is served when it comes back.

Publishing (``book.publish``): ``"every"`` sends the top-N after each applied delta;
``"top-changed"`` only when the top-N levels differ from the last message;
``"conflate"`` marks changed books dirty and publishes each once per received batch of
frames (``flush``), at its latest state; the per-topic publish counter has no holes. A
resync's first full book (``Synced``) is always published at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import stamina
from loguru import logger

from spiceflow_core.book import BookSync, BookUpdated, GapDetected, Synced, SyncState
from spiceflow_core.model import BookDelta, BookSnapshot, FeedState, Instrument, Level
from spiceflow_core.plugin.contract import Venue

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.broadcast.actor import BroadcastActor
    from spiceflow_core.plugin.rest import RestClient
    from spiceflow_core.runtime.metrics import Metrics
    from spiceflow_core.runtime.subscriptions import SubscriptionTable

BookEvent = BookDelta | BookSnapshot
#: minimum seconds between two depth refreshes of one instrument
REFRESH_INTERVAL = 30.0
_SYNCED = SyncState.SYNCED


class BookFeed:
    """One instrument's book and its published feed state."""

    __slots__ = ("instrument", "last_refresh", "last_top", "reason", "state", "symbol", "sync")

    def __init__(self, instrument: Instrument, sync: BookSync) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.sync = sync
        self.state: FeedState = "pending"
        self.reason = ""
        self.last_top: tuple[list[Level], list[Level]] | None = None
        self.last_refresh = 0.0


class OrderBookActor:
    def __init__(
        self,
        venue: Venue,
        table: SubscriptionTable,
        metrics: Metrics,
        broadcaster: BroadcastActor | None,
        *,
        depth: int,
        max_buffer: int,
        snapshot_depth: int,
        rest: RestClient | None,
        publish_mode: str = "every",
    ) -> None:
        self.venue = venue
        self.table = table
        self.metrics = metrics
        # the frame path counts in the metrics' dicts directly (no method call per update)
        self._totals = metrics.totals
        self._by_instrument = metrics.by_instrument
        self.broadcaster = broadcaster
        self.depth = depth
        self.max_buffer = max_buffer
        self.snapshot_depth = snapshot_depth
        self.rest = rest
        self.publish_mode = publish_mode
        self._conflate = publish_mode == "conflate"
        self._dirty: dict[str, BookFeed] = {}
        #: symbols whose book waits for a resync, and why ("snapshot", "refresh",
        #: "resubscribe"); served by ``run_resyncs``
        self._wanted: dict[str, str] = {}
        self._in_flight: dict[str, str] = {}
        self._wake_send, self._wake_recv = anyio.create_memory_object_stream[None](1)
        self.last_beat = 0.0  # monotonic time of the last resync work (actor heartbeat)
        self.log = logger.bind(venue=venue.name, actor="books")

    # -- book lifecycle (Subscribe / Unsubscribe workflows) --------------------------
    def new_feed(self, instrument: Instrument) -> BookFeed:
        feed = BookFeed(
            instrument,
            BookSync(
                self.venue.name,
                instrument.symbol,
                self.venue.sequence_policy(instrument),
                tick_size=instrument.tick_size or None,
                max_buffer=self.max_buffer,
                checksum=self.venue.book_checksum(instrument),
                keep_depth=self.venue.maintained_depth(instrument),
            ),
        )
        self._set_state(feed, "pending", "subscribed, waiting for the first snapshot")
        return feed

    def drop(self, feed: BookFeed) -> None:
        self._dirty.pop(feed.symbol, None)
        self._wanted.pop(feed.symbol, None)
        self._set_state(feed, "unsubscribed")

    def request_snapshot(self, feed: BookFeed) -> None:
        """Initial sync of a REST venue: fetch the snapshot once the stream is subscribed."""
        if self.venue.resync == "rest":
            self._want(feed.symbol, "snapshot")

    def connection_lost(self, feeds: list[BookFeed], reason: str) -> None:
        """Books of a lost connection: REST venues keep theirs (sequence checks tell
        whether the stream continues after reconnecting, else it is a gap); resubscribe
        venues get a fresh snapshot on resubscription, so theirs are invalidated."""
        for feed in feeds:
            if self.venue.resync == "resubscribe":
                feed.sync.invalidate(f"connection lost: {reason}")
            self._set_state(feed, "stale", f"connection lost: {reason}")

    def current_states(self) -> dict[str, tuple[FeedState, str]]:
        return {feed.symbol: (feed.state, feed.reason) for feed in self.table.books()}

    def state_of(self, symbol: str) -> FeedState:
        feed = self.table.book(symbol)
        return feed.state if feed is not None else "unsubscribed"

    # -- the frame path ------------------------------------------------------------
    def on_event(self, feed: BookFeed, event: BookEvent) -> None:
        """Apply one snapshot or delta and publish; a failure resyncs this book only."""
        totals = self._totals
        try:
            if isinstance(event, BookDelta):
                totals["deltas"] += 1
                results = feed.sync.on_delta(event)
            else:
                totals["snapshots"] += 1
                results = feed.sync.on_snapshot(event)
            for result in results:
                if type(result) is BookUpdated:
                    totals["book_updates"] += 1
                    self._by_instrument[feed.symbol]["book_updates"] += 1
                    if feed.state != "synced":
                        self._set_state(feed, "synced")
                    self._publish(feed)
                elif type(result) is Synced:
                    self._set_state(feed, "synced", f"in sync at sequence {result.sequence}")
                    self._dirty.pop(feed.symbol, None)  # the full book goes out now
                    self._publish(feed, force=True)
                elif type(result) is GapDetected:
                    self._gap(feed, result.reason, result.expected, result.got)
        except Exception as exc:
            self.log.bind(instrument=feed.symbol).opt(exception=exc).error(
                "book update failed: {}: {}", type(exc).__name__, exc
            )
            self._gap(feed, f"internal error: {type(exc).__name__}: {exc}")

    def flush(self) -> None:
        """Conflation: publish each book changed since the last flush once, at its current
        state. Books that went stale or were unsubscribed meanwhile are skipped."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        for symbol, feed in dirty.items():
            if self.table.book(symbol) is feed:
                self._publish(feed, force=True)

    def _publish(self, feed: BookFeed, force: bool = False) -> None:
        sequence = feed.sync.last_sequence
        if self.broadcaster is None or feed.sync.state is not _SYNCED or sequence is None:
            return
        if self._conflate and not force:
            self._dirty[feed.symbol] = feed
            return
        sync = feed.sync
        bids, asks = sync.book.top(self.depth)
        if len(bids) < self.depth or len(asks) < self.depth:
            self._maybe_refresh(feed)
        if self.publish_mode == "top-changed" and not force:
            key = (bids, asks)
            if feed.last_top == key:
                return
            feed.last_top = key
        self.broadcaster.publish_book(
            self.venue.name,
            feed.symbol,
            sequence,
            bids,
            asks,
            sync.last_exchange_ts_ms,
            sync.last_recv_ts_ns,
            sync.checksum_verified,
        )

    def _maybe_refresh(self, feed: BookFeed) -> None:
        """A depth-limited REST snapshot vouches for less and less as prices move away
        from it, so a book that can no longer fill the published depth gets a fresh
        snapshot — synced in a shadow book while the live one keeps publishing — at most
        once per ``REFRESH_INTERVAL`` seconds per instrument."""
        if self.venue.resync != "rest" or feed.symbol in self._wanted or feed.symbol in self._in_flight:
            return
        if feed.sync.book.bounds() == (None, None):
            return  # the snapshot was complete: a thin book is just a thin market
        now = time.monotonic()
        if now - feed.last_refresh < REFRESH_INTERVAL:
            return
        feed.last_refresh = now
        self.metrics.inc("refreshes", feed.symbol)
        self.log.bind(instrument=feed.symbol).info("book thinner than the published depth: refreshing its snapshot")
        self._want(feed.symbol, "refresh")

    def _set_state(self, feed: BookFeed, state: FeedState, reason: str = "") -> None:
        if feed.state == state and state != "pending":
            return
        feed.state = state
        feed.reason = reason
        if self.broadcaster is not None:
            self.broadcaster.publish_status(self.venue.name, feed.symbol, state, reason)

    def _gap(self, feed: BookFeed, reason: str, expected: int | None = None, got: int | None = None) -> None:
        self.metrics.inc("gaps", feed.symbol)
        detail = f" (expected {expected}, got {got})" if expected is not None or got is not None else ""
        self.log.bind(instrument=feed.symbol).warning("gap: {}{}; resyncing", reason, detail)
        self._set_state(feed, "stale", reason)
        self.metrics.inc("resyncs", feed.symbol)
        self._set_state(feed, "resyncing", reason)
        self._want(feed.symbol, "snapshot" if self.venue.resync == "rest" else "resubscribe")

    def _want(self, symbol: str, why: str) -> None:
        self._wanted[symbol] = why
        try:
            self._wake_send.send_nowait(None)
        except anyio.WouldBlock:
            pass  # a wake-up is already pending

    # -- the resync task -------------------------------------------------------------
    async def run_resyncs(self, resubscribe: Callable[[str], Awaitable[None]]) -> None:
        """Serve resync requests until cancelled: each symbol's resync runs in this
        task's own group, one at a time per symbol."""
        # resyncs that were in flight when this task last failed died with its group:
        # they are wanted again
        for symbol, why in self._in_flight.items():
            self._wanted.setdefault(symbol, why)
        self._in_flight.clear()
        async with anyio.create_task_group() as tg:
            while True:
                for symbol, why in list(self._wanted.items()):
                    if symbol in self._in_flight:
                        continue
                    del self._wanted[symbol]
                    self._in_flight[symbol] = why
                    tg.start_soon(self._resync, symbol, why, resubscribe)
                self.last_beat = time.monotonic()
                await self._wake_recv.receive()

    async def _resync(self, symbol: str, why: str, resubscribe: Callable[[str], Awaitable[None]]) -> None:
        log = self.log.bind(instrument=symbol)
        try:
            async for attempt in stamina.retry_context(
                on=Exception, attempts=None, timeout=None, wait_initial=0.5, wait_max=30.0, wait_jitter=0.5
            ):
                with attempt:
                    feed = self.table.book(symbol)
                    if feed is None:
                        return  # unsubscribed meanwhile
                    if why == "resubscribe":
                        if feed.sync.state is _SYNCED:
                            return
                        await resubscribe(symbol)
                        return
                    try:
                        if self.rest is None:
                            raise RuntimeError("no REST client for a REST resync")
                        snapshot = await self.venue.fetch_snapshot(self.rest, feed.instrument, self.snapshot_depth)
                    except Exception as exc:
                        log.warning("snapshot fetch failed ({}); retrying", exc)
                        raise
                    current = self.table.book(symbol)
                    if current is not None:
                        self.on_event(current, snapshot)
        finally:
            self._in_flight.pop(symbol, None)
            if symbol in self._wanted:
                self._want(symbol, self._wanted[symbol])
