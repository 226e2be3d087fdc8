"""The sequence policy and the checksum, through the core's BookSync."""

from __future__ import annotations

from spiceflow_okx.sync import CHECKSUM, POLICY, checksum_text

from spiceflow_core.book.sync import BookSync, BookUpdated, GapDetected, Synced
from spiceflow_core.model import BookDelta, BookSnapshot
from spiceflow_core.plugin import Verdict


def delta(prev: int, seq: int, bids=(), asks=(), checksum=None) -> BookDelta:
    return BookDelta(
        venue="okx",
        symbol="BTC-USDT",
        first_sequence=seq,
        sequence=seq,
        prev_sequence=prev,
        bids=list(bids),
        asks=list(asks),
        checksum=checksum,
    )


def test_chain_by_prev_seq_id():
    assert POLICY.first(100, delta(100, 107)) is Verdict.APPLY  # the first update names the snapshot
    assert POLICY.next(107, delta(107, 107)) is Verdict.APPLY  # no-change update
    assert POLICY.next(107, delta(107, 3)) is Verdict.APPLY  # maintenance reset: seqId < prevSeqId
    assert POLICY.next(107, delta(90, 100)) is Verdict.DROP  # already in the book
    assert POLICY.next(107, delta(110, 115)) is Verdict.GAP  # 107 -> 110 missing


def test_checksum_text_interleaves_and_continues_the_longer_side():
    bids = [("3366.1", "7"), ("3366", "6")]
    asks = [("3366.8", "9"), ("3368", "8"), ("3372", "8")]
    assert checksum_text(bids, asks) == "3366.1:7:3366.8:9:3366:6:3368:8:3372:8"
    assert checksum_text([], asks[:1]) == "3366.8:9"


def _sync() -> BookSync:
    return BookSync("okx", "BTC-USDT", POLICY, checksum=CHECKSUM, keep_depth=400)


def test_a_matching_checksum_is_verified_and_a_wrong_one_is_a_gap():
    bids, asks = [("99", "1"), ("98", "2")], [("101", "1")]
    sync = _sync()
    snap = BookSnapshot(venue="okx", symbol="BTC-USDT", sequence=10, bids=bids, asks=asks, reset=True)
    snap.checksum = CHECKSUM.compute(bids, asks)
    assert sync.on_snapshot(snap) == [Synced(10)]
    assert sync.checksum_verified and sync.counters.checksums_verified == 1
    good = CHECKSUM.compute([("99", "5"), ("98", "2")], asks)
    assert sync.on_delta(delta(10, 12, bids=[("99", "5")], checksum=good)) == [BookUpdated(12)]
    assert sync.on_delta(delta(12, 12)) == [BookUpdated(12)]  # no checksum: not verified
    assert not sync.checksum_verified
    [gap] = sync.on_delta(delta(12, 13, asks=[("100", "1")], checksum=good))
    assert isinstance(gap, GapDetected) and "checksum mismatch" in gap.reason
    assert sync.counters.checksum_failures == 1
