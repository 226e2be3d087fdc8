"""Record and replay: the recording format is crash-safe, the recorded
sessions of ``shared/recorded`` replay to books equal to the exchange's own best
bid/ask, and a session recorded with ``spiceflow record`` replays to exactly the
books the live run published. A replay runs the runtime's router and order book actor
and publishes the live wire messages (``spiceflow_core.broadcast.wire``)."""

from __future__ import annotations

import collections
import itertools
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import msgspec
import pytest
import zmq

from spiceflow_core.broadcast import wire
from spiceflow_core.model import TopOfBook
from spiceflow_core.plugin.registry import discover
from spiceflow_core.ports import free_port
from spiceflow_core.recording.capture import capture_files, read_capture
from spiceflow_core.recording.replay import capture_venue, replay
from spiceflow_core.recording.sfrec import MAGIC, Record, Recorder, RecordingReader, RecordingWriter, read_recording
from spiceflow_core.testkit.processes import SPICEFLOW

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO.parent / "shared" / "recorded"


@pytest.fixture(scope="module")
def registry():
    return discover()


def _need(prefix: str) -> Path:
    path = RECORDED / prefix
    if not Path(str(path) + ".0").exists():
        pytest.skip(f"recorded session {path} not found")
    return path


# -- the format ---------------------------------------------------------------------


def _sample_records(n: int = 50) -> list[Record]:
    out = [Record("meta", 1, data=b'{"venue": "binance"}'), Record("open", 2, 1, 0, "ws://x/stream")]
    for i in range(n):
        out.append(Record("recv", 1_000 + i, 1, 1, "", json.dumps({"i": i, "pad": "x" * i}).encode()))
        if i % 10 == 0:
            out.append(Record("sent", 1_000 + i, 1, 1, "", b'{"method":"SUBSCRIBE"}'))
            out.append(Record("rest", 1_000 + i, 0, 200, "http://x/api/v3/depth?symbol=A&limit=5", b"{}"))
    return out


def test_recording_roundtrip(tmp_path):
    records = _sample_records()
    with RecordingWriter(tmp_path / "a.sfrec") as w:
        for r in records:
            w.write(r)
    reader = RecordingReader(tmp_path / "a.sfrec")
    assert list(reader) == records
    assert reader.complete


def test_recording_truncated_mid_record_reads_up_to_last_complete_record(tmp_path):
    records = _sample_records()
    path = tmp_path / "a.sfrec"
    with RecordingWriter(path) as w:
        ends = []
        for r in records:
            w.write(r)
            ends.append(w.bytes + len(MAGIC))
    full = path.read_bytes()
    assert len(full) == ends[-1]
    # cut at every byte inside the last few records: never an exception, always the
    # complete prefix
    for cut in range(ends[-5] - 3, ends[-1]):
        path.write_bytes(full[:cut])
        reader = RecordingReader(path)
        got = list(reader)
        complete = sum(1 for e in ends if e <= cut)
        assert got == records[:complete], cut
        assert reader.truncated == cut - (ends[complete - 1] if complete else len(MAGIC))
    # a crash that left garbage (a torn page) after the last record is not read as data
    path.write_bytes(full[: ends[10]] + b"\x05\x00\x00\x00garbage")
    reader = RecordingReader(path)
    assert list(reader) == records[:11] and reader.truncated == 11
    # crashed before the header was complete
    path.write_bytes(MAGIC[:3])
    assert list(RecordingReader(path)) == []


def test_recording_appends_after_restart(tmp_path):
    path = tmp_path / "a.sfrec"
    with RecordingWriter(path) as w:
        w.write(Record("recv", 1, 1, 1, "", b"a"))
    with RecordingWriter(path) as w:
        w.write(Record("recv", 2, 1, 1, "", b"b"))
    assert [r.data for r in read_recording(path)] == [b"a", b"b"]


# -- the recorded sessions: books equal the exchange's own top of book -----------------


def _books(messages: list) -> list[wire.BookMessage]:
    return [m for m in messages if isinstance(m, wire.BookMessage)]


