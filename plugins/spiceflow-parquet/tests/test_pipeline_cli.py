"""End to end, as processes: `spiceflow run --profile demo` (a simulated Binance) with a
`[sinks.parquet]` table next to ZeroMQ.

* the books in the files are the books ZeroMQ consumers got: same instruments, same
  topic_seq and sequence, the same top N levels exactly, and no book missing;
* kill -9 mid-stream leaves only complete, readable files (pyarrow, DuckDB), and hidden
  temporary files that readers ignore and the next writer removes;
* an unwritable dataset directory is an error counted on the sink (status topic and
  GET /health) while ZeroMQ consumers keep getting every book.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import anyio
import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
from parquet_testing import SPICEFLOW, levels, read_feed, stored_levels, wait_for
from spiceflow_parquet.writer import remove_stale_temp_files

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.broadcast.wire import BookMessage, StatusMessage, TradeMessage
from spiceflow_core.ports import free_port
from spiceflow_core.testkit.processes import interrupt

pytestmark = pytest.mark.anyio
DEPTH = 5  # levels kept in the files (the run publishes 25)
SYMBOLS = {"BTCUSDT", "ETHUSDT"}


@contextlib.asynccontextmanager
async def spiceflow_run(
    tmp_path: Path, sink: str, *, api: str | None = None
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """`spiceflow run --profile demo --venue binance` with every feed, ``sink`` as its
    ``[sinks.parquet]`` table; yields the process (running, the sink started) and the
    ZeroMQ address. Stopped by SIGINT (a graceful shutdown) unless the test killed it."""
    address = f"tcp://127.0.0.1:{free_port()}"
    config = tmp_path / "spiceflow.toml"
    config.write_text(f"""
