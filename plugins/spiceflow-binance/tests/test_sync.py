from spiceflow_binance.plugin import BinanceCoinm, BinanceSpot, BinanceUsdm
from spiceflow_binance.sync import FUTURES_POLICY, SPOT_POLICY

from spiceflow_core.book.policy import Verdict
from spiceflow_core.model import BookDelta, Instrument


def d(U, u, pu=None):
    return BookDelta(venue="v", symbol="S", first_sequence=U, sequence=u, prev_sequence=pu, bids=[], asks=[])


def test_spot_first():
    L = 100
    assert SPOT_POLICY.first(L, d(90, 99)) is Verdict.DROP
    assert SPOT_POLICY.first(L, d(95, 100)) is Verdict.DROP  # u == lastUpdateId: covered
    assert SPOT_POLICY.first(L, d(95, 101)) is Verdict.APPLY  # U <= L+1 <= u
    assert SPOT_POLICY.first(L, d(101, 101)) is Verdict.APPLY
    assert SPOT_POLICY.first(L, d(101, 105)) is Verdict.APPLY
    assert SPOT_POLICY.first(L, d(102, 105)) is Verdict.GAP  # snapshot older than the stream


def test_spot_next():
    assert SPOT_POLICY.next(105, d(106, 110)) is Verdict.APPLY
    assert SPOT_POLICY.next(105, d(107, 110)) is Verdict.GAP  # id 106 missing
    assert SPOT_POLICY.next(105, d(101, 105)) is Verdict.DROP  # duplicate
    assert SPOT_POLICY.next(105, d(104, 108)) is Verdict.GAP  # overlap: not U == u+1


def test_futures_first():
    L = 1000
    assert FUTURES_POLICY.first(L, d(900, 999, 800)) is Verdict.DROP  # u < L
    assert FUTURES_POLICY.first(L, d(900, 1000, 800)) is Verdict.APPLY  # u == L is kept (spot drops it)
    assert FUTURES_POLICY.first(L, d(990, 1050, 980)) is Verdict.APPLY  # U <= L <= u
    assert FUTURES_POLICY.first(L, d(1000, 1050, 980)) is Verdict.APPLY
    assert FUTURES_POLICY.first(L, d(1001, 1050, 990)) is Verdict.GAP  # U > L


def test_futures_next_uses_pu_not_contiguity():
    assert FUTURES_POLICY.next(1050, d(1077, 1090, 1050)) is Verdict.APPLY  # ids jump, pu links
    assert FUTURES_POLICY.next(1050, d(1051, 1090, 1049)) is Verdict.GAP  # contiguous but pu wrong
    assert FUTURES_POLICY.next(1050, d(1040, 1050, 1000)) is Verdict.DROP  # duplicate of the last
    assert FUTURES_POLICY.next(1050, d(1051, 1090, None)) is Verdict.GAP  # no pu: cannot vouch


def test_venues_pick_their_policy():
    inst = Instrument(venue="x", symbol="S", kind="spot", base="B", quote="Q", tick_size="1", lot_size="1")
    assert BinanceSpot().sequence_policy(inst) is SPOT_POLICY
    assert BinanceUsdm().sequence_policy(inst) is FUTURES_POLICY
    assert BinanceCoinm().sequence_policy(inst) is FUTURES_POLICY
