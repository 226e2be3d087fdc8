"""`spiceflow export`: a recorded session through the replay engine into the sink's
layout -- row for row what `spiceflow replay --jsonl` prints -- and the README's DuckDB
and polars queries over the files, checked against the wire messages."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from parquet_testing import RECORDED, SPICEFLOW, levels, read_feed, stored_levels

DEPTH = 5
FEEDS = ["--feed", "book", "--feed", "trades", "--feed", "top"]
SESSION = RECORDED / "BINANCE_FUTURES"  # books, trades and tops of 4 instruments

pytestmark = pytest.mark.skipif(not Path(f"{SESSION}.0").exists(), reason="recorded sessions not present")


def _spiceflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SPICEFLOW, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """The session exported, and its replay's JSON lines by channel in publish order."""
    out = tmp_path_factory.mktemp("export")
    jsonl = out / "replay.jsonl"
    done = _spiceflow("replay", str(SESSION), "--jsonl", str(jsonl), "--depth", str(DEPTH), *FEEDS)
    assert done.returncode == 0, done.stderr
    done = _spiceflow("export", str(SESSION), "--parquet", str(out / "data"), "--depth", str(DEPTH), *FEEDS)
    assert done.returncode == 0, done.stderr
    assert "export binance-usdm:" in done.stderr and "0 gaps" in done.stderr
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in jsonl.read_text().splitlines():
        message = json.loads(line)
        lines[message["type"]].append(message)
    return out / "data", lines


def _by_topic(lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    topics: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        topics[line["symbol"]].append(line)
    return topics


def test_export_equals_the_replay_row_for_row(exported):
    data, lines = exported
    assert len(lines["book"]) > 500 and lines["trade"] and lines["top"]
    for directory, channel in (("books", "book"), ("trades", "trade"), ("tops", "top")):
        rows = _by_topic(read_feed(data, directory))
        wanted = _by_topic(lines[channel])
        assert rows.keys() == wanted.keys()
        for symbol, want in wanted.items():
            got = rows[symbol]
            # numbered per topic from 1 in publish order, as the live publisher numbers
            assert [r["topic_seq"] for r in got] == list(range(1, len(want) + 1))
            for row, line in zip(got, want, strict=True):
                assert (row["venue"], row["instrument"], row["recv_ts"], row["exchange_ts"]) == (
                    line["venue"],
                    line["instrument"],
                    line["recv_ts_ns"],
                    line["exchange_ts_ms"],
                )
                assert row["publish_ts"] is None  # nothing was published
                if channel == "book":
                    assert row["sequence"] == line["sequence"]
                    assert stored_levels(row["bids"]) == levels(line["bids"])
                    assert stored_levels(row["asks"]) == levels(line["asks"])
                elif channel == "trade":
                    assert (row["trade_id"], row["price"], row["size"], row["side"]) == (
                        line["trade_id"],
                        Decimal(line["price"]),
                        Decimal(line["size"]),
                        line["side"],
                    )
                else:
                    assert (row["sequence"], row["bid_price"], row["ask_size"]) == (
                        line["sequence"],
                        Decimal(line["bid_price"]),
                        Decimal(line["ask_size"]),
                    )


def test_duckdb_spread_and_trades_per_minute_match_the_wire(exported):
    data, lines = exported
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    spreads = con.execute(
        f"""
        SELECT symbol, topic_seq, ask_price - bid_price AS spread, (bid_price + ask_price) / 2 AS mid
        FROM read_parquet('{data}/books/**/*.parquet', hive_partitioning = true)
        WHERE venue = 'binance-usdm' AND bid_price IS NOT NULL AND ask_price IS NOT NULL
        """
    ).fetchall()
    want = {}
    for symbol, book_lines in _by_topic(lines["book"]).items():
        for seq, line in enumerate(book_lines, 1):
            if line["bids"] and line["asks"]:
                bid, ask = Decimal(line["bids"][0][0]), Decimal(line["asks"][0][0])
                want[(symbol, seq)] = (ask - bid, (bid + ask) / 2)
    got = {(symbol, seq): (spread, mid) for symbol, seq, spread, mid in spreads}
    assert got.keys() == want.keys()
    assert all(got[k][0] == want[k][0] for k in want)  # decimal arithmetic: exact
    assert all(abs(Decimal(str(got[k][1])) - want[k][1]) < Decimal("1e-9") for k in want)

    per_minute = con.execute(
        f"""
        SELECT symbol, epoch(date_trunc('minute', recv_ts))::BIGINT AS minute, count(*) AS trades
        FROM read_parquet('{data}/trades/**/*.parquet', hive_partitioning = true)
        GROUP BY ALL
        """
    ).fetchall()
    counted = Counter((t["symbol"], t["recv_ts_ns"] // 60_000_000_000 * 60) for t in lines["trade"])
    assert {(s, m): n for s, m, n in per_minute} == dict(counted)


def test_polars_reads_the_top_of_book_over_time(exported):
    data, lines = exported
    top = (
        pl.scan_parquet(data / "books" / "**" / "*.parquet", hive_partitioning=True)
        .filter(pl.col("symbol") == "SUSHIUSDT")
        .select("recv_ts", "bid_price", "ask_price", spread=pl.col("ask_price") - pl.col("bid_price"))
        .sort("recv_ts")
        .collect()
    )
    want = [line for line in lines["book"] if line["symbol"] == "SUSHIUSDT"]
    assert top["bid_price"].to_list() == [Decimal(line["best_bid"][0]) for line in want]
    assert top["spread"].to_list() == [Decimal(line["best_ask"][0]) - Decimal(line["best_bid"][0]) for line in want]


def test_without_the_plugin_the_command_says_what_to_install(tmp_path: Path):
    # the plugin made unimportable in a fresh interpreter, as if not installed
    script = (
        "import sys; sys.modules['spiceflow_parquet'] = None; "
        "from spiceflow_core.cli.main import main; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "export", str(SESSION), "--parquet", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "pip install spiceflow-parquet" in done.stderr


def test_an_export_that_cannot_write_fails_naming_the_cause(tmp_path: Path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file")
    done = _spiceflow("export", str(SESSION), "--parquet", str(blocker / "data"))
    assert done.returncode == 1
    assert "export: cannot create a file in" in done.stderr and "Not a directory" in done.stderr
