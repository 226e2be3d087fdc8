"""OrderBookActor: owns the books of one venue's instruments (one ``BookSync`` each,
so a gap in one symbol resyncs only that symbol), applies snapshots and deltas in
arrival order, publishes in-sync books, and heals gaps the venue's way: a REST snapshot
(queued and spaced by the venue's RestClient) or resubscribing the channel.

Publishing (``book.publish``): ``"every"`` sends the top-N after each applied delta;
``"top-changed"`` only when the top-N levels differ from the last message;
``"conflate"`` marks changed books dirty and, once the actor has drained every event
already waiting in its inbox (``receive_nowait``, at most ``_DRAIN_MAX`` per wake-up),
publishes each dirty book once at its latest state: a burst costs one message per book,
consumers see the latest book and a sequence that may skip ids (the per-topic publish
counter still has no holes). A resync's first full book (``Synced``) is always published
at once."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from loguru import logger

from spiceflow_core.book import BookSync, BookUpdated, GapDetected, Synced, SyncState
from spiceflow_core.model import BookDelta, BookSnapshot, Instrument
from spiceflow_core.plugin.contract import Venue

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.broadcast.actor import BroadcastActor
    from spiceflow_core.plugin.rest import RestClient
    from spiceflow_core.runtime.metrics import Metrics

BookEvent = BookDelta | BookSnapshot
#: minimum seconds between two depth refreshes of one instrument
REFRESH_INTERVAL = 30.0

#: events handled per wake-up of the actor before it yields to the other tasks
_DRAIN_MAX = 1_000


class OrderBookActor:
    def __init__(
        self,
        venue: Venue,
        metrics: Metrics,
        broadcaster: BroadcastActor | None,
        *,
        depth: int,
        max_buffer: int,
        snapshot_depth: int,
        rest: RestClient | None,
        resubscribe: Callable[[str], Awaitable[None]],
        publish_mode: str = "every",
    ) -> None:
        self.venue = venue
        self.metrics = metrics
        self.broadcaster = broadcaster
        self.depth = depth
        self.max_buffer = max_buffer
        self.snapshot_depth = snapshot_depth
        self.rest = rest
        self.resubscribe = resubscribe
        self.publish_mode = publish_mode
        self.books: dict[str, BookSync] = {}
        self.instruments: dict[str, Instrument] = {}
        self.states: dict[str, str] = {}  # published feed state per symbol
        self.reasons: dict[str, str] = {}
        self._last_top: dict[str, tuple] = {}
        #: ``publish_mode == "conflate"``: books updated since the last flush (see ``run``)
        self._dirty: dict[str, BookSync] = {}
        self._resyncing: set[str] = set()
        self._last_refresh: dict[str, float] = {}
        self.inbox_send, self.inbox = anyio.create_memory_object_stream[BookEvent](100_000)
        self._tg: TaskGroup | None = None
        self.last_beat = 0.0  # monotonic time of the last event handled (actor heartbeat)
        self.log = logger.bind(venue=venue.name, actor="books")

    # -- book lifecycle (called by the subscribe/unsubscribe workflows) -------
    def add(self, instrument: Instrument) -> None:
        self.instruments[instrument.symbol] = instrument
        self.books[instrument.symbol] = BookSync(
            self.venue.name,
            instrument.symbol,
            self.venue.sequence_policy(instrument),
            tick_size=instrument.tick_size or None,
            max_buffer=self.max_buffer,
        )
        self._set_state(instrument.symbol, "pending", "subscribed, waiting for the first snapshot")

    def remove(self, symbol: str) -> None:
        self.books.pop(symbol, None)
        self._last_top.pop(symbol, None)
        self._dirty.pop(symbol, None)
        self._resyncing.discard(symbol)
        self._set_state(symbol, "unsubscribed")
        self.states.pop(symbol, None)
        self.reasons.pop(symbol, None)

    def submit(self, event: BookEvent) -> None:
        try:
            self.inbox_send.send_nowait(event)
        except anyio.WouldBlock:
            # The book actor is behind by 100k events: losing one would corrupt the book,
            # so mark it and resync rather than block the router.
            self.log.error("book inbox full; resyncing {}", event.symbol)
            self._gap(event.symbol, "book actor inbox overflow")

    def current_states(self) -> dict[str, tuple[str, str]]:
        return {s: (state, self.reasons.get(s, "")) for s, state in self.states.items()}

    def state_of(self, symbol: str) -> str:
        return self.states.get(symbol, "unsubscribed")

    # -- connection events --------------------------------------------------
    def connection_lost(self, symbols: list[str], reason: str) -> None:
        """Books of a lost connection: REST venues keep theirs (sequence checks tell
        whether the stream continues after reconnecting, else it is a gap);
        resubscribe venues get a fresh snapshot, so theirs are invalidated."""
        for symbol in symbols:
            sync = self.books.get(symbol)
            if sync is None:
                continue
            if self.venue.resync == "resubscribe":
                sync.invalidate(f"connection lost: {reason}")
            self._set_state(symbol, "stale", f"connection lost: {reason}")

    def request_snapshot(self, symbol: str) -> None:
        """Initial sync (REST venues): fetch the snapshot once the stream is subscribed."""
        if self.venue.resync == "rest" and symbol in self.books:
            self._start_resync(symbol, initial=True)

    # -- the actor loop ---------------------------------------------------------
    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            # after a restart by the supervisor: resyncs in flight were cancelled with the
            # previous task group, start them again
            pending, self._resyncing = self._resyncing, set()
            for symbol in pending:
                self._start_resync(symbol, initial=True)
            # One wake-up handles every event already waiting (up to _DRAIN_MAX, then
            # yield to the other tasks): ``receive()`` costs an event-loop round trip
            # per event, ``receive_nowait`` none. With ``publish = "conflate"`` each book
            # changed by the drained events is published once, after the drain.
            receive_nowait = self.inbox.receive_nowait
            conflate = self.publish_mode == "conflate"
            async for event in self.inbox:
                self._handle_guarded(event)
                for _ in range(_DRAIN_MAX):
                    try:
                        event = receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    self._handle_guarded(event)
                if conflate and self._dirty:
                    self._flush_dirty()
                self.last_beat = time.monotonic()

    def _handle_guarded(self, event: BookEvent) -> None:
        try:
            self.handle(event)
        except Exception as exc:
            # a bug or bad data in one instrument resyncs that instrument only
            self.log.bind(instrument=event.symbol).opt(exception=exc).error(
                "book update failed: {}: {}", type(exc).__name__, exc
            )
            self._gap(event.symbol, f"internal error: {type(exc).__name__}: {exc}")

    def _flush_dirty(self) -> None:
        """Conflation: publish each book changed since the last flush once, at its current
        state (sequence = last applied delta). Books that went stale or were removed
        meanwhile are skipped (``_publish`` checks the state)."""
        dirty, self._dirty = self._dirty, {}
        for symbol, sync in dirty.items():
            if self.books.get(symbol) is sync:
                self._publish(symbol, sync, force=True)

    def handle(self, event: BookEvent) -> None:
        sync = self.books.get(event.symbol)
        if sync is None:
            return  # unsubscribed meanwhile
        if isinstance(event, BookDelta):
            events = sync.on_delta(event)
        else:
            events = sync.on_snapshot(event)
        for ev in events:
            if isinstance(ev, BookUpdated):
                self.metrics.inc("book_updates", event.symbol)
                if self.states.get(event.symbol) != "synced":
                    self._set_state(event.symbol, "synced")
                self._publish(event.symbol, sync)
            elif isinstance(ev, Synced):
                self._resyncing.discard(event.symbol)
                self._set_state(event.symbol, "synced", f"in sync at sequence {ev.sequence}")
                self._dirty.pop(event.symbol, None)  # the full book goes out now
                self._publish(event.symbol, sync, force=True)
            elif isinstance(ev, GapDetected):
                self._gap(event.symbol, ev.reason, ev.expected, ev.got)

    def _publish(self, symbol: str, sync: BookSync, force: bool = False) -> None:
        if self.broadcaster is None or sync.state is not SyncState.SYNCED:
            return
        if not force and self.publish_mode == "conflate":
            self._dirty[symbol] = sync  # published once by _flush_dirty after the drain
            return
        bids, asks = sync.book.top(self.depth)
        if len(bids) < self.depth or len(asks) < self.depth:
            self._maybe_refresh(symbol, sync)
        if self.publish_mode == "top-changed" and not force:
            key = (bids, asks)
            if self._last_top.get(symbol) == key:
                return
            self._last_top[symbol] = key
        self.broadcaster.publish_book(
            self.venue.name, symbol, sync.last_sequence, bids, asks, sync.last_exchange_ts_ms, sync.last_recv_ts_ns
        )

    def _maybe_refresh(self, symbol: str, sync: BookSync) -> None:
        """A depth-limited REST snapshot vouches for less and less as prices move away
        from it, so a book that can no longer fill the published depth gets a fresh
        snapshot — synced in a shadow book while the live one keeps publishing — at most
        once per ``REFRESH_INTERVAL`` seconds per instrument."""
        if self.venue.resync != "rest" or self._tg is None or symbol in self._resyncing:
            return
        if sync.book.bounds() == (None, None):
            return  # the snapshot was complete: a thin book is just a thin market
        now = time.monotonic()
        if now - self._last_refresh.get(symbol, 0.0) < REFRESH_INTERVAL:
            return
        self._last_refresh[symbol] = now
        self._resyncing.add(symbol)
        self.metrics.inc("refreshes", symbol)
        self.log.bind(instrument=symbol).info("book thinner than the published depth: refreshing its snapshot")
        self._tg.start_soon(self._fetch_snapshot, symbol)

    def _set_state(self, symbol: str, state: str, reason: str = "") -> None:
        if self.states.get(symbol) == state:
            return
        self.states[symbol] = state
        self.reasons[symbol] = reason
        if self.broadcaster is not None:
            self.broadcaster.publish_status(self.venue.name, symbol, state, reason)

    def _gap(self, symbol: str, reason: str, expected: int | None = None, got: int | None = None) -> None:
        self.metrics.inc("gaps", symbol)
        detail = f" (expected {expected}, got {got})" if expected is not None or got is not None else ""
        self.log.bind(instrument=symbol).warning("gap: {}{}; resyncing", reason, detail)
        self._set_state(symbol, "stale", reason)
        self._start_resync(symbol)

    def _start_resync(self, symbol: str, initial: bool = False) -> None:
        if symbol in self._resyncing or self._tg is None:
            return
        self._resyncing.add(symbol)
        if not initial:
            self.metrics.inc("resyncs", symbol)
            self._set_state(symbol, "resyncing")
        if self.venue.resync == "rest":
            self._tg.start_soon(self._fetch_snapshot, symbol)
        else:
            self._tg.start_soon(self._resubscribe, symbol)

    async def _fetch_snapshot(self, symbol: str) -> None:
        delay = 0.5
        log = self.log.bind(instrument=symbol)
        while symbol in self.books:
            instrument = self.instruments[symbol]
            try:
                snapshot = await self.venue.fetch_snapshot(self.rest, instrument, self.snapshot_depth)
            except Exception as exc:
                log.warning("snapshot fetch failed ({}); retrying in {:.1f}s", exc, delay)
                await anyio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 30.0)
                continue
            self._resyncing.discard(symbol)
            await self.inbox_send.send(snapshot)
            return

    async def _resubscribe(self, symbol: str) -> None:
        # A refused (or unacknowledged) resubscription left the book stale for good:
        # nothing else would ever send it a snapshot. Retry with backoff while the
        # book is still wanted and not in sync.
        delay = 0.5
        log = self.log.bind(instrument=symbol)
        try:
            while symbol in self.books:
                try:
                    await self.resubscribe(symbol)
                    return
                except Exception as exc:
                    sync = self.books.get(symbol)
                    if sync is None or sync.state is SyncState.SYNCED:
                        return
                    log.error("resubscribe failed: {}; retrying in {:.1f}s", exc, delay)
                    await anyio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 30.0)
        finally:
            self._resyncing.discard(symbol)
