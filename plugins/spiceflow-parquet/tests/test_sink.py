"""The sink as the broadcast actor runs it: every book, trade and top offered reaches a
complete file (written in a worker thread), counters add up, files complete by age while
the run goes on, a full buffer and a failing directory are counted and survived."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from parquet_testing import Wire, offer, read_feed, running, wait_for
from spiceflow_parquet.config import ParquetOptions
from spiceflow_parquet.plugin import ParquetSinkPlugin
from spiceflow_parquet.sink import ParquetSink

from spiceflow_core.config import decode_settings
from spiceflow_core.sinks.registry import build_sinks, discover_sinks
from spiceflow_core.testkit.sinks import loaded_by_discovery

pytestmark = pytest.mark.anyio


def _sink(root: Path, **options: object) -> ParquetSink:
    return ParquetSink(ParquetOptions(path=str(root), fsync=False, **options))  # type: ignore[arg-type]


def _balanced(sink: ParquetSink) -> bool:
    s = sink.current_stats()
    return s.offered == s.written + s.dropped + s.buffered + s.skipped


async def test_every_message_reaches_a_complete_file_and_the_counters_add_up(tmp_path: Path, wire: Wire):
    sink = _sink(tmp_path, max_age=3600.0)
    messages = []
    for i in range(40):
        messages.append(wire.book("BTCUSDT", bids=[(f"100.{i}", "1"), ("99", "2")]))
        messages.append(wire.book("ETHUSDT"))
        if i % 4 == 0:
            messages.append(wire.trade("BTCUSDT"))
            messages.append(wire.top("ETHUSDT"))
            messages.append(wire.status())
    async with running(sink):
        offer(sink, messages[:50])
        await wait_for(lambda: sink.current_stats().buffered + sink.stats.skipped == 50 and not sink._buffer)
        offer(sink, messages[50:])
        await wait_for(lambda: sink.current_stats().buffered == len(messages) - 10)
        # rows in files not complete yet are buffered, not written
        assert sink.stats.written == 0 and _balanced(sink)
    stats = sink.current_stats()
    assert (stats.offered, stats.written, stats.skipped, stats.dropped, stats.buffered, stats.errors) == (
        len(messages),
        len(messages) - 10,
        10,
        0,
        0,
        0,
    )
    assert stats.files == 3  # books, trades, tops: one hour, one venue
    books = read_feed(tmp_path, "books")
    assert [r["topic_seq"] for r in books if r["symbol"] == "BTCUSDT"] == list(range(1, 41))
    assert [str(r["bids"][0]["price"]) for r in books if r["symbol"] == "BTCUSDT"][:2] == [
        "100.000000000000000000",
        "100.100000000000000000",
    ]
    assert len(read_feed(tmp_path, "trades")) == len(read_feed(tmp_path, "tops")) == 10


async def test_files_complete_by_age_while_the_run_goes_on(tmp_path: Path, wire: Wire):
    sink = _sink(tmp_path, max_age=0.2)
    async with running(sink):
        offer(sink, [wire.book("BTCUSDT") for _ in range(5)])
        await wait_for(lambda: sink.stats.written == 5, timeout=5)
        assert len(list(tmp_path.rglob("*.parquet"))) == 1 and sink.stats.files == 1
        offer(sink, [wire.book("BTCUSDT") for _ in range(3)])
        await wait_for(lambda: sink.stats.written == 8, timeout=5)
        assert _balanced(sink)
    assert sorted(pq.read_metadata(f).num_rows for f in tmp_path.rglob("*.parquet")) == [3, 5]


async def test_a_full_buffer_counts_drops(tmp_path: Path, wire: Wire):
    sink = _sink(tmp_path, capacity=10)
    offer(sink, [wire.book("BTCUSDT") for _ in range(25)])  # the sink's task is not running yet
    assert (sink.stats.offered, sink.stats.dropped, sink.current_stats().buffered) == (25, 15, 10)
    async with running(sink):
        pass
    assert (sink.stats.written, sink.stats.dropped) == (10, 15)
    assert [r["topic_seq"] for r in read_feed(tmp_path, "books")] == list(range(1, 11))


async def test_a_failing_directory_is_counted_and_the_sink_goes_on(tmp_path: Path, wire: Wire):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where the dataset's directory should be")
    sink = _sink(blocker / "data", max_age=0.2)
    async with running(sink):
        offer(sink, [wire.book("BTCUSDT") for _ in range(5)])
        await wait_for(lambda: sink.stats.errors)
        assert sink.stats.dropped == 5 and "Not a directory" in sink.stats.last_error
        assert _balanced(sink)
        blocker.unlink()
        offer(sink, [wire.book("BTCUSDT") for _ in range(2)])
        await wait_for(lambda: sink.stats.written == 2, timeout=5)
    assert (sink.stats.errors, sink.stats.dropped, sink.stats.written) == (1, 5, 2)
    assert [r["topic_seq"] for r in read_feed(blocker / "data", "books")] == [6, 7]


async def test_the_sink_starts_by_removing_temporary_files_of_dead_writers(tmp_path: Path, wire: Wire):
    partition = tmp_path / "books/venue=toy/date=2026-12-01/hour=12"
    partition.mkdir(parents=True)
    stale = partition / ".part-1-999999999-000001.parquet.tmp"  # no such pid
    stale.write_bytes(b"PAR1 and no footer")
    async with running(_sink(tmp_path)) as sink:
        await wait_for(lambda: not stale.exists())
        offer(sink, [wire.book("BTCUSDT")])
    assert len(read_feed(tmp_path, "books")) == 1


def test_the_plugin_is_found_by_its_entry_point_and_built_from_its_table(tmp_path: Path):
    registry = discover_sinks()
    assert isinstance(registry.plugins["parquet"].plugin, ParquetSinkPlugin)
    assert registry.plugins["parquet"].distribution == "spiceflow-parquet"
    settings = decode_settings({"sinks": {"parquet": {"path": str(tmp_path), "depth": 3}}}, "spiceflow.toml")
    (sink,) = build_sinks(registry, settings, "spiceflow.toml")
    assert isinstance(sink, ParquetSink) and sink.options.depth == 3


def test_discovering_the_sink_plugins_loads_no_pyarrow():
    # every command discovers the sink plugins; pyarrow (and numpy: ~0.14 s, ~50 MB) is
    # loaded only by a run that configures [sinks.parquet]
    assert loaded_by_discovery("parquet", ["pyarrow", "numpy"]) == []
