"""Book-engine benchmark: level updates/s of ``OrderBook.apply``, ``top(25)`` time, memory
per level, and the key/structure alternatives the engine was chosen against.

    python benchmarks/bench_book.py            # full run (~1M level updates per variant)
    python benchmarks/bench_book.py --quick    # smaller stream, for a smoke check

The stream is shaped like real depth traffic: 1,000 levels a side (tick 0.01, holes in
the grid as in a real book), deltas of 1-20 levels, the touched level's rank from the
top exponentially distributed (mean 8: most changes near the top), ~80% size changes,
~10% deletions and ~10% matching insertions (so the book keeps its size). Prices are
Binance-style strings ("43250.10"), sizes 8-decimal strings ("0.12345678").
Prints a table (metric, figure, target, ratio) and writes benchmarks/results/book.json.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import platform
import random
import sys
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sortedcontainers import SortedDict

from spiceflow_core.book import OrderBook

LEVELS = 1_000
TICK_CENTS = 1  # price grid 0.01
MID_CENTS = 4_325_000  # 43250.00
TARGET_UPDATES_PER_S = 1_000_000


def _price(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _size(rng: random.Random) -> str:
    return f"{rng.randint(1, 5_000_000_000) / 1e8:.8f}"


def generate(n_updates: int, seed: int = 7) -> tuple[tuple[list, list], list[tuple[list, list]]]:
    """(snapshot (bids, asks), deltas) with about ``n_updates`` level updates in total."""
    rng = random.Random(seed)
    # 1,000 occupied ticks per side out of the nearest 1,300: a real book has holes.
    bid_ticks = sorted(rng.sample(range(MID_CENTS - 1, MID_CENTS - 1301, -1), LEVELS), reverse=True)
    ask_ticks = sorted(rng.sample(range(MID_CENTS + 1, MID_CENTS + 1301), LEVELS))
    snapshot = ([(_price(t), _size(rng)) for t in bid_ticks], [(_price(t), _size(rng)) for t in ask_ticks])
    # occupied[side] best first; free[side]: empty ticks near the top
    occupied = {0: list(bid_ticks), 1: list(ask_ticks)}
    deltas: list[tuple[list, list]] = []
    total = 0
    while total < n_updates:
        count = rng.randint(1, 20)
        sides: tuple[list, list] = ([], [])
        for _ in range(count):
            side = rng.randint(0, 1)
            occ = occupied[side]
            rank = min(int(rng.expovariate(1 / 8)), len(occ) - 1)
            roll = rng.random()
            if roll < 0.10 and len(occ) > 1:  # deletion
                tick = occ.pop(rank)
                sides[side].append((_price(tick), "0.00000000"))
            elif roll < 0.20:  # insertion at an empty tick near the top
                step = -1 if side == 0 else 1  # towards the back of this side
                other_best = occupied[1 - side][0]
                # at or a little better than the ranked level; at the top this improves
                # the best price, which keeps the spread from drifting open
                tick = occ[rank] - step * rng.randint(0 if rank else 1, 3 if rank else 6)
                while tick in occ or (tick >= other_best if side == 0 else tick <= other_best):
                    tick += step  # walk towards the back to the first hole
                idx = bisect.bisect_left([-t for t in occ], -tick) if side == 0 else bisect.bisect_left(occ, tick)
                occ.insert(idx, tick)
                sides[side].append((_price(tick), _size(rng)))
            else:  # size change
                sides[side].append((_price(occ[rank]), _size(rng)))
        deltas.append(sides)
        total += count
    return snapshot, deltas


# --------------------------------------------------------------------------- variants
class DecimalSortedDictBook:
    """Naive exact book: Decimal keys parsed every time, SortedDict per side."""

    def __init__(self) -> None:
        self.bids = SortedDict()
        self.asks = SortedDict()

    def apply_snapshot(self, bids, asks) -> None:
        self.bids.clear()
        self.asks.clear()
        self.apply(bids, asks)

    def apply(self, bids, asks) -> None:
        for book, levels, sign in ((self.bids, bids, -1), (self.asks, asks, 1)):
            for price, size in levels:
                key = sign * Decimal(price)
                if Decimal(size) == 0:
                    book.pop(key, None)
                else:
                    book[key] = (price, size)

    def top(self, n):
        return [self.bids[k] for k in self.bids.islice(0, n)], [self.asks[k] for k in self.asks.islice(0, n)]


class CachedKeySortedDictBook:
    """String->key cache (int or Decimal keys) + SortedDict per side."""

    def __init__(self, key_type=int) -> None:
        self.bids = SortedDict()
        self.asks = SortedDict()
        self.cache: dict[str, object] = {}
        self.key_type = key_type

    def _key(self, price: str):
        if self.key_type is int:
            whole, _, frac = price.partition(".")
            key = int(whole + frac.ljust(8, "0"))
        else:
            key = Decimal(price)
        self.cache[price] = key
        return key

    def apply_snapshot(self, bids, asks) -> None:
        self.bids.clear()
        self.asks.clear()
        self.apply(bids, asks)

    def apply(self, bids, asks) -> None:
        get = self.cache.get
        for book, levels, sign in ((self.bids, bids, -1), (self.asks, asks, 1)):
            for price, size in levels:
                key = get(price)
                if key is None:
                    key = self._key(price)
                key = sign * key
                digits = size.replace(".", "", 1)
                if not digits.strip("0"):
                    book.pop(key, None)
                else:
                    book[key] = (price, size)

    def top(self, n):
        return [self.bids[k] for k in self.bids.islice(0, n)], [self.asks[k] for k in self.asks.islice(0, n)]


class DecimalListBook(OrderBook):
    """The engine's structure (dict + sorted list, best last) with cached Decimal keys."""

    __slots__ = ()

    def apply(self, bids, asks) -> None:  # type: ignore[override]
        cache = self._cache
        for side, keys, levels, sign in ((self._bids, self._bid_keys, bids, 1), (self._asks, self._ask_keys, asks, -1)):
            for price, size in levels:
                key = cache.get(price)
                if key is None:
                    key = cache[price] = Decimal(price)
                key = sign * key
                digits = size.replace(".", "", 1)
                if not digits.strip("0"):
                    if key in side:
                        del side[key]
                        del keys[bisect.bisect_left(keys, key)]
                elif key in side:
                    side[key] = (price, size)
                else:
                    side[key] = (price, size)
                    bisect.insort(keys, key)

    def apply_snapshot(self, bids, asks, depth_limit=None) -> None:  # type: ignore[override]
        for d in (self._bids, self._asks, self._bid_keys, self._ask_keys):
            d.clear()
        self.apply(bids, asks)


