"""BookSync and the reference policies: each sequencing rule on its own."""

from __future__ import annotations

import pytest

from spiceflow_core.book import (
    BookSync,
    BookUpdated,
    ChainPolicy,
    GapDetected,
    PrevIdPolicy,
    StraddlePolicy,
    Synced,
    SyncState,
    Verdict,
)
from spiceflow_core.model import BookDelta, BookSnapshot


def snap(seq, bids=(("100", "1"),), asks=(("101", "1"),), depth_limit=None, symbol="BTCUSDT"):
    return BookSnapshot(
        venue="v", symbol=symbol, sequence=seq, bids=list(bids), asks=list(asks), depth_limit=depth_limit
    )


def delta(first, last, bids=(), asks=(), prev=None, symbol="BTCUSDT"):
    return BookDelta(
        venue="v",
        symbol=symbol,
        first_sequence=first,
        sequence=last,
        prev_sequence=prev,
        bids=list(bids),
        asks=list(asks),
    )


def synced(seq=10, policy=None, **kw) -> BookSync:
    sync = BookSync("v", "BTCUSDT", policy or StraddlePolicy(), **kw)
    assert sync.on_snapshot(snap(seq)) == [Synced(seq)]
    return sync


# ---------------------------------------------------------------- policies
def test_straddle_policy():
    p = StraddlePolicy()
    assert p.first(10, delta(5, 10)) is Verdict.DROP
    assert p.first(10, delta(8, 11)) is Verdict.APPLY
    assert p.first(10, delta(11, 12)) is Verdict.APPLY
    assert p.first(10, delta(12, 13)) is Verdict.GAP
    assert p.next(10, delta(11, 11)) is Verdict.APPLY
    assert p.next(10, delta(9, 10)) is Verdict.DROP
    assert p.next(10, delta(12, 12)) is Verdict.GAP
    assert p.next(10, delta(10, 12)) is Verdict.GAP  # overlap is not a continuation


def test_prev_id_policy_inclusive_and_not():
    p = PrevIdPolicy()
    assert p.first(100, delta(50, 99, prev=40)) is Verdict.DROP
    assert p.first(100, delta(90, 100, prev=80)) is Verdict.APPLY  # u == S applies (futures)
    assert p.first(100, delta(95, 120, prev=90)) is Verdict.APPLY
    # pu == S: the event directly follows the snapshot's state, so it continues it
    assert p.first(100, delta(101, 120, prev=100)) is Verdict.APPLY
    assert p.first(100, delta(101, 120, prev=99)) is Verdict.GAP
    assert p.first(100, delta(105, 120, prev=103)) is Verdict.GAP
    assert p.next(120, delta(130, 140, prev=120)) is Verdict.APPLY
    assert p.next(120, delta(100, 120, prev=95)) is Verdict.DROP
    assert p.next(120, delta(130, 140, prev=125)) is Verdict.GAP
    q = PrevIdPolicy(straddle_inclusive=False)
    assert q.first(100, delta(90, 100, prev=80)) is Verdict.DROP
    assert q.first(100, delta(95, 120, prev=90)) is Verdict.APPLY


def test_chain_policy():
    p = ChainPolicy()
    assert p.first(100, delta(105, 105, prev=100)) is Verdict.APPLY
    assert p.first(100, delta(99, 99, prev=97)) is Verdict.DROP
    assert p.first(100, delta(100, 100, prev=97)) is Verdict.DROP
    assert p.first(100, delta(107, 107, prev=105)) is Verdict.GAP
    assert p.next(105, delta(107, 107, prev=105)) is Verdict.APPLY
    assert p.next(105, delta(109, 109, prev=107)) is Verdict.GAP


