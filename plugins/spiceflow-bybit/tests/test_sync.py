"""``u`` continuity (sync.POLICY): what keeps Bybit books exact."""

from spiceflow_bybit.sync import POLICY

from spiceflow_core.book.sync import BookSync
from spiceflow_core.plugin import BookDelta, BookSnapshot, Verdict


def delta(u: int, bids=(), asks=()) -> BookDelta:
    return BookDelta(
        venue="bybit-linear", symbol="BTCUSDT", first_sequence=u, sequence=u, bids=list(bids), asks=list(asks)
    )


def test_first_delta_after_a_snapshot():
    assert POLICY.first(1000, delta(1000)) is Verdict.DROP
    assert POLICY.first(1000, delta(1001)) is Verdict.APPLY
    assert POLICY.first(1000, delta(1002)) is Verdict.GAP


def test_next_deltas_are_continuous():
    assert POLICY.next(1001, delta(1002)) is Verdict.APPLY
    assert POLICY.next(1001, delta(1001)) is Verdict.DROP
    assert POLICY.next(1001, delta(1003)) is Verdict.GAP


def snapshot(u: int, bids, asks) -> BookSnapshot:
    return BookSnapshot(venue="bybit-linear", symbol="BTCUSDT", sequence=u, bids=bids, asks=asks, reset=True)


def test_a_restart_snapshot_with_u_1_replaces_an_in_sync_book():
    sync = BookSync("bybit-linear", "BTCUSDT", POLICY, keep_depth=2)
    sync.on_snapshot(snapshot(500, [("10", "1"), ("9", "1")], [("11", "1"), ("12", "1")]))
    sync.on_delta(delta(501, bids=[("9.5", "2")]))
    assert sync.book.top(5)[0] == [("10", "1"), ("9.5", "2")]  # cut at the maintained depth
    sync.on_snapshot(snapshot(1, [("20", "1")], [("21", "1")]))
    assert sync.state.name == "SYNCED" and sync.last_sequence == 1
    assert sync.book.top(5) == ([("20", "1")], [("21", "1")])
    sync.on_delta(delta(2, asks=[("22", "3")]))
    assert sync.last_sequence == 2 and sync.counters.gaps == 0
