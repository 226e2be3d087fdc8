"""The book's per-level hot loop, pure Python.

``_levels_c.pyx`` is the same loop compiled (Cython); ``orderbook.py`` uses it when it
was built and falls back to this module otherwise (or with ``SPICEFLOW_PURE_PYTHON=1``).
Both must behave identically: the property tests run the book on each.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from typing import TYPE_CHECKING

from spiceflow_core.book.prices import canonical_size

if TYPE_CHECKING:
    from spiceflow_core.book.orderbook import OrderBook
    from spiceflow_core.model import Level

COMPILED = False


def apply_side(book: OrderBook, levels: Iterable[Level], bid: bool) -> None:
    """Apply one side of a delta to ``book`` (absolute sizes; see ``OrderBook.apply``)."""
    cache_get = book._cache.get
    if bid:
        side, keys, floor, sign = book._bids, book._bid_keys, book._bid_floor, 1
    else:  # asks are stored under negated keys
        side, keys, floor, sign = book._asks, book._ask_keys, book._ask_floor, -1
    for price, size in levels:
        key = cache_get(price)
        if key is None:
            key, price = book._key(price)
            floor = book._bid_floor if bid else book._ask_floor  # a rescale moves the boundary
        key *= sign
        # Plain ASCII decimals ("0.35130000") skip the strict parser.
        if size.__class__ is str and (digits := size.replace(".", "", 1)).isdigit() and digits.isascii():
            zero = not digits.strip("0")
        else:
            size, zero = canonical_size(size)
        if zero:
            if key in side:
                del side[key]
                del keys[bisect_left(keys, key)]
        elif key in side:
            side[key] = (price, size)
        elif key >= floor:
            side[key] = (price, size)
            insort(keys, key)
        else:
            book.ignored += 1


def apply_levels(book: OrderBook, bids: Iterable[Level], asks: Iterable[Level]) -> bool:
    """``OrderBook.apply``: both sides of a delta (bound there as the method). Returns
    whether the book is crossed afterwards (``is_crossed()``, for the sync's hot path)."""
    if bids:
        apply_side(book, bids, True)
    if asks:
        apply_side(book, asks, False)
    bid_keys = book._bid_keys
    ask_keys = book._ask_keys
    return bool(bid_keys and ask_keys and bid_keys[-1] >= -ask_keys[-1])


def top_side(side: dict[int, Level], keys: list[int], n: int) -> list[Level]:
    """The best ``n`` levels of one side, best first (``keys`` ascending, best last)."""
    return [side[k] for k in keys[: -n - 1 : -1]]
