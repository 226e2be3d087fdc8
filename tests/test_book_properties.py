"""Property tests: BookSync against a naive dict-based reference book."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spiceflow_core.book import (
    BookSync,
    BookUpdated,
    ChainPolicy,
    GapDetected,
    OrderBook,
    StraddlePolicy,
    Synced,
    SyncState,
)
from spiceflow_core.model import BookDelta, BookSnapshot

pytestmark = pytest.mark.usefixtures("levels_impl")


def formats(value: Decimal) -> list[str]:
    """Different exchange spellings of one value."""
    plain = f"{value:f}"
    padded = plain + ("000" if "." in plain else ".000")
    return [
        plain,
        padded,
        f"{value:E}",
        str(value.normalize()),
        f"{value:.8f}" if value == value.quantize(Decimal("1E-8")) else plain,
    ]


prices = st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal("99999"), places=4, allow_nan=False, allow_infinity=False
)
# bids in [1, 15], asks in [16, 30] (scaled by 0.25): the reference book is never crossed
bid_ticks = st.integers(1, 15)
ask_ticks = st.integers(16, 30)
sizes = st.sampled_from(["0", "0.000", "1", "2.5", "0.00000001", "1E-8", "3.00000000", "42"])


@st.composite
def spelled(draw, ticks):
    tick = draw(ticks)
    price = Decimal(tick) / 4
    return draw(st.sampled_from(formats(price))), draw(sizes)


levels = lambda ticks: st.lists(spelled(ticks), max_size=5)  # noqa: E731
updates = st.lists(st.tuples(levels(bid_ticks), levels(ask_ticks)), min_size=1, max_size=25)


def kept(text: str) -> str:
    """What the book keeps for a spelling: plain decimals as received, others written out."""
    whole, _, frac = text.partition(".")
    return text if whole.isdigit() and (not frac or frac.isdigit()) else format(Decimal(text), "f")


def kept_size(text: str) -> str:
    return text if text.replace(".", "", 1).isdigit() else format(Decimal(text), "f")


class Reference:
    """The exchange's book after each update: dict price -> (price string, size string)."""

    def __init__(self, updates):
        self.states = [({}, {})]
        for bids, asks in updates:
            book = tuple(dict(side) for side in self.states[-1])
            for side, changes in zip(book, (bids, asks), strict=True):
                for price, size in changes:
                    if Decimal(size) == 0:
                        side.pop(Decimal(price), None)
                    else:
                        side[Decimal(price)] = (kept(price), kept_size(size))
            self.states.append(book)

    def levels(self, index):
        bids, asks = self.states[index]
        return [bids[p] for p in sorted(bids, reverse=True)], [asks[p] for p in sorted(asks)]


def make_stream(updates, straddle: bool, spans):
    """Deltas with sequence ids: straddle (contiguous U..u ranges) or chain (prev ids)."""
    deltas, seq_of = [], [0]
    for (bids, asks), span in zip(updates, spans, strict=True):
        first = seq_of[-1] + 1
        last = first + (span - 1 if straddle else span)  # chain ids skip numbers
        deltas.append(
            BookDelta(
                venue="t",
                symbol="X",
                first_sequence=first if straddle else last,
                sequence=last,
                prev_sequence=None if straddle else seq_of[-1],
                bids=list(bids),
                asks=list(asks),
            )
        )
        seq_of.append(last)
    return deltas, seq_of


@st.composite
def scenario(draw):
    ups = draw(updates)
    straddle = draw(st.booleans())
    spans = draw(st.lists(st.integers(1, 3), min_size=len(ups), max_size=len(ups)))
    n = len(ups)
    # delivery plan: every delta in order, plus duplicates and snapshots at random points
    plan = [("delta", i) for i in range(n)]
    for _ in range(draw(st.integers(1, 4))):
        plan.insert(draw(st.integers(0, len(plan))), ("snapshot", draw(st.integers(0, n))))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(plan)))
        earlier = [i for kind, i in plan[:at] if kind == "delta"]
        if earlier:
            plan.insert(at, ("delta", draw(st.sampled_from(earlier))))
    missing = draw(st.none() | st.integers(0, n - 1))
    return ups, straddle, spans, plan, missing


