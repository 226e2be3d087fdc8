"""Consumer side: gap accounting, malformed frames, sync helper and ``tail``.

Gap tests drive the client from a raw ZeroMQ PUB socket so the test chooses every
``topic_seq`` (real sockets, no mocks).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
import zmq

from spiceflow_core.broadcast.publisher import Publisher
from spiceflow_core.broadcast.subscriber import Received, Subscriber, SyncSubscriber
from spiceflow_core.broadcast.tail import format_line, tail
from spiceflow_core.broadcast.wire import BookMessage, StatusMessage, TopMessage, TradeMessage, encoder

ROOT = Path(__file__).resolve().parents[1]
ANY_PORT = "tcp://127.0.0.1:*"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def raw_pub():
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    sock.bind(ANY_PORT)
    yield sock
    sock.close(linger=0)
    ctx.term()


def endpoint(sock: zmq.Socket) -> str:
    return sock.getsockopt(zmq.LAST_ENDPOINT).decode()


def top(symbol: str, seq: int, bid: str = "43250.10", ask: str = "43250.20") -> TopMessage:
    return TopMessage(
        venue="binance", symbol=symbol, bid_price=bid, bid_size="1.234", ask_price=ask, ask_size="0.500", topic_seq=seq
    )


def send(sock: zmq.Socket, msg) -> None:
    sock.send_multipart([f"top.{msg.venue}.{msg.symbol}".encode(), encoder.encode(msg)])


def warm_up_raw(sock: zmq.Socket, sub: SyncSubscriber) -> None:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        send(sock, top("WARMUP", 0))
        if sub.receive(timeout_ms=10) is not None:
            return
    raise TimeoutError("slow joiner never joined")


def drain_until(sub: SyncSubscriber, topic: str, seq: int) -> list[Received]:
    got = []
    end = time.monotonic() + 10
    while time.monotonic() < end:
        r = sub.receive(timeout_ms=100)
        if r is None or r.topic.endswith("WARMUP"):
            continue
        got.append(r)
        if r.topic == topic and r.message.topic_seq == seq:
            return got
    raise TimeoutError(f"never saw {topic} #{seq}")


def test_gaps_per_topic_restart_and_malformed(raw_pub):
    with SyncSubscriber(endpoint(raw_pub), ["top."]) as sub:
        warm_up_raw(raw_pub, sub)
        for sym, seq in [
            ("A", 1),
            ("A", 2),
            ("B", 7),
            ("A", 5),
            ("B", 8),
            ("A", 6),
            ("B", 12),
            ("A", 3),
        ]:  # A: 3 < 6 = publisher restart, not a loss
            send(raw_pub, top(sym, seq))
        raw_pub.send_multipart([b"top.binance.A", b"\xc1not msgpack"])
        raw_pub.send_multipart([b"top.binance.A"])  # wrong frame count
        send(raw_pub, top("A", 4))
        got = drain_until(sub, "top.binance.A", 4)
    assert [(r.topic[-1], r.message.topic_seq, r.missed) for r in got] == [
        ("A", 1, 0),
        ("A", 2, 0),
        ("B", 7, 0),
        ("A", 5, 2),
        ("B", 8, 0),
        ("A", 6, 0),
        ("B", 12, 3),
        ("A", 3, 0),
        ("A", 4, 0),
    ]
    assert sub.missed_total == 5
    assert sub.malformed == 2


def test_sync_receive_timeout_returns_none(raw_pub):
    with SyncSubscriber(endpoint(raw_pub), ["nothing."]) as sub:
        t0 = time.monotonic()
        assert sub.receive(timeout_ms=50) is None
        assert time.monotonic() - t0 < 5


@pytest.mark.anyio
async def test_async_subscriber_counts_gaps(raw_pub):
    async with Subscriber(endpoint(raw_pub), ["top.binance.X", "top.binance.WARMUP"]) as sub:
        with anyio.fail_after(10):
            while True:
                send(raw_pub, top("WARMUP", 0))
                with anyio.move_on_after(0.01):
                    await sub.receive()
                    break
        for seq in (1, 2, 4, 10):
            send(raw_pub, top("X", seq))
        got = []
        with anyio.fail_after(10):
            async for r in sub:
                if r.topic == "top.binance.X":
                    got.append((r.message.topic_seq, r.missed))
                    if r.message.topic_seq == 10:
                        break
    assert got == [(1, 0), (2, 0), (4, 1), (10, 5)]
    assert sub.missed_total == 6


# -- tail -------------------------------------------------------------------------------


def test_format_line_exact_spread_and_sides():
    r = Received("top.binance.BTCUSDT", top("BTCUSDT", 1), 0)
    assert format_line(r, 12.34) == (
        "top.binance.BTCUSDT  1.234 @ 43250.10 | 43250.20 @ 0.500  spread 0.10  12.3 upd/s"
    )
    # Exact decimal arithmetic (floats would print 0.30000000000000004-style noise).
    b = BookMessage(venue="binance", symbol="X", sequence=1, bids=[("0.1", "3")], asks=[("0.40000001", "2")])
    assert "spread 0.30000001" in format_line(Received("book.binance.X", b, 2), 1.0)
    assert format_line(Received("book.binance.X", b, 2), 1.0).endswith("(missed 2)")
    empty = BookMessage(venue="binance", symbol="X", sequence=1, bids=[], asks=[("5", "1")])
    assert "- | 5 @ 1  spread -" in format_line(Received("book.binance.X", empty, 0), 0.0)
    st = StatusMessage(venue="binance", symbol="X", state="resyncing", reason="gap 5..9")
    assert "status resyncing (gap 5..9)" in format_line(Received("status.binance.X", st, 0), 0.0)
    tr = TradeMessage(venue="binance", symbol="X", trade_id="1", price="9.5", size="2", side="sell")
    assert "trade sell 2 @ 9.5" in format_line(Received("trade.binance.X", tr, 0), 0.0)


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:  # a StringIO that says it is a terminal
        return True


async def _run_tail_against(pub: Publisher, out, *, as_json=False, limit=5, prefixes=None):
    """Run tail() while publishing until it returns (no fixed sleeps)."""
    result = {}

    async def runner():
        result["rc"] = await tail(pub.address, prefixes or ["top."], as_json=as_json, limit=limit, out=out)
        tg.cancel_scope.cancel()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner)
            i = 0
            while True:
                i += 1
                pub.publish(top("BTCUSDT" if i % 2 else "ETHUSDT", 0))
                await anyio.sleep(0.002)
    return result["rc"]


@pytest.mark.anyio
async def test_tail_plain_lines_when_not_a_tty():
    out = io.StringIO()
    with Publisher(ANY_PORT) as pub:
        assert await _run_tail_against(pub, out, limit=6) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 6
    assert all("1.234 @ 43250.10 | 43250.20 @ 0.500  spread 0.10" in ln for ln in lines)
    assert "\x1b[" not in out.getvalue()


@pytest.mark.anyio
async def test_tail_redraws_in_place_on_a_tty():
    out = _FakeTTY()
    with Publisher(ANY_PORT) as pub:
        assert await _run_tail_against(pub, out, limit=150) == 0
    text = out.getvalue()
    assert "\x1b[2K" in text and "\x1b[2F" in text  # clear-line, and 2 lines up (2 topics)
    final = text.rsplit("\x1b[2F", 1)[-1]
    assert "top.binance.BTCUSDT" in final and "top.binance.ETHUSDT" in final


@pytest.mark.anyio
async def test_tail_bad_address_exits_2():
    assert await tail("not-an-endpoint", [], out=io.StringIO()) == 2


def test_tail_json_limit_in_subprocess():
    n = 7
    code = (
        "import anyio, sys; from spiceflow_core.broadcast.tail import tail; "
        f"sys.exit(anyio.run(lambda: tail(sys.argv[1], ['book.binance.'], as_json=True, limit={n})))"
    )
    with Publisher(ANY_PORT) as pub:
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.Popen(
            [sys.executable, "-c", code, pub.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
        )
        deadline = time.monotonic() + 30
        try:
            # Publish until the subprocess has had its N messages and exits.
            while proc.poll() is None and time.monotonic() < deadline:
                pub.publish(
                    BookMessage(
                        venue="binance",
                        symbol="BTCUSDT",
                        sequence=42,
                        bids=[("43250.10", "1.234")],
                        asks=[("43250.20", "0.500")],
                    )
                )
                pub.publish(
                    BookMessage(venue="deribit", symbol="BTC-PERPETUAL", sequence=1, bids=[], asks=[])
                )  # filtered out
                time.sleep(0.002)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == n
    docs = [json.loads(line) for line in lines]
    assert list(docs[0])[:2] == ["topic", "type"]
    assert {d["topic"] for d in docs} == {"book.binance.BTCUSDT"}
    assert {d["type"] for d in docs} == {"book"}
    assert docs[0]["bids"] == [["43250.10", "1.234"]] and docs[0]["sequence"] == 42
    seqs = [d["topic_seq"] for d in docs]
    assert seqs == sorted(seqs) and len(set(seqs)) == n


def test_multi_body_frames_and_bad_body_inside_a_batch(raw_pub):
    with SyncSubscriber(endpoint(raw_pub), ["top."]) as sub:
        warm_up_raw(raw_pub, sub)
        raw_pub.send_multipart(
            [
                b"top.binance.A",
                encoder.encode(top("A", 1)),
                b"\xc1",
                encoder.encode(top("A", 4)),
                encoder.encode(top("A", 5)),
            ]
        )
        got = drain_until(sub, "top.binance.A", 5)
    assert [(r.message.topic_seq, r.missed) for r in got] == [(1, 0), (4, 2), (5, 0)]
    assert sub.malformed == 1 and sub.missed_total == 2
