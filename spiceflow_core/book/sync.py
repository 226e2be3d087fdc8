"""Keeping one book in sync with a venue: snapshot + deltas, gaps, refreshes.

``BookSync`` is venue-independent: the venue's ``SequencePolicy`` judges each delta
(DROP / APPLY / GAP) and ``BookSync`` does the rest. It returns typed events instead of
calling back, so the caller (the order book actor) decides what to publish and when to
resync; one ``BookSync`` per (venue, instrument), so a gap in one never touches another.

States
------
* ``AWAITING_SNAPSHOT`` (initial) and ``STALE`` (after a gap / ``invalidate``): deltas
  are buffered, at most ``max_buffer``. On overflow the OLDEST delta is discarded (the
  buffer keeps the newest ``max_buffer``, so a snapshot fetched later can still catch
  up) and one ``GapDetected("buffer overflow ...")`` is emitted per buffering episode.
* A snapshot then replays the buffer through the policy: covered deltas are dropped,
  the first one kept must be APPLY. If it is GAP the snapshot is older than the
  buffered deltas: ``GapDetected("snapshot older than buffered deltas")`` and the caller
  fetches a newer one (the buffer is kept from that delta on). A snapshot newer than
  everything buffered is fine: ``Synced(snapshot.sequence)`` and the next delta gets the
  policy's ``first`` verdict.
* ``SYNCED``: each delta gets ``policy.next`` (``first`` right after a snapshot). APPLY ->
  ``BookUpdated(seq)``; DROP -> counted, nothing reported; GAP -> ``GapDetected`` and
  ``STALE`` (the offending delta is buffered: a newer snapshot may need it). A book
  crossed after an applied delta is wrong: ``GapDetected("crossed book ...")``, never
  ``BookUpdated``. A malformed delta (``ValueError`` from the book) is a missed update,
  so also a gap (and counted in ``parse_errors``).
* ``SYNCED`` + ``on_snapshot`` = refresh: the live book keeps applying deltas and
  reporting ``BookUpdated`` while a shadow book syncs from the new snapshot and the
  same deltas (plus the last ``refresh_window`` applied deltas, for a snapshot older
  than the live book). When the shadow is at the live book's sequence it replaces the
  live contents (``Synced(seq)`` is reported instead of ``BookUpdated`` for that
  delta: publish the full book). An unusable refresh snapshot (gap, crossed, malformed,
  too old for the window) is dropped and counted in ``refresh_failures``; the live book
  goes on, no gap. A live gap while a shadow is pending drops the shadow too (the caller
  resyncs anyway).

``GapDetected.expected`` is the sequence the book was at (snapshot or last applied id)
and ``got`` the id the offending delta says it follows (``prev_sequence`` when the venue
sends one, else ``first_sequence - 1``), so for a continuous stream ``got == expected``
under every reference policy. Both are None for gaps that are not about one delta.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

import msgspec

from spiceflow_core.book.checksum import BookChecksum
from spiceflow_core.book.orderbook import OrderBook
from spiceflow_core.book.policy import APPLY, DROP, GAP, SequencePolicy, Verdict
from spiceflow_core.model import BookDelta, BookSnapshot


class SyncState(enum.Enum):
    AWAITING_SNAPSHOT = "awaiting_snapshot"
    SYNCED = "synced"
    STALE = "stale"


_SYNCED = SyncState.SYNCED


class Synced(msgspec.Struct, frozen=True):
    """The book just became (or, after a refresh, is again) in sync at ``sequence``:
    snapshot + buffered deltas applied. Publish the full book."""

    sequence: int


class BookUpdated(msgspec.Struct, frozen=True):
    """A delta was applied to an in-sync book; the caller publishes."""

    sequence: int


class GapDetected(msgspec.Struct, frozen=True):
    """The book can no longer be trusted (state is STALE): resync (REST snapshot /
    resubscribe). See the module docstring for ``expected``/``got``."""

    reason: str
    expected: int | None = None
    got: int | None = None


SyncEvent = Synced | BookUpdated | GapDetected


@dataclass(slots=True)
class SyncCounters:
    applied: int = 0  # deltas applied to the live book (buffer replays included)
    dropped: int = 0  # deltas the policy found already covered
    buffered: int = 0  # deltas put in the buffer while not in sync
    gaps: int = 0  # GapDetected events
    resyncs: int = 0  # returns to SYNCED after the first sync
    refreshes: int = 0  # shadow books swapped in (SYNCED + snapshot)
    refresh_failures: int = 0  # refresh snapshots dropped as unusable
    checksums_verified: int = 0  # venue checksums that matched the local book
    checksum_failures: int = 0  # venue checksums that did not (each one a gap)
    overflows: int = 0  # deltas discarded from a full buffer
    parse_errors: int = 0  # malformed snapshots/deltas


def _follows(delta: BookDelta) -> int:
    return delta.prev_sequence if delta.prev_sequence is not None else delta.first_sequence - 1


class _Chain:
    """A book and its position in the venue's update chain (the live book's initial
    sync, or a refresh shadow)."""

    __slots__ = ("book", "exchange_ts_ms", "last", "need_first", "recv_ts_ns")

    def __init__(self, book: OrderBook, snapshot: BookSnapshot) -> None:
        self.book = book
        self.last = snapshot.sequence
        self.need_first = True
        self.exchange_ts_ms = snapshot.exchange_ts_ms
        self.recv_ts_ns = snapshot.recv_ts_ns

    def step(self, policy: SequencePolicy, delta: BookDelta) -> Verdict:
        """Judge and, on APPLY, apply one delta. ``ValueError`` from a malformed delta
        propagates (the book may be partly updated)."""
        verdict = policy.first(self.last, delta) if self.need_first else policy.next(self.last, delta)
        if verdict is APPLY:
            self.book.apply(delta.bids, delta.asks)
            self.last = delta.sequence
            self.need_first = False
            if delta.exchange_ts_ms is not None:
                self.exchange_ts_ms = delta.exchange_ts_ms
            self.recv_ts_ns = delta.recv_ts_ns or self.recv_ts_ns
        return verdict


class BookSync:
    """Synchronises one ``OrderBook`` from snapshots and deltas (see module docstring).

    ``book`` keeps its identity for the life of the ``BookSync``: syncs and refreshes
    replace its contents, so holding a reference to it is safe. Its contents are only
    meaningful while ``state is SyncState.SYNCED``.
    """

    def __init__(
        self,
        venue: str,
        symbol: str,
        policy: SequencePolicy,
        *,
        tick_size: str | None = None,
        max_buffer: int = 10_000,
        refresh_window: int = 1_000,
        checksum: BookChecksum | None = None,
        keep_depth: int | None = None,
    ) -> None:
        if max_buffer <= 0:
            raise ValueError("max_buffer must be positive")
        self.venue = venue
        self.symbol = symbol
        self.policy = policy
        self.tick_size = tick_size
        self.max_buffer = max_buffer
        self.state = SyncState.AWAITING_SNAPSHOT
        self.book = OrderBook(tick_size)
        #: the venue's checksum, verified after every message that carries one
        self.checksum = checksum
        #: levels per side the venue maintains (the book is cut to it after every message)
        self.keep_depth = keep_depth
        #: the last applied message carried a venue checksum and it matched
        self.checksum_verified = False
        self.last_sequence: int | None = None
        self.last_exchange_ts_ms: int | None = None
        self.last_recv_ts_ns = 0
        self.counters = SyncCounters()
        self._need_first = False
        self._buffer: deque[BookDelta] = deque()
        self._overflowed = False
        self._synced_once = False
        # Recently applied deltas, so a refresh snapshot older than the live book can
        # catch up at once instead of failing.
        self._history: deque[BookDelta] = deque(maxlen=refresh_window)
        self._shadow: _Chain | None = None

    # ------------------------------------------------------------------ inputs
    def on_delta(self, delta: BookDelta) -> list[SyncEvent]:
        # The hot path (every delta of an in-sync book): module-level constants instead
        # of enum attribute lookups, the crossed check done by ``apply``.
        if self.state is not _SYNCED:
            return self._buffer_delta(delta)
        last: int = self.last_sequence  # type: ignore[assignment]  # an int whenever SYNCED
        verdict = self.policy.first(last, delta) if self._need_first else self.policy.next(last, delta)
        if verdict is not APPLY:
            if verdict is DROP:
                self.counters.dropped += 1
                return []
            events = self._gap(f"sequence gap at {delta.sequence}", last, _follows(delta))
            return events + self._buffer_delta(delta)
        book = self.book
        try:
            crossed = book.apply(delta.bids, delta.asks)
        except ValueError as exc:
            self.counters.parse_errors += 1
            return self._gap(f"malformed delta {delta.sequence}: {exc}", last, _follows(delta))
        self.counters.applied += 1
        sequence = self.last_sequence = delta.sequence
        self._need_first = False
        if delta.exchange_ts_ms is not None:
            self.last_exchange_ts_ms = delta.exchange_ts_ms
        if delta.recv_ts_ns:
            self.last_recv_ts_ns = delta.recv_ts_ns
        if crossed:
            events = self._gap(self._crossed_reason(book, sequence), None, sequence)
            return events + self._buffer_delta(delta)
        if self.keep_depth is not None:
            book.truncate(self.keep_depth)
        if self.checksum is not None:
            mismatch = self._verify(book, delta.checksum, sequence)
            if mismatch:
                return self._gap(mismatch, None, sequence)
        self._history.append(delta)
        if self._shadow is not None and self._feed_shadow(delta):
            return [Synced(sequence)]
        return [BookUpdated(sequence)]

    def on_snapshot(self, snapshot: BookSnapshot) -> list[SyncEvent]:
        if self.state is SyncState.SYNCED:
            if not snapshot.reset:
                return self._refresh(snapshot)
            # the venue restarted the stream: this snapshot replaces the book at once
            self.state = SyncState.STALE
            self._shadow = None
            self._buffer.clear()
        try:
            book = OrderBook(self.tick_size)
            book.apply_snapshot(snapshot.bids, snapshot.asks, snapshot.depth_limit)
        except ValueError as exc:
            self.counters.parse_errors += 1
            return self._gap(f"malformed snapshot {snapshot.sequence}: {exc}", None, None)
        chain = _Chain(book, snapshot)
        if book.is_crossed():
            return self._gap(self._crossed_reason(book, snapshot.sequence, "snapshot"), None, snapshot.sequence)
        if self.keep_depth is not None:
            book.truncate(self.keep_depth)
        if self.checksum is not None:
            mismatch = self._verify(book, snapshot.checksum, snapshot.sequence, "snapshot")
            if mismatch:
                return self._gap(mismatch, None, snapshot.sequence)
        applied: list[BookDelta] = []
        buffer = self._buffer
        for index, delta in enumerate(buffer):
            was_first = chain.need_first
            before = chain.last
            try:
                verdict = chain.step(self.policy, delta)
            except ValueError as exc:
                self.counters.parse_errors += 1
                self._trim_buffer(index + 1)
                return self._gap(f"malformed buffered delta {delta.sequence}: {exc}", before, _follows(delta))
            if verdict is DROP:
                self.counters.dropped += 1
            elif verdict is GAP:
                self._trim_buffer(index)
                reason = "snapshot older than buffered deltas" if was_first else "gap in buffered deltas"
                return self._gap(
                    f"{reason} (snapshot {snapshot.sequence}, delta {delta.sequence})", before, _follows(delta)
                )
            else:
                self.counters.applied += 1
                applied.append(delta)
                if book.is_crossed():
                    self._trim_buffer(index)
                    return self._gap(self._crossed_reason(book, delta.sequence), None, delta.sequence)
        # In sync.
        buffer.clear()
        self._overflowed = False
        if applied and self.keep_depth is not None:
            book.truncate(self.keep_depth)
        if applied and self.checksum is not None:
            mismatch = self._verify(book, applied[-1].checksum, applied[-1].sequence)
            if mismatch:
                return self._gap(mismatch, None, applied[-1].sequence)
        self.book._adopt(book)
        self.state = SyncState.SYNCED
        self.last_sequence = chain.last
        self._need_first = chain.need_first
        self.last_exchange_ts_ms = chain.exchange_ts_ms
        self.last_recv_ts_ns = chain.recv_ts_ns
        self._history.clear()
        self._history.extend(applied)
        if self._synced_once:
            self.counters.resyncs += 1
        self._synced_once = True
        return [Synced(chain.last)]

    def invalidate(self, reason: str) -> list[SyncEvent]:
        """Declare the book untrustworthy (e.g. connection lost): STALE, buffer deltas
        until the next snapshot. Buffered deltas are kept (ids are venue-global, the
        policy sorts them out). Always reports ``GapDetected(reason)``."""
        return self._gap(reason, None, None)

    # ------------------------------------------------------------------ helpers
    def _verify(self, book: OrderBook, expected: int | None, sequence: int, what: str = "update") -> str | None:
        """Check the venue's checksum of ``book``; the gap reason on a mismatch."""
        checksum = self.checksum
        if expected is None or checksum is None:
            self.checksum_verified = False
            return None
        bids, asks = book.top(checksum.depth)
        local = checksum.compute(bids, asks)
        if local != expected:
            self.counters.checksum_failures += 1
            self.checksum_verified = False
            return f"checksum mismatch at {what} {sequence} (venue {expected}, local book {local})"
        self.counters.checksums_verified += 1
        self.checksum_verified = True
        return None

    @property
    def buffer_len(self) -> int:
        return len(self._buffer)

    @property
    def refreshing(self) -> bool:
        """A refresh snapshot is syncing in the shadow book."""
        return self._shadow is not None

    def _buffer_delta(self, delta: BookDelta) -> list[SyncEvent]:
        events: list[SyncEvent] = []
        if len(self._buffer) >= self.max_buffer:
            self._buffer.popleft()
            self.counters.overflows += 1
            if not self._overflowed:
                self._overflowed = True
                events = self._gap(f"buffer overflow: kept the newest {self.max_buffer} deltas", None, None)
        self._buffer.append(delta)
        self.counters.buffered += 1
        return events

    def _trim_buffer(self, start: int) -> None:
        """Keep buffered deltas from ``start`` on: older ones cannot help a newer snapshot."""
        for _ in range(min(start, len(self._buffer))):
            self._buffer.popleft()

    def _gap(self, reason: str, expected: int | None, got: int | None) -> list[SyncEvent]:
        self.state = SyncState.STALE
        self._shadow = None
        self._history.clear()
        self.counters.gaps += 1
        return [GapDetected(reason, expected, got)]

    @staticmethod
    def _crossed_reason(book: OrderBook, sequence: int, what: str = "delta") -> str:
        bid, ask = book.best_bid(), book.best_ask()
        return f"crossed book after {what} {sequence}: bid {bid[0] if bid else None} >= ask {ask[0] if ask else None}"

    def _refresh(self, snapshot: BookSnapshot) -> list[SyncEvent]:
        self._shadow = None
        try:
            book = OrderBook(self.tick_size)
            book.apply_snapshot(snapshot.bids, snapshot.asks, snapshot.depth_limit)
        except ValueError:
            self.counters.parse_errors += 1
            self.counters.refresh_failures += 1
            return []
        chain = _Chain(book, snapshot)
        for delta in self._history:
            if chain.step(self.policy, delta) is GAP:
                self.counters.refresh_failures += 1
                return []
        live = self.last_sequence
        assert live is not None
        if book.is_crossed() or chain.last < live:
            # Crossed, or older than the window of kept deltas can bridge.
            self.counters.refresh_failures += 1
            return []
        self._shadow = chain
        if chain.last == live:
            self._swap()
            return [Synced(live)]
        return []  # newer than the live book: the shadow waits for the live deltas

    def _feed_shadow(self, delta: BookDelta) -> bool:
        """Give an applied live delta to the shadow; True when the shadow was swapped in."""
        chain = self._shadow
        assert chain is not None
        verdict = chain.step(self.policy, delta)  # the live book parsed it: no ValueError
        if verdict is GAP or (verdict is APPLY and chain.book.is_crossed()):
            self._shadow = None
            self.counters.refresh_failures += 1
            return False
        if verdict is APPLY and chain.last == self.last_sequence:
            self._swap()
            return True
        return False

    def _swap(self) -> None:
        chain = self._shadow
        assert chain is not None
        self._shadow = None
        self.book._adopt(chain.book)
        # Same chain position as the live book: keep the live book's first/next mode.
        self.counters.refreshes += 1