# ---------------------------------------------------------------- sync
def test_buffers_before_snapshot_then_drops_stale_and_applies_straddle():
    sync = BookSync("v", "BTCUSDT", StraddlePolicy())
    assert sync.state is SyncState.AWAITING_SNAPSHOT
    assert sync.on_delta(delta(1, 5, bids=[("99", "9")])) == []  # covered by the snapshot
    assert sync.on_delta(delta(6, 12, bids=[("100", "2")])) == []  # straddles 11
    assert sync.on_delta(delta(13, 13, asks=[("101", "0"), ("102", "3")])) == []
    assert sync.counters.buffered == 3 and sync.buffer_len == 3
    assert sync.on_snapshot(snap(10)) == [Synced(13)]
    assert sync.state is SyncState.SYNCED and sync.last_sequence == 13
    assert sync.counters.dropped == 1 and sync.counters.applied == 2
    assert sync.book.levels() == ([("100", "2")], [("102", "3")])
    assert sync.on_delta(delta(14, 15, bids=[("100.5", "1")])) == [BookUpdated(15)]
    assert sync.buffer_len == 0


def test_snapshot_newer_than_buffer_waits_for_first_delta():
    sync = BookSync("v", "BTCUSDT", StraddlePolicy())
    sync.on_delta(delta(1, 5))
    assert sync.on_snapshot(snap(20)) == [Synced(20)]
    assert sync.counters.dropped == 1
    assert sync.on_delta(delta(15, 20)) == []  # still covered
    assert sync.on_delta(delta(19, 22, bids=[("100", "5")])) == [BookUpdated(22)]  # first(): straddle
    assert sync.on_delta(delta(23, 23)) == [BookUpdated(23)]  # next(): contiguous


def test_first_delta_after_snapshot_not_straddling_is_a_gap():
    sync = synced(10)
    events = sync.on_delta(delta(12, 13))
    assert events == [GapDetected("sequence gap at 13", 10, 11)]
    assert sync.state is SyncState.STALE and sync.counters.gaps == 1


def test_snapshot_older_than_buffered_deltas():
    sync = BookSync("v", "BTCUSDT", StraddlePolicy())
    sync.on_delta(delta(20, 25))
    sync.on_delta(delta(26, 30))
    [event] = sync.on_snapshot(snap(10))
    assert isinstance(event, GapDetected) and event.reason.startswith("snapshot older than buffered deltas")
    assert (event.expected, event.got) == (10, 19)
    assert sync.state is SyncState.STALE
    # The caller fetches a newer snapshot; the kept buffer lets it catch up.
    assert sync.on_snapshot(snap(27)) == [Synced(30)]
    assert sync.counters.resyncs == 0  # never synced before: the first sync is not a resync


def test_gap_then_resync_heals():
    sync = synced(10)
    assert sync.on_delta(delta(11, 12, bids=[("100", "2")])) == [BookUpdated(12)]
    assert isinstance(sync.on_delta(delta(14, 15))[0], GapDetected)  # 13 missing
    assert sync.on_delta(delta(16, 16, asks=[("101", "7")])) == []  # buffered while STALE
    assert sync.counters.buffered == 2
    assert sync.on_snapshot(snap(14, bids=[("100", "3")])) == [Synced(16)]
    assert sync.counters.resyncs == 1
    assert sync.book.levels() == ([("100", "3")], [("101", "7")])


def test_duplicates_and_reordered_old_deltas_are_dropped():
    sync = synced(10)
    sync.on_delta(delta(11, 12, bids=[("100", "2")]))
    assert sync.on_delta(delta(11, 12, bids=[("100", "999")])) == []  # duplicate
    assert sync.on_delta(delta(8, 9, bids=[("100", "999")])) == []  # late, already covered
    assert sync.counters.dropped == 2
    assert sync.book.best_bid() == ("100", "2")
    assert sync.state is SyncState.SYNCED


def test_reordered_future_delta_is_a_gap():
    sync = synced(10, policy=ChainPolicy())
    sync.on_delta(delta(11, 11, prev=10))
    events = sync.on_delta(delta(13, 13, prev=12))  # 12 arrives after 13
    assert events == [GapDetected("sequence gap at 13", 11, 12)]
    assert sync.on_delta(delta(12, 12, prev=11)) == []  # buffered, no further report


def test_crossed_book_after_update_is_a_gap_not_an_update():
    sync = synced(10)
    events = sync.on_delta(delta(11, 11, bids=[("101.00", "1")]))
    assert len(events) == 1 and isinstance(events[0], GapDetected)
    assert events[0].reason.startswith("crossed book") and events[0].got == 11
    assert sync.state is SyncState.STALE


