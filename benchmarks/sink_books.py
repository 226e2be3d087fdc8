"""The book the sink benchmarks publish (``bench_nats_sink.py``, ``bench_parquet.py``):
the top 25 levels a side as exact strings, each update changing one level near the top,
as a live top-25 book message does."""

from __future__ import annotations

import time

from spiceflow_core.broadcast.wire import BookMessage

DEPTH = 25
VENUE = "bench"


class Book:
    def __init__(self) -> None:
        self.bids = [(f"{43250.10 - i * 0.1:.2f}", f"{(i % 97 + 1) / 1000:.3f}") for i in range(DEPTH)]
        self.asks = [(f"{43250.20 + i * 0.1:.2f}", f"{(i % 89 + 1) / 1000:.3f}") for i in range(DEPTH)]
        self.sequence = 0

    def update(self, symbol: str) -> BookMessage:
        self.sequence += 1
        i = self.sequence
        k = (i * 7) % 10
        self.bids[k] = (self.bids[k][0], f"{(i % 9973 + 1) / 1000:.3f}")
        return BookMessage(
            venue=VENUE,
            symbol=symbol,
            instrument=f"{VENUE}.spot.{symbol}",
            sequence=i,
            bids=list(self.bids),  # type: ignore[arg-type]  # tuples encode as levels
            asks=list(self.asks),  # type: ignore[arg-type]
            recv_ts_ns=time.time_ns(),
        )
