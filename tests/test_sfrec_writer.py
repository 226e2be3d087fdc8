"""The recorder's writer thread: the event loop's calls never wait for the disk, a
writer that falls behind leaves an explicit, counted gap record, ``close`` drains, and
a kill -9 leaves a file that reads back to a prefix with no corrupt record.

A FIFO stands in for a stalled disk: nothing is written past the pipe buffer until
the test reads it, so "the writer is behind" is a fact, not a race.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from spiceflow_core.plugin.registry import discover
from spiceflow_core.recording.replay import replay
from spiceflow_core.recording.sfrec import (
    BINARY,
    MAGIC,
    TEXT,
    Record,
    Recorder,
    RecordingReader,
    encode_record,
    read_recording,
)
from spiceflow_core.testkit.processes import SPICEFLOW

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _wait_until(condition, what: str, deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class _Fifo:
    """A FIFO recording target whose reader takes nothing until :meth:`drain`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        # a reader must exist before the recorder opens the write end (or open blocks)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self._thread: threading.Thread | None = None

    def drain(self) -> None:
        """Read everything, in a thread, until the writer closes its end."""

        def run() -> None:
            os.set_blocking(self.fd, True)
            while chunk := os.read(self.fd, 1 << 20):
                self.data += chunk
            os.close(self.fd)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def records(self, tmp_path: Path) -> list[Record]:
        assert self._thread is not None
        self._thread.join(20)
        assert not self._thread.is_alive()
        copy = tmp_path / "drained.sfrec"
        copy.write_bytes(self.data)
        reader = RecordingReader(copy)
        records = list(reader)
        assert reader.complete
        return records


def _frame(i: int, size: int = 4096) -> str:
    body = json.dumps({"i": i, "pad": ""})
    return body[:-2] + "x" * max(0, size - len(body)) + '"}'


def test_close_drains_every_record_in_order(tmp_path):
    path = tmp_path / "a.sfrec"
    rec = Recorder(path, "binance", {"argv": ["record"]})
    expected: list[tuple] = []
    rec.opened(1, "ws://127.0.0.1/ws", 5)
    expected.append(("open", 5, 1, 0, "ws://127.0.0.1/ws", b""))
    for i in range(20_000):
        if i % 3 == 0:
            rec.frame(1, _frame(i, 100), 10 + i)
            expected.append(("recv", 10 + i, 1, TEXT, "", _frame(i, 100).encode()))
        elif i % 3 == 1:
            buf = bytearray(b"bin%d" % i)
            rec.frame(2, buf, 10 + i)
            buf[:3] = b"XXX"  # a mutable buffer changed after the call is recorded as it was
            expected.append(("recv", 10 + i, 2, BINARY, "", b"bin%d" % i))
        else:
            rec.sent(1, '{"method":"SUBSCRIBE"}', 10 + i)
            expected.append(("sent", 10 + i, 1, TEXT, "", b'{"method":"SUBSCRIBE"}'))
    rec.rest("http://127.0.0.1/api/v3/depth?symbol=A", 200, b"{}")
    rec.close()
    rec.close()  # idempotent
    rec.frame(1, "late", 1)  # after close: ignored, not an error

    reader = RecordingReader(path)
    records = list(reader)
    assert reader.complete
    assert records[0].kind == "meta" and json.loads(records[0].data)["venue"] == "binance"
    got = [(r.kind, r.ts_ns, r.conn, r.status, r.url, r.data) for r in records[1:-1]]
    assert got == expected
    assert records[-1].kind == "rest" and records[-1].status == 200 and records[-1].data == b"{}"
    assert rec.lost == 0 and rec.gaps == 0 and rec.error is None
    assert rec.writer.written == len(records)