def test_crossed_snapshot_is_a_gap():
    sync = BookSync("v", "BTCUSDT", StraddlePolicy())
    [event] = sync.on_snapshot(snap(10, bids=[("101", "1")], asks=[("100", "1")]))
    assert isinstance(event, GapDetected) and event.reason.startswith("crossed book after snapshot")


def test_crossed_while_replaying_buffer_is_a_gap():
    sync = BookSync("v", "BTCUSDT", StraddlePolicy())
    sync.on_delta(delta(11, 11, asks=[("99", "1")]))
    [event] = sync.on_snapshot(snap(10))
    assert isinstance(event, GapDetected) and event.reason.startswith("crossed book")


def test_malformed_delta_is_a_gap_and_counted():
    sync = synced(10)
    [event] = sync.on_delta(delta(11, 11, bids=[("100", "-1")]))
    assert isinstance(event, GapDetected) and event.reason.startswith("malformed delta 11")
    assert sync.counters.parse_errors == 1 and sync.state is SyncState.STALE


def test_malformed_snapshot_is_reported():
    sync = BookSync("v", "BTCUSDT", StraddlePolicy())
    [event] = sync.on_snapshot(snap(10, bids=[("abc", "1")]))
    assert isinstance(event, GapDetected) and sync.counters.parse_errors == 1


def test_buffer_overflow_keeps_newest_and_reports_once():
    sync = BookSync("v", "BTCUSDT", StraddlePolicy(), max_buffer=3)
    events = []
    for i in range(1, 7):
        events += sync.on_delta(delta(i, i, bids=[("100", str(i))]))
    assert len(events) == 1 and events[0].reason.startswith("buffer overflow")
    assert sync.buffer_len == 3 and sync.counters.overflows == 3 and sync.counters.gaps == 1
    assert sync.state is SyncState.STALE
    # A snapshot older than the kept deltas cannot catch up...
    assert isinstance(sync.on_snapshot(snap(1))[0], GapDetected)
    # ...a later one can: the newest deltas were kept.
    assert sync.on_snapshot(snap(3)) == [Synced(6)]
    assert sync.book.best_bid() == ("100", "6")


def test_per_instrument_independence():
    a = BookSync("v", "AAA", StraddlePolicy())
    b = BookSync("v", "BBB", StraddlePolicy())
    a.on_snapshot(snap(10, symbol="AAA"))
    b.on_snapshot(snap(10, symbol="BBB"))
    assert isinstance(a.on_delta(delta(15, 15, symbol="AAA"))[0], GapDetected)
    assert b.on_delta(delta(11, 11, bids=[("100", "4")], symbol="BBB")) == [BookUpdated(11)]
    assert a.state is SyncState.STALE and b.state is SyncState.SYNCED
    assert b.book.best_bid() == ("100", "4") and b.counters.gaps == 0


def test_invalidate_goes_stale_and_buffers():
    sync = synced(10)
    assert sync.invalidate("connection lost") == [GapDetected("connection lost", None, None)]
    assert sync.state is SyncState.STALE
    assert sync.on_delta(delta(11, 12, bids=[("100", "5")])) == []
    assert sync.on_snapshot(snap(10)) == [Synced(12)]


def test_book_object_identity_is_kept_across_resyncs():
    sync = synced(10)
    book = sync.book
    sync.invalidate("x")
    sync.on_snapshot(snap(50, bids=[("90", "1")]))
    assert sync.book is book and book.best_bid() == ("90", "1")


def test_truncated_snapshot_never_publishes_beyond_boundary():
    sync = BookSync("v", "BTCUSDT", StraddlePolicy())
    bids = [(str(p), "1") for p in range(100, 90, -1)]
    asks = [(str(p), "1") for p in range(101, 111)]
    sync.on_snapshot(snap(10, bids=bids, asks=asks, depth_limit=10))
    sync.on_delta(delta(11, 11, bids=[("90", "5"), ("80", "5")]))  # beyond the boundary 91
    assert all(p not in ("90", "80") for p, _ in sync.book.levels()[0])
    sync.on_delta(delta(12, 12, bids=[(str(p), "0") for p in range(100, 91, -1)]))
    assert sync.book.levels()[0] == [("91", "1")]
    assert sync.book.ignored == 2