[broadcast]
address = "{address}"
status_interval = 0.3
[api]
enabled = {"true" if api else "false"}
address = "{api or "127.0.0.1:0"}"
[sinks.parquet]
{sink}
""")
    log = tmp_path / "run.log"
    feeds = ["--feed", "book", "--feed", "trades", "--feed", "top"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*SPICEFLOW, "run", "--config", str(config), "--profile", "demo", "--venue", "binance", *feeds],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        await wait_for(lambda: "parquet sink writing to" in log.read_text() or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, log.read_text()
        yield proc, address
    finally:
        code = await interrupt(proc)
    assert code in (0, -signal.SIGKILL), log.read_text()[-3000:]


async def test_the_files_hold_exactly_the_books_zeromq_consumers_got(tmp_path: Path):
    data = tmp_path / "data"
    books: list[BookMessage] = []
    trades: list[TradeMessage] = []
    async with spiceflow_run(tmp_path, f'path = "{data}"\ndepth = {DEPTH}\nmax_age = 0.5') as (_, address):
        async with Subscriber(address, ["book.binance.", "trade.binance."]) as sub:
            with anyio.fail_after(60):
                while len(books) < 150 or not trades:
                    message = (await sub.receive()).message
                    (books if isinstance(message, BookMessage) else trades).append(message)  # type: ignore[arg-type]
    # stopped gracefully: every open file was completed
    assert not list(data.rglob(".part-*"))
    stored = {(r["symbol"], r["topic_seq"]): r for r in read_feed(data, "books")}
    assert {symbol for symbol, _ in stored} == SYMBOLS == {b.symbol for b in books}
    for symbol in SYMBOLS:  # every book published, none missing: topic_seq 1, 2, ... n
        seqs = sorted(seq for s, seq in stored if s == symbol)
        assert seqs == list(range(1, len(seqs) + 1))
    for book in books:
        row = stored[(book.symbol, book.topic_seq)]
        assert (row["venue"], row["instrument"], row["sequence"]) == (book.venue, book.instrument, book.sequence)
        assert stored_levels(row["bids"]) == levels(book.bids[:DEPTH])
        assert stored_levels(row["asks"]) == levels(book.asks[:DEPTH])
        assert (row["bid_price"], row["ask_size"]) == (Decimal(book.bids[0][0]), Decimal(book.asks[0][1]))
        assert (row["exchange_ts"], row["recv_ts"], row["publish_ts"]) == (
            book.exchange_ts_ms,
            book.recv_ts_ns,
            book.publish_ts_ns,
        )
    stored_trades = {(r["symbol"], r["topic_seq"]): r for r in read_feed(data, "trades")}
    for trade in trades:
        row = stored_trades[(trade.symbol, trade.topic_seq)]
        assert (row["trade_id"], row["price"], row["size"], row["side"]) == (
            trade.trade_id,
            Decimal(trade.price),
            Decimal(trade.size),
            trade.side,
        )
    assert read_feed(data, "tops")  # the exchange's own top of book is stored too


async def test_kill_9_mid_stream_leaves_only_complete_readable_files(tmp_path: Path):
    data = tmp_path / "data"
    # files complete every few rows and every 0.1 s: the kill lands among writes
    sink = f'path = "{data}"\nmax_rows = 20\nrow_group_rows = 5\nmax_age = 0.1'
    async with spiceflow_run(tmp_path, sink) as (proc, _):
        await wait_for(
            lambda: len(list(data.rglob("*.parquet"))) >= 10 and list(data.rglob(".part-*.parquet.tmp")), timeout=30
        )
        proc.send_signal(signal.SIGKILL)
        await anyio.to_thread.run_sync(proc.wait)
    complete = sorted(data.rglob("*.parquet"))
    temporary = sorted(data.rglob(".part-*.parquet.tmp"))
    everything = sorted(p for p in data.rglob("*") if p.is_file())
    # nothing but complete files under their final names and hidden temporary files
    assert everything == sorted(complete + temporary)
    assert all(p.name.startswith("part-") for p in complete)
    rows = {}
    for path in complete:
        table = pq.read_table(path)  # raises on a truncated file
        assert table.num_rows > 0
        feed = path.relative_to(data).parts[0]
        rows[feed] = rows.get(feed, 0) + table.num_rows
    # DuckDB reads the whole dataset through the readers' glob, temporary files unseen
    for feed, count in rows.items():
        query = f"SELECT count(*) FROM read_parquet('{data}/{feed}/**/*.parquet', hive_partitioning=true)"
        assert duckdb.sql(query).fetchall() == [(count,)]
    assert sum(len(read_feed(data, feed)) for feed in rows) == sum(rows.values())
    # the killed writer's temporary files go at the next start (its pid is gone)
    assert sorted(remove_stale_temp_files(data)) == temporary
    assert not list(data.rglob(".part-*"))


async def test_an_unwritable_directory_is_counted_while_zeromq_consumers_get_every_book(tmp_path: Path):
    # tests run as root in CI, which permission bits do not stop: a path component that
    # is a regular file fails for root too (NotADirectoryError)
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    api = f"127.0.0.1:{free_port()}"
    async with spiceflow_run(tmp_path, f'path = "{blocker}/data"', api=api) as (_, address):
        async with Subscriber(address, ["book.binance.", "status.sinks."]) as sub:
            seqs: dict[str, list[int]] = {}
            status = None
            with anyio.fail_after(30):
                while status is None or sum(map(len, seqs.values())) < 100:
                    received = await sub.receive()
                    message = received.message
                    if isinstance(message, BookMessage):
                        seqs.setdefault(message.symbol, []).append(message.topic_seq)
                    elif isinstance(message, StatusMessage) and message.counters.get("errors"):
                        status = message
            async with httpx.AsyncClient() as client:
                health = (await client.get(f"http://{api}/health")).json()
    assert all(s == list(range(s[0], s[0] + len(s))) for s in seqs.values())  # ZeroMQ lost nothing
    assert status.symbol == "parquet" and status.counters["dropped"] > 0 and status.counters["written"] == 0
    assert "Not a directory" in status.reason
    (sink,) = health["sinks"]
    assert sink["name"] == "parquet" and sink["errors"] > 0 and "Not a directory" in sink["last_error"]