def test_full_queue_never_blocks_the_caller_and_leaves_a_reported_gap(tmp_path):
    fifo = _Fifo(tmp_path / "stalled.sfrec")
    rec = Recorder(fifo.path, "binance", max_pending_bytes=256 * 1024)
    n = 1000  # 4 MB of frames: far more than the pipe (64 kB) and the bound (256 kB) hold
    for i in range(n):
        rec.frame(1, _frame(i), 1_000 + i)
    # every call returned although nobody has read a byte of the FIFO yet: the
    # writer is stuck in write(), and the frames beyond the bound were dropped
    assert 0 < rec.lost < n
    lost = rec.lost
    assert rec.gaps == 0  # the gap record goes in when the next record fits

    fifo.drain()
    _wait_until(lambda: rec.writer.pending_bytes == 0, "the writer to catch up")
    for i in range(n, n + 10):
        rec.frame(1, _frame(i), 1_000 + i)
    rec.close()
    assert rec.lost == lost and rec.gaps == 1

    records = fifo.records(tmp_path)
    assert records[0].kind == "meta"
    kept = n - lost
    recv = [r for r in records if r.kind == "recv"]
    assert [json.loads(r.data)["i"] for r in recv] == [*range(kept), *range(n, n + 10)]
    (gap,) = [r for r in records if r.kind == "gap"]
    assert records.index(gap) == 1 + kept  # exactly where the frames are missing
    assert gap.status == lost and gap.ts_ns == 1_000 + kept
    info = gap.gap
    assert info["records"] == lost and info["kinds"] == {"recv": lost}
    assert (info["first_ts_ns"], info["last_ts_ns"]) == (1_000 + kept, 1_000 + n - 1)
    assert info["bytes"] == sum(len(_frame(i)) for i in range(kept, n))

    # replay reports the gap, as stats and on the command line
    copy = tmp_path / "binance-gap.sfrec"
    copy.write_bytes(fifo.data)
    (rep,) = replay(copy, discover().get).values()
    assert (rep.stats.recording_gaps, rep.stats.lost_records) == (1, lost)
    proc = subprocess.run(
        [*SPICEFLOW, "replay", str(copy), "--jsonl", "-"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert f"recording gaps: 1, {lost} records lost" in proc.stderr, proc.stderr


@pytest.mark.anyio
async def test_aclose_drains_off_the_event_loop(tmp_path):
    fifo = _Fifo(tmp_path / "stalled.sfrec")
    rec = Recorder(fifo.path, "binance")
    n = 200  # 800 kB: the writer blocks on the full pipe until the test reads it
    for i in range(n):
        rec.frame(1, _frame(i), 1_000 + i)
    closed = anyio.Event()
    ticks_while_closing = 0

    async def close() -> None:
        await rec.aclose()
        closed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(close)
        # the loop keeps running while close() waits for the stalled writer
        while ticks_while_closing < 20:
            await anyio.sleep(0.001)
            assert not closed.is_set()
            ticks_while_closing += 1
        fifo.drain()
        with anyio.fail_after(20):
            await closed.wait()
    records = fifo.records(tmp_path)
    assert [json.loads(r.data)["i"] for r in records if r.kind == "recv"] == list(range(n))
    assert rec.lost == 0


def test_write_error_stops_the_writer_and_counts_every_later_record(tmp_path):
    """A broken pipe (a real write error) mid-recording: the calls keep returning,
    the error is kept, and every record is either written or counted as lost."""
    fifo = _Fifo(tmp_path / "broken.sfrec")
    rec = Recorder(fifo.path, "binance", flush_interval=0.01)
    _wait_until(lambda: rec.writer.written == 1, "the meta record")
    os.close(fifo.fd)  # the reader goes away
    for i in range(100):
        rec.frame(1, _frame(i, 200), i)
    _wait_until(lambda: rec.error is not None, "the write error")
    for i in range(100, 150):
        rec.frame(1, _frame(i, 200), i)
    rec.close()
    assert isinstance(rec.error, BrokenPipeError)
    assert rec.writer.written + rec.lost == 1 + 150
    assert rec.lost >= 50


_CHILD = """
import json, random, sys, time
from spiceflow_core.recording.sfrec import Recorder

rec = Recorder(sys.argv[1], "binance", max_pending_bytes=8 * 2**20)
sizes = random.Random(int(sys.argv[2]))
i = 0
announced = False
while True:
    pad = sizes.choice((0, 100, 3_000, 30_000, 200_000))
    rec.frame(1, json.dumps({"i": i, "pad": "x" * pad}), 1_000 + i)
    i += 1
    if not announced and rec.writer.written > 2_000:
        print(rec.writer.written, flush=True)
        announced = True
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_mid_write_reads_back_to_a_prefix(tmp_path, seed):
    """A writer process killed while frames pour in: the file reads back to the meta
    record plus frames 0..k in order (each gap record accounting for exactly the frames
    it stands for), every record intact, and nothing the writer had written is lost."""
    path = tmp_path / "killed.sfrec"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), str(seed)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, "the writer process died before writing"
        written_before_kill = int(line)
        time.sleep(random.Random(seed).uniform(0.0, 0.05))  # land anywhere in a batch
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    reader = RecordingReader(path)
    records = list(reader)
    assert len(records) >= written_before_kill  # everything handed to the OS survived
    assert records[0].kind == "meta"
    sizes = random.Random(seed)
    expect = 0
    for r in records[1:]:
        if r.kind == "gap":
            expect += r.status
            continue
        assert r.kind == "recv"
        msg = json.loads(r.data)
        assert msg["i"] == expect and r.ts_ns == 1_000 + expect
        expect += 1
    # the contents are exactly what was sent: replay the size sequence
    pads = [sizes.choice((0, 100, 3_000, 30_000, 200_000)) for _ in range(expect)]
    for r in records[1:]:
        if r.kind == "recv":
            msg = json.loads(r.data)
            assert msg["pad"] == "x" * pads[msg["i"]]
    # a torn last record, if any, is exactly the bytes after the last intact record
    assert path.stat().st_size == len(MAGIC) + sum(len(encode_record(r)) for r in records) + reader.truncated


def test_a_record_larger_than_the_bound_is_kept_when_nothing_else_waits(tmp_path):
    """A REST snapshot bigger than the whole bound is recorded, not dropped forever."""
    path = tmp_path / "big.sfrec"
    rec = Recorder(path, "binance", max_pending_bytes=1024)
    _wait_until(lambda: rec.writer.pending_bytes == 0, "the meta record to be written")
    rec.rest("http://127.0.0.1/api/v3/depth?symbol=A&limit=5000", 200, b"x" * 100_000)
    rec.close()
    assert rec.lost == 0
    assert [(r.kind, len(r.data)) for r in read_recording(path)][1:] == [("rest", 100_000)]