# ---------------------------------------------------------------- refresh
def test_refresh_newer_snapshot_keeps_publishing_then_swaps():
    sync = synced(10)
    sync.on_delta(delta(11, 11, bids=[("99", "1")]))
    # A refresh snapshot at 13, whose book differs (the live book drifted: 99 is stale).
    assert sync.on_snapshot(snap(13, bids=[("100", "3")])) == []
    assert sync.refreshing and sync.state is SyncState.SYNCED
    assert sync.on_delta(delta(12, 12, bids=[("100", "2")])) == [BookUpdated(12)]  # live goes on
    assert sync.book.levels()[0] == [("100", "2"), ("99", "1")]
    assert sync.on_delta(delta(13, 14, bids=[("100", "4")])) == [Synced(14)]  # shadow swapped in
    assert sync.book.levels()[0] == [("100", "4")]
    assert not sync.refreshing and sync.counters.refreshes == 1
    assert sync.on_delta(delta(15, 15)) == [BookUpdated(15)]


def test_refresh_older_snapshot_catches_up_from_recent_deltas():
    sync = synced(10)
    for i in range(11, 15):
        sync.on_delta(delta(i, i, bids=[("100", str(i))]))
    assert sync.on_snapshot(snap(12, bids=[("100", "12"), ("98", "1")])) == [Synced(14)]
    assert sync.book.levels()[0] == [("100", "14"), ("98", "1")]
    assert sync.counters.refreshes == 1


def test_refresh_at_same_sequence_swaps_immediately():
    sync = synced(10)
    sync.on_delta(delta(11, 11))
    assert sync.on_snapshot(snap(11, bids=[("100", "8")])) == [Synced(11)]
    assert sync.on_delta(delta(12, 12)) == [BookUpdated(12)]
    assert sync.book.best_bid() == ("100", "8")


def test_unusable_refresh_is_dropped_without_gap():
    sync = synced(10)
    sync.on_delta(delta(11, 11, bids=[("100", "2")]))
    # Too old: the kept recent deltas start after it.
    sync2 = synced(10, refresh_window=1)
    sync2.on_delta(delta(11, 11))
    sync2.on_delta(delta(12, 12))
    assert sync2.on_snapshot(snap(5)) == [] and sync2.counters.refresh_failures == 1
    # Malformed / crossed refresh snapshots.
    assert sync.on_snapshot(snap(20, bids=[("x", "1")])) == []
    assert sync.on_snapshot(snap(11, bids=[("102", "1")])) == []
    # A newer snapshot: the shadow drops the covered deltas, then straddles and swaps.
    assert sync.on_snapshot(snap(13)) == []
    assert sync.refreshing
    assert sync.on_delta(delta(12, 12, bids=[("100", "3")])) == [BookUpdated(12)]
    assert sync.on_delta(delta(13, 13)) == [BookUpdated(13)]  # 13 <= 13: shadow drops it
    assert sync.on_delta(delta(14, 14)) == [Synced(14)]  # shadow straddles 14
    assert sync.counters.refresh_failures == 2 and sync.counters.gaps == 0
    assert sync.state is SyncState.SYNCED


def test_refresh_shadow_dropped_on_its_own_gap():
    sync = synced(10, policy=ChainPolicy())
    sync.on_delta(delta(11, 11, prev=10))
    assert sync.on_snapshot(snap(12)) == []  # ahead of live: waits
    # The next live delta continues live (prev 11) but the shadow needs prev == 12.
    assert sync.on_delta(delta(13, 13, prev=11, bids=[("100", "5")])) == [BookUpdated(13)]
    assert not sync.refreshing and sync.counters.refresh_failures == 1
    assert sync.book.best_bid() == ("100", "5") and sync.counters.gaps == 0


