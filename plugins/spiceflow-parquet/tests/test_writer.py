"""The writer: Hive partitions by feed, venue and UTC hour of receipt; files rolled by
rows, bytes and age; a file complete or absent (hidden temporary name, then a rename);
failures lose only the rows of the failed file and the writer goes on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from parquet_testing import Wire, read_feed
from spiceflow_parquet.config import ParquetOptions
from spiceflow_parquet.writer import PartitionedWriter, remove_stale_temp_files

HOUR_NS = 3600 * 10**9
NOON = 1_796_126_400 * 10**9  # 2026-12-01 12:00 UTC


def _options(tmp_path: Path, **changes: object) -> ParquetOptions:
    return ParquetOptions(path=str(tmp_path / "data"), fsync=False, **changes)  # type: ignore[arg-type]


def _complete(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def _temporary(root: Path) -> list[Path]:
    return sorted(root.rglob(".part-*.parquet.tmp"))


def test_files_roll_at_max_rows_and_only_complete_files_are_visible(tmp_path: Path, wire: Wire):
    writer = PartitionedWriter(_options(tmp_path, max_rows=10, row_group_rows=4))
    messages = [wire.book("BTCUSDT", recv_ts_ns=NOON + i)[2] for i in range(25)]
    outcome = writer.write(messages[:12])
    assert (outcome.committed, outcome.files, outcome.errors) == (10, 1, [])
    outcome = writer.write(messages[12:])
    assert (outcome.committed, outcome.files, writer.pending_rows) == (10, 1, 5)
    root = writer.root
    # the open file exists only under its hidden temporary name
    (temp,) = _temporary(root)
    assert temp.name.startswith(".part-") and temp.parent == root / "books/venue=toy/date=2026-12-01/hour=12"
    assert [pq.read_metadata(f).num_rows for f in _complete(root)] == [10, 10]
    outcome = writer.close()
    assert (outcome.committed, outcome.files, writer.pending_rows) == (5, 1, 0)
    assert _temporary(root) == []
    files = _complete(root)
    assert [pq.read_metadata(f).num_rows for f in files] == [10, 10, 5]
    assert all(f.name.startswith("part-") for f in files)
    assert max(pq.read_metadata(f).row_group(0).num_rows for f in files) == 4  # row_group_rows
    assert [row["topic_seq"] for row in read_feed(root, "books")] == list(range(1, 26))


def test_partitions_by_feed_venue_and_utc_hour_of_receipt(tmp_path: Path, wire: Wire):
    writer = PartitionedWriter(_options(tmp_path))
    messages = [
        wire.book("BTCUSDT", recv_ts_ns=NOON)[2],
        wire.book("BTCUSDT", recv_ts_ns=NOON + HOUR_NS)[2],  # 13:00
        wire.book("BTCUSDT", venue="other", recv_ts_ns=NOON + 12 * HOUR_NS)[2],  # the next day, 0:00
        wire.trade("BTCUSDT")[2],
        wire.top("BTCUSDT")[2],
        wire.status()[2],  # not stored
    ]
    outcome = writer.write(messages)
    assert outcome.skipped == 1
    assert writer.close().committed == 5
    dirs = sorted(str(f.parent.relative_to(writer.root)) for f in _complete(writer.root))
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert dirs == sorted(
        [
            "books/venue=toy/date=2026-12-01/hour=12",
            "books/venue=toy/date=2026-12-01/hour=13",
            "books/venue=other/date=2026-12-02/hour=0",
            f"trades/venue=toy/date={today}/hour={time.gmtime().tm_hour}",
            f"tops/venue=toy/date={today}/hour={time.gmtime().tm_hour}",
        ]
    )


def test_feeds_left_out_are_skipped(tmp_path: Path, wire: Wire):
    writer = PartitionedWriter(_options(tmp_path, feeds=["trades"]))
    outcome = writer.write([wire.book("BTCUSDT")[2], wire.trade("BTCUSDT")[2], wire.top("BTCUSDT")[2]])
    assert outcome.skipped == 2
    writer.close()
    assert [f.parent.parent.parent.parent.name for f in _complete(writer.root)] == ["trades"]


def test_files_roll_by_age_and_by_bytes(tmp_path: Path, wire: Wire):
    writer = PartitionedWriter(_options(tmp_path / "age", max_age=5.0))
    writer.write([wire.book("BTCUSDT")[2]])
    assert writer.roll_expired().files == 0  # not old enough yet
    assert writer.roll_expired(now=time.monotonic() + 5.0).files == 1
    assert writer.open_files == 0

    writer = PartitionedWriter(_options(tmp_path / "bytes", max_bytes=1, row_group_rows=2))
    outcome = writer.write([wire.book("BTCUSDT")[2] for _ in range(6)])
    assert (outcome.files, outcome.committed, writer.open_files) == (3, 6, 0)  # a row group fills a file


def test_an_unwritable_root_loses_those_rows_and_the_writer_recovers(tmp_path: Path, wire: Wire):
    # root runs the tests in CI and ignores permission bits: a path component that is a
    # regular file fails for root too
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    writer = PartitionedWriter(_options(tmp_path), root=blocker / "data")
    outcome = writer.write([wire.book("BTCUSDT")[2], wire.trade("BTCUSDT")[2], wire.book("BTCUSDT")[2]])
    assert (outcome.lost, outcome.committed, len(outcome.errors)) == (3, 0, 2)  # the books' file, the trades'
    assert all("cannot create a file in" in e and "Not a directory" in e for e in outcome.errors)
    assert writer.open_files == 0
    blocker.unlink()  # the operator fixes it: the next rows start a new file
    writer.write([wire.book("BTCUSDT")[2]])
    assert writer.close().committed == 1
    assert len(_complete(blocker)) == 1


_FULL_DISK = """
import json, resource, signal, sys
sys.path[:0] = {paths!r}
from spiceflow_core.broadcast.wire import BookMessage
from spiceflow_parquet.config import ParquetOptions
from spiceflow_parquet.writer import PartitionedWriter

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
options = ParquetOptions(path={root!r}, row_group_rows=100, max_rows=400, fsync=False, compression="none")
writer = PartitionedWriter(options)
levels = [(f"{{100 + i}}.{{i:02d}}", f"{{i}}.5") for i in range(10)]
report = {{"committed": 0, "lost": 0, "errors": []}}

