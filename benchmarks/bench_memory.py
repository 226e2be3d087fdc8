"""Resident memory of books: RSS growth of this process while it builds 1,000 books of
1,000 levels a side (``BookSync.on_snapshot``, Binance-style decimal strings, every
book with its own strings as after decoding real frames).

    python benchmarks/bench_memory.py [--instruments 1000] [--levels 1000]

Prints one JSON object; ``run_all.py`` runs it in a fresh process so nothing else is
in the measured growth."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spiceflow_core.book import BookSync, StraddlePolicy
from spiceflow_core.model import BookSnapshot


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instruments", type=int, default=1000)
    ap.add_argument("--levels", type=int, default=1000)
    args = ap.parse_args()
    gc.collect()
    books = []
    before = rss()
    for i in range(args.instruments):
        mid = 100_000 + i * 7
        bids = [
            (f"{(mid - k) // 100}.{(mid - k) % 100:02d}000000", f"{(k * 7919 + i) % 50000 / 1e4:.8f}")
            for k in range(1, args.levels + 1)
        ]
        asks = [
            (f"{(mid + k) // 100}.{(mid + k) % 100:02d}000000", f"{(k * 104729 + i) % 50000 / 1e4 + 0.0001:.8f}")
            for k in range(1, args.levels + 1)
        ]
        sync = BookSync("binance", f"SYM{i}", StraddlePolicy())
        sync.on_snapshot(
            BookSnapshot(venue="binance", symbol=f"SYM{i}", sequence=1, bids=bids, asks=asks, depth_limit=None)
        )
        del bids, asks
        books.append(sync)
    gc.collect()
    after = rss()
    levels = args.instruments * args.levels * 2
    print(
        json.dumps(
            {
                "instruments": args.instruments,
                "levels_per_side": args.levels,
                "levels": levels,
                "rss_growth_bytes": after - before,
                "bytes_per_level": (after - before) / levels,
            }
        )
    )


if __name__ == "__main__":
    main()