def _best(book: wire.BookMessage) -> tuple:
    """(best bid, best ask) of a published book, None for an empty side."""
    return (book.bids[0] if book.bids else None, book.asks[0] if book.asks else None)


def _replay_capture(registry, prefix: Path, **options):
    messages: list = []
    replayers = replay(
        prefix,
        registry.get,
        capture_prefixes=registry.capture_prefixes(),
        feeds=("book", "top"),
        emit=messages.append,
        **options,
    )
    (rep,) = replayers.values()
    tops: list[TopOfBook] = [m for m in messages if isinstance(m, TopOfBook)]
    return rep, _books(messages), tops


@pytest.mark.parametrize("prefix, venue", [("BINANCE", "binance"), ("BINANCE_FUTURES", "binance-usdm")])
def test_replayed_binance_books_equal_book_ticker_at_matching_ids(registry, prefix, venue):
    """``bookTicker`` u is the exchange's best bid/ask after update id u: every replayed
    book state at that id must be equal (matched by id, not by arrival order: the ticker
    arrives before the 100 ms depth batch that ends at its id)."""
    assert capture_venue(prefix, registry.capture_prefixes()) == venue
    rep, updates, tops = _replay_capture(registry, _need(prefix))
    assert rep.venue.name == venue
    assert rep.stats.gaps == 0 and rep.stats.parse_errors == 0
    assert rep.syncs and all(s.state.value == "synced" for s in rep.syncs.values())
    tickers = {(t.symbol, t.sequence): ((t.bid_price, t.bid_size), (t.ask_price, t.ask_size)) for t in tops}
    matched, mismatched = 0, []
    for u in updates:
        want = tickers.get((u.symbol, u.sequence))
        if want is None:
            continue
        best_bid, best_ask = _best(u)
        if (tuple(best_bid), tuple(best_ask)) == want:
            matched += 1
        else:
            mismatched.append((u.symbol, u.sequence, best_bid, best_ask, want))
    assert mismatched == []
    assert matched > 20, matched


def test_replayed_deribit_books_equal_ticker_at_matching_timestamps(registry):
    rep, updates, tops = _replay_capture(registry, _need("DERIBIT"))
    assert rep.venue.name == "deribit"
    assert rep.stats.gaps == 0 and rep.stats.parse_errors == 0
    books = collections.defaultdict(list)
    for u in updates:
        books[(u.symbol, u.exchange_ts_ms)].append(_best(u))
    compared, mismatched = 0, []
    for t in tops:
        want = (
            (t.bid_price, t.bid_size) if t.bid_price is not None else None,
            (t.ask_price, t.ask_size) if t.ask_price is not None else None,
        )
        for state in books.get((t.symbol, t.exchange_ts_ms), []):
            compared += 1
            got = tuple(tuple(x) if x is not None else None for x in state)
            if got != want:
                mismatched.append((t.symbol, t.exchange_ts_ms, got, want))
    assert mismatched == []
    assert compared > 30, compared