def book(n):
    return BookMessage(venue="toy", symbol="BTCUSDT", topic_seq=n, sequence=n, bids=levels, asks=levels,
                       recv_ts_ns=1_796_126_400 * 10**9 + n)

def add(outcome):
    report["committed"] += outcome.committed
    report["lost"] += outcome.lost
    report["errors"] += outcome.errors

resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))
for start in range(1, 2001, 100):
    add(writer.write([book(n) for n in range(start, start + 100)]))
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space again
add(writer.write([book(n) for n in range(2001, 2101)]))
add(writer.close())
print(json.dumps(report))
"""


def test_a_full_disk_mid_file_loses_that_file_only_and_the_writer_goes_on(tmp_path: Path):
    # RLIMIT_FSIZE makes a write fail like a full disk (EFBIG), for root too, in a child
    # process only; files grow past the limit after two row groups
    script = _FULL_DISK.format(paths=sys.path, root=str(tmp_path / "data"), limit=20_000)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["errors"] and all("File too large" in e for e in report["errors"]), report["errors"]
    assert report["lost"] > 0 and report["committed"] > 0
    assert report["committed"] + report["lost"] == 2100
    rows = read_feed(tmp_path / "data", "books")  # every complete file reads
    assert len(rows) == report["committed"]
    assert rows[-1]["topic_seq"] == 2100  # written once space came back
    assert _temporary(tmp_path / "data") == []  # failed files were removed


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path: Path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    partition = tmp_path / "books/venue=toy/date=2026-12-01/hour=12"
    partition.mkdir(parents=True)
    dead = partition / f".part-1-{gone.pid}-000001.parquet.tmp"
    alive = partition / ".part-1-1-000001.parquet.tmp"  # pid 1 runs
    complete = partition / f"part-1-{gone.pid}-000002.parquet"
    for path in (dead, alive, complete):
        path.write_bytes(b"PAR1")
    assert remove_stale_temp_files(tmp_path) == [dead]
    assert sorted(p.name for p in partition.iterdir()) == sorted([alive.name, complete.name])
