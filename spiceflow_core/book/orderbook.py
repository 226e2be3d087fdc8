"""One exact L2 order book: levels keyed by scaled integers, kept as the exchange's strings.

Representation (chosen by ``benchmarks/bench_book.py``, which times the alternatives)
------------------------------------------------------------------------------------
Measured on the benchmark's stream (1,000 levels a side, changes near the top, 10%
deletions + insertions), level updates/s relative to this engine: Decimal parsed per
update + SortedDict 0.32x; cached Decimal keys + SortedDict 0.38x; cached int keys +
SortedDict 0.64x; cached Decimal keys + this dict/list structure 0.47x; this engine
(cached int keys + dict/list) 1.00x = ~2.6M updates/s on one core (CPython 3.11).

* **Keys are exact scaled integers** ``price * 10**scale``. ``scale`` is per book: the
  decimals of ``tick_size`` when given, grown on the fly when a price with more
  significant decimals arrives (every key is multiplied up, once; rare). So
  ``"0.3513"``, ``"0.35130000"`` and ``"3.513E-1"`` are one level, and comparisons are
  int comparisons, the cheapest ordered key CPython has (Decimal hashing/comparison is
  what costs the Decimal variants half their speed).
* **A string->key cache** per book: real traffic repeats the same few hundred price
  strings, so the parse (validation + scaling, ``prices.py``) runs once per distinct
  string and a level update costs one dict lookup for its price. The cache is cleared
  when it grows past ``_CACHE_MAX`` entries or when the scale changes.
* **Per side: a dict key -> (price, size) strings + a plain sorted ``list`` of keys with
  the best price at the END** (bids ascending; asks stored as negated keys, ascending).
  Updates of existing levels (most traffic) touch only the dict; inserts and deletes
  near the top ``bisect`` + move only the few pointers above the slot; ``top(n)`` is a
  reversed slice. For books of a few thousand levels this beats
  ``sortedcontainers.SortedList``/``SortedDict``, whose Python-level bookkeeping costs
  more than the memmove it saves; a book of ~100k levels with changes deep in it would
  favour SortedList again (not a shape seen on these venues).
* Sizes are validated by a cheap ASCII-digits check (``"0.35130000"``); anything else
  (``"1E-8"``, ``Decimal``) goes through the strict parser. Size zero in any format
  deletes the level.
* Kept strings: a plain decimal string is kept exactly as received (``"0.35130000"``
  stays so); any other spelling of a valid value (``"1E-8"``, a ``Decimal``/``int``) is
  kept as its exact plain decimal text (``"0.00000001"``). Every published level is a
  plain decimal string, equal in value to what the exchange sent.

Depth truncation
----------------
``apply_snapshot(..., depth_limit=N)`` keeps the best ``N`` levels per side. When a side
has ``N`` levels (the source was cut at ``N``), the book vouches only for prices between
that side's best and its *worst snapshot price* (the boundary, inclusive). Updates to
prices beyond the boundary are ignored (counted in ``ignored``) and never stored, so when
the market moves towards them no stale or partial level ever surfaces: the visible depth
shrinks instead. A side with fewer than ``N`` levels was complete and has no boundary.

Errors
------
A negative, non-numeric, NaN, or float price/size raises ``ValueError``. ``apply`` is not
transactional: levels before the bad one stay applied (validating first would cost a
second pass on every update). ``BookSync`` therefore treats a malformed delta as a gap.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from spiceflow_core.book.prices import canonical_size, decimals_of, parts_and_text
from spiceflow_core.model import Level

# The per-level loop: compiled when the Cython extension was built (see _levels_c.pyx),
# else pure Python; SPICEFLOW_PURE_PYTHON=1 forces the latter (debugging, tests).
if os.environ.get("SPICEFLOW_PURE_PYTHON"):
    from spiceflow_core.book import _levels as levels_impl
else:
    try:
        # same functions as _levels (see _levels_c.pyi); mypy sees two modules under one name
        from spiceflow_core.book import _levels_c as levels_impl  # type: ignore[no-redef]
    except ImportError:
        from spiceflow_core.book import _levels as levels_impl
_top_side = levels_impl.top_side
#: True when the compiled book loop is in use
COMPILED: bool = levels_impl.COMPILED

_CACHE_MAX = 100_000
# "No boundary" sentinels: every key is >= 0 and < 10**80 (prices.MAX_* digits).
_NO_BID_FLOOR = -1
_NO_ASK_FLOOR = -(10**200)

LevelLike = Sequence[object]  # (price, size); str normally, Decimal/int accepted


class OrderBook:
    """An exact L2 book. Not thread-safe; one per (venue, instrument)."""

    __slots__ = (
        "_ask_floor",
        "_ask_keys",
        "_asks",
        "_bid_floor",
        "_bid_keys",
        "_bids",
        "_cache",
        "_scale",
        "ignored",
    )

    def __init__(self, tick_size: str | None = None) -> None:
        # tick_size only seeds the key scale (so a typical book never rescales); prices
        # off the tick grid are still accepted exactly: ticks change over time.
        self._scale = decimals_of(tick_size) if tick_size is not None else 0
        self._cache: dict[str, int] = {}
        self._bids: dict[int, Level] = {}  # key -> level
        self._bid_keys: list[int] = []  # ascending: best bid last
        self._asks: dict[int, Level] = {}  # NEGATED key -> level
        self._ask_keys: list[int] = []  # ascending negated keys: best (lowest) ask last
        self._bid_floor = _NO_BID_FLOOR  # lowest vouched bid key
        self._ask_floor = _NO_ASK_FLOOR  # -(highest vouched ask key)
        #: level updates ignored because they lie beyond a depth-truncation boundary
        self.ignored = 0

    # ------------------------------------------------------------------ parsing
    def _key(self, price: object) -> tuple[int, str]:
        """Slow path of the price cache: validate, maybe rescale, cache. Returns
        ``(key, price string to keep)``: a plain ASCII decimal string as received (and
        cached); anything else (``"1E-8"``, ``Decimal``, ``int``) as its plain decimal
        text, uncached (a cache hit keeps the received string)."""
        if type(price) is str:
            whole, _, frac = price.partition(".")
            if whole.isdigit() and whole.isascii() and (not frac or (frac.isdigit() and frac.isascii())):
                frac = frac.rstrip("0")
                if len(frac) > self._scale:
                    self._rescale(len(frac))
                if len(whole) > 40:
                    raise ValueError(f"price out of range: {price!r}")
                key = int(whole + frac) * 10 ** (self._scale - len(frac))
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache[price] = key
                return key, price
        coefficient, exponent, text = parts_and_text(price)
        return self._scaled(coefficient, exponent), text

    def _scaled(self, coefficient: int, exponent: int) -> int:
        """The key of ``coefficient * 10**exponent``, growing the scale if needed."""
        if -exponent > self._scale:
            self._rescale(-exponent)
        key: int = coefficient * 10 ** (exponent + self._scale)  # exponent + scale >= 0: an int
        return key

    def _rescale(self, scale: int) -> None:
        """Grow the key scale to ``scale`` decimals, multiplying every key in place (the
        containers keep their identity: ``apply`` holds local references to them)."""
        factor = 10 ** (scale - self._scale)
        self._scale = scale
        self._cache.clear()
        for side, keys in ((self._bids, self._bid_keys), (self._asks, self._ask_keys)):
            scaled = {k * factor: v for k, v in side.items()}
            side.clear()
            side.update(scaled)
            keys[:] = [k * factor for k in keys]
        if self._bid_floor != _NO_BID_FLOOR:
            self._bid_floor *= factor
        if self._ask_floor != _NO_ASK_FLOOR:
            self._ask_floor *= factor

    def key_of(self, price: object) -> int:
        """The exact scaled key of a price at the book's current scale (tests, tools).
        May grow the scale."""
        if type(price) is str:
            key = self._cache.get(price)
            if key is not None:
                return key
        return self._key(price)[0]

    @property
    def scale(self) -> int:
        """Decimals of the integer keys (``key == price * 10**scale``)."""
        return self._scale

    # ------------------------------------------------------------------ updates
    def apply_snapshot(
        self, bids: Iterable[LevelLike], asks: Iterable[LevelLike], depth_limit: int | None = None
    ) -> None:
        """Replace the whole book. Zero sizes are skipped; a repeated price keeps its last
        entry. With ``depth_limit``: see the module docstring (truncation boundary)."""
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()
        self._bid_floor = _NO_BID_FLOOR
        self._ask_floor = _NO_ASK_FLOOR
        # Parse everything first, remembering the scale each key was made at: a price
        # with more decimals later in the snapshot grows the scale (the dicts are empty
        # then, so _rescale cannot fix the staged keys itself).
        staged: list[tuple[dict[int, Level], int, int, Level]] = []
        for side, levels, sign in ((self._bids, bids, 1), (self._asks, asks, -1)):
            for price, size in levels:
                if type(price) is str and (cached := self._cache.get(price)) is not None:
                    key, text = cached, price
                else:
                    key, text = self._key(price)
                size_text, zero = _check_size(size)
                if not zero:
                    staged.append((side, self._scale, sign * key, (text, size_text)))
        scale = self._scale
        for side, at_scale, key, level in staged:
            if at_scale != scale:
                key *= 10 ** (scale - at_scale)
            side[key] = level
        bid_keys = sorted(self._bids)
        ask_keys = sorted(self._asks)
        if depth_limit is not None:
            if depth_limit <= 0:
                raise ValueError(f"depth_limit must be positive: {depth_limit}")
            if len(bid_keys) >= depth_limit:
                for k in bid_keys[: len(bid_keys) - depth_limit]:
                    del self._bids[k]
                bid_keys = bid_keys[len(bid_keys) - depth_limit :]
                self._bid_floor = bid_keys[0]
            if len(ask_keys) >= depth_limit:
                for k in ask_keys[: len(ask_keys) - depth_limit]:
                    del self._asks[k]
                ask_keys = ask_keys[len(ask_keys) - depth_limit :]
                self._ask_floor = ask_keys[0]
        self._bid_keys[:] = bid_keys
        self._ask_keys[:] = ask_keys

    #: ``apply(bids, asks) -> crossed``: one delta's levels (absolute sizes). Size zero in
    #: any format deletes the level (deleting an absent level is a no-op); prices beyond a
    #: truncation boundary are ignored. Returns ``is_crossed()`` afterwards. Raises
    #: ``ValueError`` on a malformed price/size (see module doc). The per-level loop itself, compiled or pure Python (``_levels.py``), bound
    #: here as the method so the hot path pays no extra Python call.
    apply = levels_impl.apply_levels

    # ------------------------------------------------------------------ queries
    def best_bid(self) -> Level | None:
        keys = self._bid_keys
        return self._bids[keys[-1]] if keys else None

    def best_ask(self) -> Level | None:
        keys = self._ask_keys
        return self._asks[keys[-1]] if keys else None

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """Best ``n`` levels per side, best first, strings as last received (see "Kept
        strings" in the module docstring)."""
        if n <= 0:
            return [], []
        return _top_side(self._bids, self._bid_keys, n), _top_side(self._asks, self._ask_keys, n)

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Every level, best first."""
        bids = self._bids
        asks = self._asks
        return [bids[k] for k in reversed(self._bid_keys)], [asks[k] for k in reversed(self._ask_keys)]

    def is_crossed(self) -> bool:
        """Best bid >= best ask (exact). A one-sided or empty book is not crossed."""
        bk = self._bid_keys
        ak = self._ask_keys
        return bool(bk and ak and bk[-1] >= -ak[-1])

    def bounds(self) -> tuple[str | None, str | None]:
        """The truncation boundaries as prices (worst vouched bid, worst vouched ask), or
        None for a side without one."""
        scale = self._scale
        bid = None if self._bid_floor == _NO_BID_FLOOR else _format_key(self._bid_floor, scale)
        ask = None if self._ask_floor == _NO_ASK_FLOOR else _format_key(-self._ask_floor, scale)
        return bid, ask

    def truncate(self, depth: int) -> None:
        """Keep the best ``depth`` levels per side: the book of a venue that maintains
        one of the subscribed depth and drops what falls out of it (Kraken)."""
        for levels, keys in ((self._bids, self._bid_keys), (self._asks, self._ask_keys)):
            extra = len(keys) - depth
            if extra > 0:
                for key in keys[:extra]:
                    del levels[key]
                del keys[:extra]

    def __len__(self) -> int:
        return len(self._bid_keys) + len(self._ask_keys)

    def __repr__(self) -> str:
        return f"<OrderBook {len(self._bid_keys)} bids {len(self._ask_keys)} asks best {self.best_bid()} / {self.best_ask()}>"

    def _adopt(self, other: OrderBook) -> None:
        """Take over ``other``'s contents (keeps this object's identity for holders of
        ``BookSync.book``). ``other`` must not be used afterwards."""
        for name in OrderBook.__slots__:
            setattr(self, name, getattr(other, name))


def _check_size(size: object) -> tuple[str, bool]:
    if type(size) is str:
        digits = size.replace(".", "", 1)
        if digits.isdigit() and digits.isascii():
            return size, not digits.strip("0")
    return canonical_size(size)


def _format_key(key: int, scale: int) -> str:
    if scale == 0:
        return str(key)
    text = str(key).rjust(scale + 1, "0")
    return f"{text[:-scale]}.{text[-scale:]}".rstrip("0").rstrip(".")
