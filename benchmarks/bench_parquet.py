"""Parquet sink at the live path's rates: rows written per second, drops, and whether
the event loop stays free while Parquet is encoded.

The producer is the broadcast actor's path: a BookMessage (25 levels a side, one level
changed per update, two instruments) is stamped and encoded by ``Publisher.publish``
(ZeroMQ) and offered to the ``ParquetSink`` (``spiceflow_parquet``, default options:
10 levels kept, zstd, fsync, files rolled every 60 s), whose task hands batches to its
worker thread. The rates are those of ``bench_live.py`` (the full pipeline keeps up with
10,000-50,000 frames/s on this machine, one book update per frame).

Per rate, for ``--seconds``: messages offered, rows in complete files after the sink
closed, drops (buffer full), the rate the producer reached, the longest queue in front
of the writer thread (messages buffered or being written: how far behind the sink ran),
and the event loop's lag (a 1 ms ticker's overshoot,
p99 / max: what the frame path would wait). Then the writer alone (no event loop, one
thread): rows/s of ``PartitionedWriter.write`` + ``close`` for 200,000 rows -- the
ceiling of one sink.

    .venv/bin/python benchmarks/bench_parquet.py [--quick] [--rates 10000,20000,50000]

Prints a table and writes benchmarks/results/parquet.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "plugins" / "spiceflow-parquet"):  # runnable from a checkout
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import anyio  # noqa: E402
from sink_books import Book  # noqa: E402

from spiceflow_core.broadcast.publisher import Publisher  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def at_rate(rate: int, seconds: float, root: Path) -> dict[str, Any]:
    from spiceflow_parquet.config import ParquetOptions
    from spiceflow_parquet.sink import ParquetSink

    sink = ParquetSink(ParquetOptions(path=str(root)))
    book = Book()
    lags: list[float] = []
    queue = 0
    count = int(rate * seconds)

    async def ticker() -> None:
        while True:
            start = time.perf_counter()
            await anyio.sleep(0.001)
            lags.append(time.perf_counter() - start - 0.001)

    with Publisher("tcp://127.0.0.1:*") as publisher:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sink.run)
            tg.start_soon(ticker)
            await anyio.sleep(0.2)
            lags.clear()
            t0 = time.perf_counter()
            sent = 0
            while sent < count:
                due = min(count, int((time.perf_counter() - t0) * rate) + 1)
                while sent < due:
                    message = book.update(SYMBOLS[sent % 2])
                    publisher.publish(message)
                    sink.offer(publisher.last_topic, publisher.last_body, message)
                    sent += 1
                queue = max(queue, len(sink._buffer) + sink._in_flight)
                await anyio.sleep(0.0002)
            elapsed = time.perf_counter() - t0
            tg.cancel_scope.cancel()
    t_close = time.perf_counter()
    await sink.aclose()
    close_s = time.perf_counter() - t_close
    stats = sink.current_stats()
    lags.sort()
    return {
        "rate": rate,
        "offered": stats.offered,
        "written": stats.written,
        "dropped": stats.dropped,
        "errors": stats.errors,
        "files": stats.files,
        "producer_msg_s": count / elapsed,
        "max_queue": queue,
        "close_s": close_s,
        "loop_lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000 if lags else None,
        "loop_lag_max_ms": lags[-1] * 1000 if lags else None,
        "bytes_on_disk": sum(p.stat().st_size for p in root.rglob("*.parquet")),
    }


def writer_alone(rows: int, root: Path) -> dict[str, Any]:
    from spiceflow_parquet.config import ParquetOptions
    from spiceflow_parquet.writer import PartitionedWriter

    book = Book()
    messages = [book.update(SYMBOLS[i % 2]) for i in range(rows)]
    for n, message in enumerate(messages, 1):
        message.topic_seq = n
    writer = PartitionedWriter(ParquetOptions(path=str(root)))
    t0 = time.perf_counter()
    for start in range(0, rows, 5000):  # batches as the sink's task hands them over
        writer.write(messages[start : start + 5000])
    outcome = writer.close()
    elapsed = time.perf_counter() - t0
    assert outcome.committed == rows and not outcome.errors
    return {"rows": rows, "seconds": elapsed, "rows_s": rows / elapsed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 s per rate instead of 5")
    ap.add_argument("--rates", default="10000,20000,50000", help="messages per second (comma-separated)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per rate")
    args = ap.parse_args()
    from loguru import logger

    logger.remove()  # the sink's start line would interleave with the table
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    rates = [int(r) for r in args.rates.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="bench-parquet-"))
    try:
        runs = []
        for rate in rates:
            result = anyio.run(at_rate, rate, seconds, scratch / f"rate-{rate}")
            runs.append(result)
            print(
                f"{rate:>7,}/s: offered {result['offered']:,} written {result['written']:,} "
                f"dropped {result['dropped']:,} producer {result['producer_msg_s']:,.0f}/s "
                f"queue max {result['max_queue']:,} loop lag p99 {result['loop_lag_p99_ms']:.2f} ms "
                f"max {result['loop_lag_max_ms']:.1f} ms, {result['files']} files "
                f"{result['bytes_on_disk'] / 1e6:.1f} MB",
                file=sys.stderr,
            )
        alone = writer_alone(100_000 if args.quick else 200_000, scratch / "alone")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lines = [
        f"Parquet sink -- 25-level books (10 kept), 2 instruments, {seconds:.0f} s per rate, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "",
        f"{'rate (msg/s)':>12}{'written':>12}{'dropped':>10}{'producer/s':>12}{'max queue':>13}"
        f"{'loop lag p99':>14}{'MB':>8}",
    ]
    for r in runs:
        lines.append(
            f"{r['rate']:>12,}{r['written']:>12,}{r['dropped']:>10,}{r['producer_msg_s']:>12,.0f}"
            f"{r['max_queue']:>13,}{r['loop_lag_p99_ms']:>11.2f} ms{r['bytes_on_disk'] / 1e6:>8.1f}"
        )
    lines.append("")
    lines.append(f"writer alone (one thread): {alone['rows_s']:,.0f} rows/s ({alone['rows']:,} rows)")
    print("\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "seconds": seconds,
        "rates": runs,
        "writer_alone": alone,
    }
    (RESULTS / "parquet.json").write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