# --------------------------------------------------------------------------- runs
def time_apply(factory, snapshot, deltas, repeat: int) -> float:
    """Best-of-``repeat`` level updates per second."""
    n = sum(len(b) + len(a) for b, a in deltas)
    best = float("inf")
    for _ in range(repeat):
        book = factory()
        book.apply_snapshot(*snapshot)
        gc.collect()
        gc.disable()
        t0 = time.perf_counter()
        apply = book.apply
        for bids, asks in deltas:
            apply(bids, asks)
        elapsed = time.perf_counter() - t0
        gc.enable()
        best = min(best, elapsed)
    return n / best


def time_top(book, n: int = 25, loops: int = 20_000) -> float:
    """Microseconds per ``top(n)``."""
    top = book.top
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(loops):
            top(n)
        best = min(best, time.perf_counter() - t0)
    return best / loops * 1e6


def memory_per_level(snapshot) -> tuple[float, float]:
    """Bytes per level: (book structures measured by tracemalloc: dict entry, key int,
    level tuple, sorted-list slot, price-cache entry; the two level strings by
    sys.getsizeof). The strings are the parser's allocation the book keeps alive."""
    bids, asks = snapshot
    levels = len(bids) + len(asks)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    book = OrderBook("0.01")
    book.apply_snapshot(bids, asks)
    gc.collect()
    structures = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(book) == levels
    strings = sum(sys.getsizeof(p) + sys.getsizeof(q) for p, q in (*bids, *asks))
    return structures / levels, strings / levels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small stream, one repeat")
    parser.add_argument("--updates", type=int, default=None, help="level updates in the stream")
    parser.add_argument("--no-variants", action="store_true", help="skip the alternatives")
    args = parser.parse_args(argv)
    n_updates = args.updates or (100_000 if args.quick else 1_000_000)
    repeat = 1 if args.quick else 3

    snapshot, deltas = generate(n_updates)
    n = sum(len(b) + len(a) for b, a in deltas)
    deletes = sum(1 for b, a in deltas for lvl in (*b, *a) if lvl[1] == "0.00000000")

    rate = time_apply(lambda: OrderBook("0.01"), snapshot, deltas, repeat)
    book = OrderBook("0.01")
    book.apply_snapshot(*snapshot)
    for bids, asks in deltas:
        book.apply(bids, asks)
    assert not book.is_crossed()
    top_us = time_top(book)
    mem_struct, mem_strings = memory_per_level(snapshot)
    mem_total = mem_struct + mem_strings

    variants: dict[str, float] = {}
    if not args.no_variants:
        variants["Decimal parse each time + SortedDict"] = time_apply(DecimalSortedDictBook, snapshot, deltas, repeat)
        variants["cached Decimal keys + SortedDict"] = time_apply(
            lambda: CachedKeySortedDictBook(Decimal), snapshot, deltas, repeat
        )
        variants["cached int keys + SortedDict"] = time_apply(CachedKeySortedDictBook, snapshot, deltas, repeat)
        variants["cached Decimal keys + dict/sorted list"] = time_apply(DecimalListBook, snapshot, deltas, repeat)
        variants["cached int keys + dict/sorted list (engine)"] = rate

    rows = [
        (
            "OrderBook.apply level updates/s",
            f"{rate:,.0f}",
            f">= {TARGET_UPDATES_PER_S:,}",
            rate / TARGET_UPDATES_PER_S,
        ),
        ("top(25) time (us)", f"{top_us:.2f}", "report", None),
        ("memory/level, structures (B)", f"{mem_struct:.0f}", "report", None),
        ("memory/level, + kept strings (B)", f"{mem_total:.0f}", "report", None),
    ]
    print(
        f"book engine benchmark: {n:,} level updates in {len(deltas):,} deltas, "
        f"{deletes / n:.1%} deletions, {LEVELS} levels a side, Python {platform.python_version()}"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  {'figure':>14}  {'target':>14}  ratio")
    for name, figure, target, ratio in rows:
        print(f"{name:<{width}}  {figure:>14}  {target:>14}  {'' if ratio is None else f'{ratio:.2f}'}")
    if variants:
        print("\nkey representation / structure alternatives (level updates/s, same stream):")
        vw = max(len(k) for k in variants)
        for name, value in variants.items():
            print(f"  {name:<{vw}}  {value:>12,.0f}  ({value / rate:.2f}x engine)")

    out = Path(__file__).resolve().parent / "results" / "book.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "benchmark": "book",
                "quick": args.quick,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "level_updates": n,
                "deltas": len(deltas),
                "deletion_fraction": round(deletes / n, 4),
                "levels_per_side": LEVELS,
                "metrics": {
                    "apply_level_updates_per_s": round(rate),
                    "apply_target": TARGET_UPDATES_PER_S,
                    "apply_ratio": round(rate / TARGET_UPDATES_PER_S, 3),
                    "top25_us": round(top_us, 3),
                    "memory_per_level_bytes_structures": round(mem_struct, 1),
                    "memory_per_level_bytes_with_strings": round(mem_total, 1),
                },
                "variants_level_updates_per_s": {k: round(v) for k, v in variants.items()},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
