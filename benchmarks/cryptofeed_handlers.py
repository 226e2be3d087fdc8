"""Run the generated streams through cryptofeed's own Binance / Deribit message handlers.

Runs INSIDE the throwaway virtualenv ``benchmarks/.venv-cryptofeed`` (cryptofeed is
never installed into the project's environment); ``run_all.py`` starts it as a subprocess and read one JSON object from its stdout.

    .venv-cryptofeed/bin/python cryptofeed_handlers.py STREAM_DIR VENUE FIXTURES_DIR [REPEAT]

What is measured: ``await feed.message_handler(frame, conn, ts)`` for every frame, the
handler a live cryptofeed ``FeedHandler`` calls for each WebSocket message: JSON decode
(``json.loads(parse_float=Decimal)``), routing, sequence checks, Decimal conversion and
its ``order_book`` C-extension book update, and the L2_BOOK callback (a no-op
coroutine). Its REST calls are answered from the same data: reference data from the
SpiceFlow plugins' fixtures, the depth snapshot from the stream's ``snapshot.json``.
Timed with the thread's CPU time (``time.thread_time``), as ``bench_replay.py`` is.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import json
import sys
import time
from pathlib import Path


def main() -> None:
    stream_dir, venue, fixtures = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    from cryptofeed.defines import L2_BOOK

    meta = json.loads((stream_dir / "meta.json").read_text())
    snapshot = (stream_dir / "snapshot.json").read_text()
    frames = (stream_dir / "frames.txt").read_text().splitlines()

    async def noop(book, receipt_timestamp):
        return None

    if venue == "binance":
        from cryptofeed.exchanges import Binance as Feed

        info = json.loads((fixtures / "api_v3_exchangeInfo.json").read_text())
        Feed.http_sync.read = lambda *a, **k: info  # type: ignore[method-assign]
        symbol = "BTC-USDT"
    else:
        from cryptofeed.exchanges import Deribit as Feed

        by_currency = {}
        for cur in ("BTC", "ETH", "USDC", "SOL"):
            path = fixtures / f"get_instruments.{cur}.json"
            by_currency[cur] = json.loads(path.read_text()) if path.exists() else {"result": []}

        def read(addr, *a, **k):
            return by_currency[addr.rsplit("currency=", 1)[1].split("&")[0]]

        Feed.http_sync.read = read  # type: ignore[method-assign]
        symbol = "BTC-USD-PERP"

    # cryptofeed counts Deribit's raw book as an authenticated channel: dummy keys (no
    # connection is ever made)
    config = {"deribit": {"key_id": "bench", "key_secret": "bench"}} if venue == "deribit" else None
    feed = Feed(symbols=[symbol], channels=[L2_BOOK], callbacks={L2_BOOK: noop}, config=config)

    class _Http:
        async def read(self, *a, **k):
            return snapshot

    feed.http_conn = _Http()  # REST depth snapshot answered from the same data

    class _Conn:
        uuid = "bench"

    conn = _Conn()
    handler = feed.message_handler

    async def run() -> float:
        if venue == "deribit":
            await handler(snapshot, conn, time.time())
        gc.collect()
        gc.disable()
        t0 = time.thread_time()
        for frame in frames:
            await handler(frame, conn, 0.0)
        elapsed = time.thread_time() - t0
        gc.enable()
        return elapsed

    best = None
    for _ in range(int(sys.argv[4]) if len(sys.argv) > 4 else 1):
        feed._l2_book = {}
        if hasattr(feed, "_reset"):
            feed._reset()  # what cryptofeed does on (re)subscribing: fresh books and ids
        feed.last_update_id = {}
        feed.seq_no = {}
        elapsed = asyncio.run(run())
        best = elapsed if best is None else min(best, elapsed)
    book = next(iter(feed._l2_book.values()))
    print(
        json.dumps(
            {
                "venue": venue,
                "cryptofeed": importlib.metadata.version("cryptofeed"),
                "frames": len(frames),
                "seconds": best,
                "frames_per_s": len(frames) / best,
                "book_levels": [len(book.book.bids), len(book.book.asks)],
                "expected_frames": meta["frames"],
            }
        )
    )


if __name__ == "__main__":
    main()