def test_live_gap_drops_pending_refresh():
    sync = synced(10)
    sync.on_snapshot(snap(20))
    assert sync.refreshing
    assert isinstance(sync.on_delta(delta(12, 12))[0], GapDetected)
    assert not sync.refreshing and sync.state is SyncState.STALE


def test_timestamps_follow_applied_updates():
    sync = BookSync("v", "BTCUSDT", StraddlePolicy())
    s = snap(10)
    s.exchange_ts_ms, s.recv_ts_ns = 1000, 5
    sync.on_snapshot(s)
    assert (sync.last_exchange_ts_ms, sync.last_recv_ts_ns) == (1000, 5)
    d = delta(11, 11)
    d.exchange_ts_ms, d.recv_ts_ns = 1100, 9
    sync.on_delta(d)
    assert (sync.last_exchange_ts_ms, sync.last_recv_ts_ns) == (1100, 9)


@pytest.mark.parametrize("bad", [0, -1])
def test_max_buffer_must_be_positive(bad):
    with pytest.raises(ValueError):
        BookSync("v", "X", StraddlePolicy(), max_buffer=bad)


# -- venue checksums, maintained depth, reset snapshots -------------------------------


class _SumOfSizes:
    """A stand-in venue checksum: the sum of the top-2 sizes (as integers)."""

    depth = 2

    def compute(self, bids, asks):
        return sum(int(size) for _, size in bids + asks)


def test_a_matching_venue_checksum_vouches_for_the_book_and_a_wrong_one_is_a_gap():
    sync = BookSync("v", "S", ChainPolicy(), checksum=_SumOfSizes())
    snapshot = BookSnapshot(venue="v", symbol="S", sequence=1, bids=[("100", "1")], asks=[("101", "2")], checksum=3)
    assert sync.on_snapshot(snapshot) == [Synced(1)]
    assert sync.checksum_verified and sync.counters.checksums_verified == 1
    ok = BookDelta(venue="v", symbol="S", first_sequence=2, sequence=2, prev_sequence=1, bids=[("99", "4")], asks=[])
    ok.checksum = 7  # top 2: bids 1 + 4, ask 2
    assert sync.on_delta(ok) == [BookUpdated(2)]
    assert sync.checksum_verified
    absent = BookDelta(venue="v", symbol="S", first_sequence=3, sequence=3, prev_sequence=2, bids=[], asks=[])
    assert sync.on_delta(absent) == [BookUpdated(3)]
    assert not sync.checksum_verified  # nothing vouched for this one
    wrong = BookDelta(venue="v", symbol="S", first_sequence=4, sequence=4, prev_sequence=3, bids=[("99", "5")], asks=[])
    wrong.checksum = 7  # the venue's book says 8
    (event,) = sync.on_delta(wrong)
    assert isinstance(event, GapDetected) and "checksum mismatch at update 4 (venue 7, local book 8)" in event.reason
    assert sync.state is SyncState.STALE and sync.counters.checksum_failures == 1


def test_a_maintained_depth_cuts_the_book_after_every_message():
    sync = BookSync("v", "S", ChainPolicy(), keep_depth=2)
    levels = [(str(100 - i), "1") for i in range(4)]
    sync.on_snapshot(BookSnapshot(venue="v", symbol="S", sequence=1, bids=levels, asks=[("101", "1")]))
    assert sync.book.top(10)[0] == levels[:2]
    sync.on_delta(
        BookDelta(venue="v", symbol="S", first_sequence=2, sequence=2, prev_sequence=1, bids=[("100.5", "1")], asks=[])
    )
    assert sync.book.top(10)[0] == [("100.5", "1"), ("100", "1")]


def test_a_reset_snapshot_replaces_an_in_sync_book_at_once():
    sync = synced(10, ChainPolicy())
    restarted = BookSnapshot(
        venue="v", symbol="BTCUSDT", sequence=1, bids=[("50", "1")], asks=[("51", "1")], reset=True
    )
    assert sync.on_snapshot(restarted) == [Synced(1)]
    assert sync.book.top(5) == ([("50", "1")], [("51", "1")])
    assert sync.last_sequence == 1
