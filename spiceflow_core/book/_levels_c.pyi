"""Types of the compiled book loop (``_levels_c.pyx``): the same functions as
``_levels.py``, which documents them."""

from collections.abc import Iterable

from spiceflow_core.book.orderbook import OrderBook
from spiceflow_core.model import Level

COMPILED: bool

def apply_side(book: OrderBook, levels: Iterable[Level], bid: bool) -> None: ...
def apply_levels(book: OrderBook, bids: Iterable[Level], asks: Iterable[Level]) -> bool: ...
def top_side(side: dict[int, Level], keys: list[int], n: int) -> list[Level]: ...