def test_replay_cli_jsonl_lines(registry, tmp_path):
    """The command line: one JSON line per book update with exact decimal strings,
    the venue guessed from the capture prefix, ``--depth`` honoured; each line is the
    wire message (its ``type`` tag, ``instrument`` the normalized id), and the book
    states are lines too."""
    prefix = _need("BINANCE")
    out = tmp_path / "b.jsonl"
    proc = subprocess.run(
        [*SPICEFLOW, "replay", str(prefix), "--jsonl", str(out), "--depth", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 gaps" in proc.stderr
    every = [json.loads(line) for line in out.read_text().splitlines()]
    lines = [line for line in every if line["type"] == "book"]
    _, updates, _ = _replay_capture(registry, prefix)
    assert len(lines) == len(updates) > 100
    first = lines[0]
    assert set(first) >= {"venue", "symbol", "sequence", "exchange_ts_ms", "best_bid", "best_ask", "bids", "asks"}
    assert first["venue"] == "binance"
    for line, u in zip(lines, updates, strict=True):
        assert (line["symbol"], line["sequence"]) == (u.symbol, u.sequence)
        assert [tuple(x) for x in line["bids"]] == u.bids[:5] and len(line["asks"]) <= 5
        assert line["best_bid"] == list(u.bids[0])
    # exactly as Binance sent them: 8-decimal strings, never reformatted
    assert all(p.endswith("0") and len(p.split(".")[1]) == 8 for p, _ in lines[0]["bids"])
    # the normalized ids of the capture's own reference data (its exchangeInfo answer)
    assert {line["symbol"]: line["instrument"] for line in lines} == {
        "NKNUSDT": "binance.spot.NKN.USDT",
        "BLZETH": "binance.spot.BLZ.ETH",
        "LRCBTC": "binance.spot.LRC.BTC",
        "RUNEEUR": "binance.spot.RUNE.EUR",
    }
    # each book's states are published too: pending, then synced before its first book
    states: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
    first_book: dict[str, int] = {}
    for n, line in enumerate(every):
        if line["type"] == "status":
            states[line["symbol"]].append((n, line["state"]))
        else:
            first_book.setdefault(line["symbol"], n)
    assert {symbol: [state for _, state in seq] for symbol, seq in states.items()} == {
        symbol: ["pending", "synced"] for symbol in first_book
    }
    assert all(states[symbol][1][0] < n for symbol, n in first_book.items())


def test_replay_unknown_prefix_is_a_usage_error(tmp_path):
    (tmp_path / "FOO.0").write_text("x\n")
    proc = subprocess.run(
        [*SPICEFLOW, "replay", str(tmp_path / "FOO"), "--jsonl", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "--venue" in proc.stderr


# -- the recorder: a session written through it replays like its source -------------------


@pytest.mark.parametrize("prefix", ["BINANCE", "DERIBIT"])
def test_recorder_output_replays_to_the_same_books_as_its_source(registry, tmp_path, prefix):
    """Every frame, sent frame, connection and REST answer of a recorded session goes
    through ``Recorder`` (the calls the runtime makes, its writer thread, ``aclose``-free
    ``close``); the .sfrec file then replays to exactly the books of the source."""
    source = _need(prefix)
    venue = capture_venue(prefix, registry.capture_prefixes())
    assert venue
    path = tmp_path / f"{venue}-x.sfrec"
    rec = Recorder(path, venue, flush_interval=0.005)
    conns: dict[str, int] = {}
    for r in read_capture(source):
        ts = round(r.ts * 1e9)
        if r.kind == "connect":
            rec.opened(conns.setdefault(r.url, len(conns) + 1), r.url, ts)
        elif r.kind == "send":
            rec.sent(conns.setdefault(r.url, len(conns) + 1), r.body, ts)
        elif r.kind == "recv":
            rec.frame(conns.setdefault(r.url, len(conns) + 1), r.body, ts)
        elif r.kind == "rest":
            rec.rest(r.url, 200, r.body.encode())
    rec.close()
    assert rec.lost == 0 and rec.gaps == 0 and rec.error is None

    def books(src: Path) -> list:
        messages: list = []
        replay(src, registry.get, capture_prefixes=registry.capture_prefixes(), emit=messages.append)
        return [(u.symbol, u.sequence, u.instrument, u.bids, u.asks) for u in _books(messages)]

    expected = books(source)
    assert len(expected) > 20
    assert books(path) == expected


# -- record a live (demo) session, replay it -----------------------------------------------


class _Collector(threading.Thread):
    """Messages a run publishes on topics starting with ``prefix`` (a SUB socket connected
    before the run); ``books`` are its book messages."""

    def __init__(self, address: str, prefix: bytes = b"book.") -> None:
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, prefix)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.connect(address)
        self.messages: list[wire.WireMessage] = []
        self.books: list[wire.BookMessage] = []
        self.stop = threading.Event()

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self.stop.is_set():
            if poller.poll(100):
                frames = self.sock.recv_multipart()
                for body in frames[1:]:
                    msg = wire.decoder.decode(body)
                    self.messages.append(msg)
                    if isinstance(msg, wire.BookMessage):
                        self.books.append(msg)
        self.sock.close(linger=0)
        self.ctx.term()


@pytest.mark.parametrize("venue", ["binance", "deribit"])
def test_record_demo_session_and_replay_it(registry, tmp_path, venue):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    collector = _Collector(address)
    collector.start()
    out = tmp_path / "rec"
    try:
        proc = subprocess.run(
            [
                *SPICEFLOW,
                "record",
                "--venue",
                venue,
                "--profile",
                "demo",
                "--duration",
                "4",
                "--out",
                str(out),
                "--no-api",
                "--broadcast",
                address,
                "--log-level",
                "WARNING",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        time.sleep(0.3)
    finally:
        collector.stop.set()
        collector.join(5)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = out.glob("*.sfrec")
    records = read_recording(path)
    kinds = collections.Counter(r.kind for r in records)
    assert kinds["meta"] == 1 and kinds["open"] >= 1 and kinds["sent"] >= 1 and kinds["recv"] > 20
    if venue == "binance":
        assert kinds["rest"] >= 2  # the depth snapshots (reference data came from fixtures)
    assert all(a.ts_ns <= b.ts_ns for a, b in itertools.pairwise(records) if a.kind == b.kind == "recv")

    messages: list = []
    (rep,) = replay(path, registry.get, emit=messages.append, depth=25).values()
    updates = _books(messages)
    assert rep.stats.gaps == 0 and rep.stats.parse_errors == 0
    assert all(s.state.value == "synced" for s in rep.syncs.values())
    live = collector.books
    assert len(live) > 20, len(live)
    replayed = {(u.symbol, u.sequence): (u.bids, u.asks) for u in updates}
    # the replay publishes the live run's wire messages: same normalized ids, same fields
    assert {(m.symbol, m.instrument) for m in live} <= {(u.symbol, u.instrument) for u in updates}
    mismatched = [
        (m.symbol, m.sequence)
        for m in live
        if replayed.get((m.symbol, m.sequence)) != ([tuple(x) for x in m.bids], [tuple(x) for x in m.asks])
    ]
    assert mismatched == [], f"{len(mismatched)} of {len(live)} live books differ from the replay: {mismatched[:5]}"
    # the last book the live run published for each symbol is a replayed state too
    last_live = {m.symbol: m.sequence for m in live}
    assert set(last_live) == set(rep.syncs)


# -- the replay is the runtime's frame path -------------------------------------------------


def _copy_capture(prefix: Path, dest: Path, keep=lambda name: True, edit=lambda name, text: text) -> Path:
    """A copy of a capture under ``dest`` with the same name: only the files ``keep``
    accepts, each file's text passed through ``edit``."""
    dest.mkdir(exist_ok=True)
    for path in capture_files(prefix):
        if keep(path.name):
            (dest / path.name).write_text(edit(path.name, path.read_text()))
    return dest / prefix.name


def test_replay_takes_instruments_from_the_recorded_reference_data(registry, tmp_path):
    """The capture's own REST reference data (BINANCE.0 line 1, the exchangeInfo answer)
    is read by the venue's own loading code, so the normalized ids are filled even when
    the plugin ships no fixtures; without it they fall back to the symbol, as live."""
    prefix = _need("BINANCE")

    class Unpackaged(type(registry.get("binance"))):
        def fixtures_dir(self):
            return None

    venue = Unpackaged()

    def instruments(source: Path) -> dict[str, str]:
        messages: list = []
        replay(source, lambda name: venue, venue="binance", emit=messages.append)
        return {m.symbol: m.instrument for m in _books(messages)}

    assert instruments(prefix) == {
        "NKNUSDT": "binance.spot.NKN.USDT",
        "BLZETH": "binance.spot.BLZ.ETH",
        "LRCBTC": "binance.spot.LRC.BTC",
        "RUNEEUR": "binance.spot.RUNE.EUR",
    }
    bare = _copy_capture(prefix, tmp_path / "bare", keep=lambda name: name != "BINANCE.0")
    assert not Path(str(bare) + ".0").exists()
    assert instruments(bare) == {s: s for s in ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR")}


def test_replay_reports_a_gap_and_the_book_waits_for_the_next_snapshot(registry, tmp_path):
    """A delta missing from the recording: the book goes stale and resyncing (published,
    with the reason), publishes nothing more, and the replay says it ended waiting for
    a snapshot; the other books are untouched."""
    prefix = _need("BINANCE")
    dropped = []

    def drop_one(name: str, text: str) -> str:
        if ".ws." not in name:
            return text
        out = []
        for line in text.splitlines(keepends=True):
            if not dropped and '"s":"NKNUSDT"' in line and "depthUpdate" in line and len(out) > 40:
                dropped.append(line)
                continue
            out.append(line)
        return "".join(out)

    gapped = _copy_capture(prefix, tmp_path / "gap", edit=drop_one)
    assert len(dropped) == 1
    out = tmp_path / "g.jsonl"
    proc = subprocess.run(
        [*SPICEFLOW, "replay", str(gapped), "--venue", "binance", "--jsonl", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 gaps" in proc.stderr and "3/4 books in sync" in proc.stderr
    assert "gap: NKNUSDT: sequence gap" in proc.stderr
    assert "NKNUSDT: resyncing at the end" in proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    nkn = [(line["type"], line.get("state")) for line in lines if line["symbol"] == "NKNUSDT"]
    stale = nkn.index(("status", "stale"))
    assert nkn[stale:] == [("status", "stale"), ("status", "resyncing")]
    assert ("book", None) in nkn[:stale]
    # the other symbols' books are exactly those of the complete capture
    _, complete, _ = _replay_capture(registry, prefix)
    others = [(m.symbol, m.sequence, m.bids, m.asks) for m in complete if m.symbol != "NKNUSDT"]
    assert [
        (line["symbol"], line["sequence"], [tuple(x) for x in line["bids"]], [tuple(x) for x in line["asks"]])
        for line in lines
        if line["type"] == "book" and line["symbol"] != "NKNUSDT"
    ] == others


def test_conflate_publishes_each_book_once_per_recorded_read(registry, tmp_path):
    """Frames a connection received in one read share their timestamp; with
    ``book.publish = "conflate"`` the replay publishes each changed book once per such
    batch, at its latest state (as the live actor does at the end of each read), and a
    book's first full state at once."""
    source = _need("BINANCE")
    path = tmp_path / "binance-batched.sfrec"
    rec = Recorder(path, "binance", flush_interval=0.005)
    # the frames of one second as one read; a REST answer ends a read (the actor applies
    # a fetched snapshot between reads), so the frames after it get a timestamp of their own
    batch_ts: set[int] = set()
    rests = 0
    for r in read_capture(source):
        if r.kind == "recv":
            ts = int(r.ts) * 1_000_000_000 + rests
            rec.frame(1, r.body, ts)
            batch_ts.add(ts)
        elif r.kind == "rest":
            rec.rest(r.url, 200, r.body.encode())
            rests += 1
    rec.close()

    def run(publish: str) -> list:
        messages: list = []
        replay(path, registry.get, publish=publish, emit=messages.append)
        return messages

    # the expected conflated books: from the every-mode books, each book's last state of
    # each batch (its receive timestamp), and its first full state
    every = run("every")
    conflated = _books(run("conflate"))
    expected, forced = [], False
    last: dict[str, wire.BookMessage] = {}
    for m in every:
        if isinstance(m, wire.StatusMessage):
            forced = m.state == "synced"
            continue
        if forced:  # a book's first full state goes out at once, not conflated
            expected.append(m)
            forced = False
            continue
        prev = last.get(m.symbol)
        if prev is not None and prev.recv_ts_ns != m.recv_ts_ns:
            expected.append(prev)
        last[m.symbol] = m
    expected.extend(last.values())
    assert all(m.recv_ts_ns in batch_ts for m in last.values())
    key = lambda m: (m.symbol, m.sequence, m.bids, m.asks)  # noqa: E731
    assert sorted(map(key, conflated)) == sorted(map(key, expected))
    assert len(conflated) < len(_books(every)) / 2


def test_replay_cli_publishes_the_same_messages_on_zeromq_and_in_json_lines(tmp_path):
    """``--jsonl`` with ``--broadcast``: the ZeroMQ subscriber receives exactly the JSON
    lines' messages (books, states and the exchange's tops with ``--feed top``), stamped
    with their per-topic ``topic_seq``."""
    prefix = _need("BINANCE")
    address = f"tcp://127.0.0.1:{free_port()}"
    collector = _Collector(address, prefix=b"")
    collector.start()
    out = tmp_path / "b.jsonl"
    try:
        proc = subprocess.run(
            [
                *SPICEFLOW,
                "replay",
                str(prefix),
                "--jsonl",
                str(out),
                "--broadcast",
                address,
                "--feed",
                "book",
                "--feed",
                "top",
                "--linger",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        deadline = time.monotonic() + 10
        while len(collector.messages) < len(lines) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        collector.stop.set()
        collector.join(5)
    assert proc.returncode == 0, proc.stderr
    assert {line["type"] for line in lines} == {"book", "status", "top"}
    received = [msgspec.to_builtins(m) for m in collector.messages]
    seqs: dict[tuple, int] = collections.Counter()
    for m in received:
        seqs[(m["type"], m["symbol"])] += 1
        assert m.pop("topic_seq") == seqs[(m["type"], m["symbol"])] and m.pop("publish_ts_ns") > 0
    for line in lines:
        assert line.pop("topic_seq") == 0 and line.pop("publish_ts_ns") == 0
        if line["type"] == "book":
            assert line.pop("best_bid") == line["bids"][0] and line.pop("best_ask") == line["asks"][0]
    assert received == lines


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_replay_stops_when_its_output_fails():
    """A failing output (a full disk) ends the replay with the error; it is not taken for
    a failure of the book being published (which would resync that book and go on)."""
    prefix = _need("BINANCE")
    proc = subprocess.run(
        [*SPICEFLOW, "replay", str(prefix), "--jsonl", "/dev/full"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 1
    assert "replay: output failed: [Errno 28] No space left on device" in proc.stderr
    assert "gap" not in proc.stderr and "Traceback" not in proc.stderr


# -- the progress bar ---------------------------------------------------------------


def _replay_stderr(args: list[str], *, terminal: bool) -> bytes:
    """What ``spiceflow replay ARGS`` writes to stderr: a pseudo-terminal, or a pipe."""
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_INTERACTIVE", "TTY_COMPATIBLE", "NO_COLOR")}
    env.update(TERM="xterm", COLUMNS="100")
    argv = [*SPICEFLOW, "replay", *args]
    if not terminal:
        proc = subprocess.run(argv, capture_output=True, timeout=60, cwd=REPO, env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr
    import pty

    master, slave = pty.openpty()
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, cwd=REPO, env=env)
    os.close(slave)  # the child holds the terminal now: reading ends when it exits
    out = bytearray()
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal closed it
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    assert child.wait(60) == 0, bytes(out)
    return bytes(out)


def test_replay_shows_a_progress_bar_on_a_terminal_and_none_elsewhere(tmp_path):
    """On a terminal, a bar (source name, bytes replayed of the source's size) that ends
    complete; on a pipe, only the summary: no bar, no escape sequences."""
    prefix = _need("BINANCE")
    args = [str(prefix), "--jsonl", str(tmp_path / "out.jsonl")]
    shown = _replay_stderr(args, terminal=True)
    assert b"replay BINANCE" in shown and "━".encode() in shown
    assert re.search(rb"(\d+\.\d)/\1 MB", shown), shown  # e.g. "2.1/2.1 MB": all of it
    assert b"replay binance: " in shown  # the summary follows the bar
    piped = _replay_stderr(args, terminal=False)
    assert b"replay binance: " in piped
    assert "━".encode() not in piped and b"\x1b[" not in piped and b"MB" not in piped