def run(ups, straddle, spans, plan, missing, max_buffer=10_000):
    ref = Reference(ups)
    deltas, seq_of = make_stream(ups, straddle, spans)
    index_of = {seq: i for i, seq in enumerate(seq_of)}
    sync = BookSync("t", "X", StraddlePolicy() if straddle else ChainPolicy(), max_buffer=max_buffer)
    gaps = []
    for kind, i in plan:
        if kind == "delta":
            if i == missing:
                continue
            before = (sync.state, sync.last_sequence)
            events = sync.on_delta(deltas[i])
            if (
                missing is not None
                and before[0] is SyncState.SYNCED
                and before[1] < seq_of[missing + 1]
                and i > missing
            ):
                # the live chain is before the missing delta and this one is after it
                assert any(isinstance(e, GapDetected) for e in events), (before, i, missing, events)
        else:
            bids, asks = ref.levels(i)
            events = sync.on_snapshot(BookSnapshot(venue="t", symbol="X", sequence=seq_of[i], bids=bids, asks=asks))
        for event in events:
            if isinstance(event, (Synced, BookUpdated)):
                assert event.sequence == sync.last_sequence
                assert sync.state is SyncState.SYNCED
                assert sync.book.levels() == ref.levels(index_of[event.sequence]), (kind, i, event)
            else:
                gaps.append(event)
    if sync.state is SyncState.SYNCED:
        assert sync.book.levels() == ref.levels(index_of[sync.last_sequence])
    return sync, gaps


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_random_interleavings_match_reference(case):
    ups, straddle, spans, plan, _ = case
    sync, gaps = run(ups, straddle, spans, plan, missing=None)
    # Nothing missing: the only legitimate complaint is a snapshot that came too early.
    assert all(g.reason.startswith("snapshot older than buffered deltas") for g in gaps), gaps
    # A final fresh snapshot always brings the book in sync.
    ref = Reference(ups)
    _, seq_of = make_stream(ups, straddle, spans)
    bids, asks = ref.levels(len(ups))
    events = sync.on_snapshot(BookSnapshot(venue="t", symbol="X", sequence=seq_of[-1], bids=bids, asks=asks))
    assert sync.state is SyncState.SYNCED and not any(isinstance(e, GapDetected) for e in events)
    assert sync.book.levels() == ref.levels(len(ups))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_missing_delta_is_always_detected(case):
    ups, straddle, spans, plan, missing = case
    assume(missing is not None)
    run(ups, straddle, spans, plan, missing)  # run() asserts detection and never a wrong book


@settings(max_examples=200, deadline=None)
@given(scenario(), st.integers(1, 4))
def test_small_buffers_never_publish_a_wrong_book(case, max_buffer):
    ups, straddle, spans, plan, missing = case
    run(ups, straddle, spans, plan, missing, max_buffer=max_buffer)


@given(prices, st.data())
def test_format_variants_hit_the_same_level(price, data):
    book = OrderBook()
    variants = formats(price)
    book.apply_snapshot([(variants[0], "1")], [])
    for _ in range(5):
        spelling = data.draw(st.sampled_from(variants))
        size = data.draw(st.sampled_from(["1", "2.50", "3E-8"]))
        book.apply([(spelling, size)], [])
        assert len(book) == 1
        assert book.best_bid() == (kept(spelling), kept_size(size))
    assert len({book.key_of(v) for v in variants}) == 1
    book.apply([(data.draw(st.sampled_from(variants)), "0.0000")], [])
    assert len(book) == 0


@given(st.lists(st.tuples(prices, st.booleans()), max_size=40))
def test_order_matches_decimal_order(entries):
    book = OrderBook()
    for price, as_exponent in entries:
        book.apply([(f"{price:E}" if as_exponent else f"{price:f}", "1")], [])
    got = [Decimal(p) for p, _ in book.levels()[0]]
    assert got == sorted({p for p, _ in entries}, reverse=True)
