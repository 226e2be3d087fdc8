"""OrderBook: exact levels, formats, deletion, truncation boundary, validation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from spiceflow_core.book import OrderBook

pytestmark = pytest.mark.usefixtures("levels_impl")


def book_with(bids, asks, **kw) -> OrderBook:
    book = OrderBook(**kw)
    book.apply_snapshot(bids, asks)
    return book


def test_snapshot_orders_best_first_and_keeps_strings():
    book = book_with(
        [("43250.10", "1.5"), ("43251.00", "0.1"), ("43249.99", "2")], [("43252.00", "3"), ("43251.50", "4")]
    )
    assert book.levels() == (
        [("43251.00", "0.1"), ("43250.10", "1.5"), ("43249.99", "2")],
        [("43251.50", "4"), ("43252.00", "3")],
    )
    assert book.best_bid() == ("43251.00", "0.1")
    assert book.best_ask() == ("43251.50", "4")
    assert len(book) == 5
    assert book.top(2) == ([("43251.00", "0.1"), ("43250.10", "1.5")], [("43251.50", "4"), ("43252.00", "3")])
    assert book.top(0) == ([], [])


def test_empty_book():
    book = OrderBook()
    assert book.best_bid() is None and book.best_ask() is None
    assert book.top(5) == ([], []) and len(book) == 0 and not book.is_crossed()


@pytest.mark.parametrize("zero", ["0", "0.000", "0.00000000", "0E-8", "0.", ".0", Decimal(0), Decimal("0E-8"), 0])
def test_zero_size_in_any_format_deletes(zero):
    book = book_with([("0.35130000", "6195.00000000"), ("0.35120000", "1")], [])
    book.apply([("0.3513", zero)], [])
    assert book.levels() == ([("0.35120000", "1")], [])


def test_deleting_an_absent_level_is_a_no_op():
    book = book_with([("1.0", "1")], [("2.0", "1")])
    book.apply([("0.5", "0")], [("3", "0.0")])
    assert len(book) == 2


@pytest.mark.parametrize(
    "variant, kept",
    [
        ("0.3513", "0.3513"),
        ("0.35130000", "0.35130000"),
        ("0.351300", "0.351300"),
        ("3.513E-1", "0.3513"),
        ("3513E-4", "0.3513"),
        ("0.3513000000000000000", "0.3513000000000000000"),
        (Decimal("0.3513"), "0.3513"),
    ],
)
def test_price_formats_are_one_level_and_keep_last_string(variant, kept):
    book = book_with([("0.35130000", "1.00000000")], [])
    book.apply([(variant, "2")], [])
    assert len(book) == 1
    assert book.best_bid() == (kept, "2")


def test_sizes_compare_exactly_and_keep_their_format():
    book = book_with([("1", "1E-8")], [("2", "0.00000001")])
    assert book.best_bid() == ("1", "0.00000001")  # exponent spellings are kept as plain decimals
    assert book.best_ask() == ("2", "0.00000001")


def test_scale_grows_exactly_when_finer_prices_arrive():
    book = OrderBook(tick_size="0.01")
    book.apply_snapshot([("43250.10", "1"), ("43250.00", "1")], [("43250.20", "1")])
    assert book.scale == 2
    book.apply([("43250.105", "7")], [("43250.1999999999999", "1")])  # beyond float precision
    assert book.scale == 13
    assert book.levels()[0] == [("43250.105", "7"), ("43250.10", "1"), ("43250.00", "1")]
    assert book.levels()[1] == [("43250.1999999999999", "1"), ("43250.20", "1")]
    book.apply([("43250.1", "0")], [])  # still one level per price after rescaling
    assert book.levels()[0] == [("43250.105", "7"), ("43250.00", "1")]


def test_finer_price_inside_a_snapshot_rescales_earlier_keys():
    book = OrderBook()
    book.apply_snapshot([("10", "1"), ("9.5", "1"), ("9.25", "1")], [("11", "1"), ("10.125", "1")])
    assert [p for p, _ in book.levels()[0]] == ["10", "9.5", "9.25"]
    assert [p for p, _ in book.levels()[1]] == ["10.125", "11"]
    assert not book.is_crossed()


def test_exponent_forms_are_kept_as_plain_decimals():
    book = OrderBook()
    book.apply_snapshot([(str(Decimal("0.00000001")), "5E+0")], [(str(Decimal("1E+1")), "1")])
    assert book.levels() == ([("0.00000001", "5")], [("10", "1")])
    book.apply([("1e-8", "1.50E+1"), (Decimal("2E-8"), Decimal("3E-3"))], [(10, 2)])
    assert book.levels() == ([("0.00000002", "0.003"), ("0.00000001", "15.0")], [("10", "2")])
    # a cache hit must not bring an exponent spelling back
    book.apply([("1e-8", "1")], [])
    assert book.best_bid() == ("0.00000002", "0.003") and book.levels()[0][1] == ("0.00000001", "1")
    book.apply([("0.00000001", "6")], [("10", "2")])
    assert book.levels() == ([("0.00000002", "0.003"), ("0.00000001", "6")], [("10", "2")])


@pytest.mark.parametrize(
    "bad",
    ["-1", "-0", "abc", "", "NaN", "inf", "Infinity", "1_000", " 1", "1 ", "+1", "1e", "٣", "1.2.3", 1.5, None, True],
)
def test_malformed_or_negative_values_raise_value_error(bad):
    book = OrderBook()
    with pytest.raises(ValueError):
        book.apply([("1", bad)], [])
    with pytest.raises(ValueError):
        book.apply([(bad, "1")], [])
    with pytest.raises(ValueError):
        book.apply_snapshot([], [(bad, "1")])


def test_crossed_detection_is_exact():
    book = book_with([("100.00", "1")], [("100.01", "1")])
    assert not book.is_crossed()
    book.apply([("100.0100", "1")], [])
    assert book.is_crossed()
    book.apply([("100.01", "0")], [])
    assert not book.is_crossed()


def test_depth_limit_truncates_and_ignores_beyond_boundary():
    bids = [(str(p), "1") for p in range(100, 90, -1)]  # 100..91
    asks = [(str(p), "1") for p in range(101, 111)]  # 101..110
    book = OrderBook()
    book.apply_snapshot(bids, asks, depth_limit=5)
    assert [p for p, _ in book.levels()[0]] == ["100", "99", "98", "97", "96"]
    assert [p for p, _ in book.levels()[1]] == ["101", "102", "103", "104", "105"]
    assert book.bounds() == ("96", "105")
    # Beyond the boundary: ignored. At the boundary and inside: applied.
    book.apply([("95", "7"), ("96", "2"), ("97.5", "3")], [("106", "7"), ("105", "2"), ("104.5", "3")])
    assert book.ignored == 2
    assert [p for p, _ in book.levels()[0]] == ["100", "99", "98", "97.5", "97", "96"]
    assert [p for p, _ in book.levels()[1]] == ["101", "102", "103", "104", "104.5", "105"]
    # The price moves down: the top levels go, no stale level below 96 ever surfaces.
    book.apply([(p, "0") for p in ["100", "99", "98", "97.5", "97"]], [])
    book.apply([("94", "1")], [])
    assert book.levels()[0] == [("96", "2")]
    book.apply([("96", "0")], [])
    assert book.levels()[0] == [] and book.best_bid() is None


def test_depth_limit_side_shorter_than_limit_has_no_boundary():
    book = OrderBook()
    book.apply_snapshot([("10", "1"), ("9", "1")], [(str(p), "1") for p in range(11, 20)], depth_limit=5)
    assert book.bounds() == (None, "15")
    book.apply([("1", "1")], [("16", "1")])
    assert book.levels()[0][-1] == ("1", "1")
    assert ("16", "1") not in book.levels()[1]


def test_boundary_survives_rescale():
    book = OrderBook()
    book.apply_snapshot([("10", "1"), ("9", "1")], [("11", "1"), ("12", "1")], depth_limit=2)
    book.apply([("8.99", "1"), ("9.01", "1")], [("12.01", "1"), ("11.99", "1")])
    assert [p for p, _ in book.levels()[0]] == ["10", "9.01", "9"]
    assert [p for p, _ in book.levels()[1]] == ["11", "11.99", "12"]
    assert book.bounds() == ("9", "12")


def test_snapshot_replaces_everything_and_resets_boundaries():
    book = OrderBook()
    book.apply_snapshot([("10", "1"), ("9", "1")], [("11", "1")], depth_limit=2)
    book.apply_snapshot([("5", "1"), ("4", "0"), ("5.0", "2")], [("6", "1")])
    assert book.levels() == ([("5.0", "2")], [("6", "1")])  # repeated price: last wins
    assert book.bounds() == (None, None)
    book.apply([("1", "1")], [])
    assert len(book) == 3


def test_top_returns_exactly_n_best():
    bids = [(f"{p}.5", "1") for p in range(1, 100)]
    book = book_with(bids, [])
    top, _ = book.top(25)
    assert len(top) == 25 and top[0] == ("99.5", "1") and top[-1] == ("75.5", "1")
    assert book.top(1000)[0] == book.levels()[0]


def test_cache_bound_does_not_change_results(monkeypatch):
    import spiceflow_core.book.orderbook as ob

    monkeypatch.setattr(ob, "_CACHE_MAX", 3)
    book = OrderBook()
    for i in range(50):
        book.apply([(f"{i}.{i}", "1")], [])
    assert len(book) == 50 and book.best_bid() == ("49.49", "1")
