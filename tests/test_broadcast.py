"""Publisher <-> Subscriber over real tcp loopback sockets (random ports)."""

from __future__ import annotations

import threading
import time

import anyio
import psutil
import pytest
import zmq

from spiceflow_core.broadcast.publisher import FlushedRun, Publisher, _on_event_loop
from spiceflow_core.broadcast.subscriber import Subscriber, SyncSubscriber
from spiceflow_core.broadcast.wire import BookLevel, BookMessage, StatusMessage, TopMessage, TradeMessage, decoder
from spiceflow_core.model import BookSnapshot

ANY_PORT = "tcp://127.0.0.1:*"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # zmq.asyncio needs an asyncio loop


def book(symbol: str = "BTCUSDT", venue: str = "binance", levels: int = 25, seq: int = 1) -> BookMessage:
    # decoded levels are BookLevel structs; build them so round trips compare equal
    bids = [BookLevel(f"{43250 - i}.10", f"{i + 1}.500") for i in range(levels)]
    asks = [BookLevel(f"{43250 + i}.20", f"0.{i + 1:03d}") for i in range(levels)]
    return BookMessage(venue=venue, symbol=symbol, sequence=seq, bids=bids, asks=asks, exchange_ts_ms=1)


def warm(venue: str = "binance") -> StatusMessage:
    return StatusMessage(venue=venue, symbol="WARMUP", state="stats")


def warm_book(venue: str = "binance") -> BookMessage:
    return book(symbol="WARMUP", venue=venue, levels=1)


async def warm_up(pub: Publisher, sub: Subscriber, make=warm, deadline_s: float = 10.0) -> None:
    """Publish until the subscriber sees one message: beats ZeroMQ's slow joiner
    without a fixed sleep. Warm-up messages use topic symbol WARMUP; callers skip it."""
    with anyio.fail_after(deadline_s):
        while True:
            pub.publish(make())
            with anyio.move_on_after(0.01):
                await sub.receive()
                return


def warm_up_sync(pub: Publisher, sub: SyncSubscriber, make=warm, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        pub.publish(make())
        if sub.receive(timeout_ms=10) is not None:
            return
    raise TimeoutError("subscriber never received a warm-up message")


async def collect(sub: Subscriber, n: int, skip: str = "WARMUP", timeout: float = 10.0):
    got = []
    with anyio.fail_after(timeout):
        while len(got) < n:
            r = await sub.receive()
            if not r.topic.endswith(skip):
                got.append(r)
    return got


# -- publisher alone -----------------------------------------------------------------


def test_wildcard_and_port_zero_resolve_to_real_endpoint():
    for address in (ANY_PORT, "tcp://127.0.0.1:0"):
        with Publisher(address) as pub:
            host, port = pub.address.rsplit(":", 1)
            assert host == "tcp://127.0.0.1"
            assert int(port) > 0


def test_bind_conflict_names_the_address():
    with Publisher(ANY_PORT) as pub, pytest.raises(OSError, match=pub.address):
        Publisher(pub.address)


def test_publish_stamps_per_topic_seq_and_timestamp():
    with Publisher(ANY_PORT) as pub:
        before = time.time_ns()
        msgs = [
            book("BTCUSDT"),
            book("ETHUSDT"),
            book("BTCUSDT"),
            TopMessage(venue="binance", symbol="BTCUSDT", bid_price="1", bid_size="2", ask_price="3", ask_size="4"),
        ]
        # No subscriber: PUB accepts and discards, still never blocks.
        assert all(pub.publish(m) for m in msgs)
        assert [m.topic_seq for m in msgs] == [1, 1, 2, 1]
        assert all(before <= m.publish_ts_ns <= time.time_ns() for m in msgs)
        counts = pub.topic_counts
        assert counts["book.binance.BTCUSDT"].seq == 2
        assert counts["book.binance.ETHUSDT"].seq == 1
        assert counts["top.binance.BTCUSDT"].seq == 1
        assert pub.published == 4 and pub.dropped == 0


def test_publish_rejects_non_wire_messages_and_closed_publisher():
    pub = Publisher(ANY_PORT)
    with pytest.raises(TypeError):
        pub.publish(BookSnapshot(venue="binance", symbol="X", sequence=1, bids=[], asks=[]))  # type: ignore[arg-type]
    pub.close()
    pub.close()  # idempotent
    with pytest.raises(RuntimeError):
        pub.publish(book())


# -- publisher + subscriber ----------------------------------------------------------


@pytest.mark.anyio
async def test_round_trip_of_every_message_type():
    with Publisher(ANY_PORT) as pub:
        async with Subscriber(pub.address, [""]) as sub:
            await warm_up(pub, sub)
            sent = [
                book(),
                TradeMessage(
                    venue="binance",
                    symbol="BTCUSDT",
                    trade_id="7",
                    price="43250.10",
                    size="0.001",
                    side="buy",
                    exchange_ts_ms=5,
                ),
                TopMessage(
                    venue="deribit",
                    symbol="BTC-PERPETUAL",
                    bid_price="43250.5",
                    bid_size="1000",
                    ask_price=None,
                    ask_size=None,
                    sequence=9,
                ),
                StatusMessage(venue="binance", symbol="BTCUSDT", state="resyncing", reason="gap", counters={"gaps": 1}),
            ]
            for m in sent:
                assert pub.publish(m)
            got = await collect(sub, len(sent))
    assert [r.topic for r in got] == [
        "book.binance.BTCUSDT",
        "trade.binance.BTCUSDT",
        "top.deribit.BTC-PERPETUAL",
        "status.binance.BTCUSDT",
    ]
    assert [r.message for r in got] == sent  # exact strings, stamps included
    assert [r.missed for r in got] == [0, 0, 0, 0]
    assert sub.missed_total == 0


@pytest.mark.anyio
async def test_prefix_filtering():
    with Publisher(ANY_PORT) as pub:
        async with Subscriber(pub.address, ["book.binance.", "trade.deribit.BTC"]) as sub:
            await warm_up(pub, sub, make=warm_book)
            pub.publish(book("BTCUSDT", "deribit"))  # other venue
            pub.publish(TradeMessage(venue="binance", symbol="BTCUSDT", trade_id="1", price="1", size="1"))
            pub.publish(TradeMessage(venue="deribit", symbol="ETH-PERPETUAL", trade_id="2", price="1", size="1"))
            pub.publish(book("ETHUSDT", "binance"))
            pub.publish(TradeMessage(venue="deribit", symbol="BTC-PERPETUAL", trade_id="3", price="1", size="1"))
            pub.publish(book("BTCUSDT", "binance"))
            got = await collect(sub, 3)
    # Order is preserved on one connection, so anything that leaked through the
    # filter would have shown up before the last expected message.
    assert [r.topic for r in got] == ["book.binance.ETHUSDT", "trade.deribit.BTC-PERPETUAL", "book.binance.BTCUSDT"]


@pytest.mark.anyio
async def test_missed_from_rcvhwm_overflow():
    """A subscriber with a tiny RCVHWM that is not read for a while loses messages;
    the loss shows up as ``missed`` computed from topic_seq gaps, and it adds up."""
    n = 20_000
    with Publisher(ANY_PORT, hwm=100) as pub:
        async with Subscriber(pub.address, ["book.binance."], rcvhwm=100) as sub:
            await warm_up(pub, sub, make=warm_book)
            for i in range(n):  # not reading meanwhile
                pub.publish(book(seq=i, levels=5))
            assert pub.dropped == 0  # PUB drops per subscriber, silently (see broadcast.py)
            seqs, missed = [], 0
            with anyio.fail_after(20):
                while not seqs or seqs[-1] <= n:
                    r = None
                    with anyio.move_on_after(0.02):
                        r = await sub.receive()
                    if r is None:
                        # The tail of the burst was dropped; one more message after
                        # the gap makes the loss visible.
                        pub.publish(book(levels=5))
                        continue
                    if not r.topic.endswith("WARMUP"):
                        seqs.append(r.message.topic_seq)
                        missed += r.missed
    assert seqs == sorted(seqs)
    assert missed > 0, "expected HWM drops with RCVHWM=100 and 20k unread messages"
    assert len(seqs) + missed == seqs[-1] - seqs[0] + 1
    assert sub.missed_total == missed


def test_stuck_consumer_never_blocks_publisher_and_memory_stays_bounded():
    """200k 25-level book messages (~1.3 kB each, ~260 MB if queued without bound) to a
    subscriber that never reads: publish() stays fast and RSS stays small, because
    PUB discards at SNDHWM. The consumer then sees the loss as a topic_seq gap."""
    n = 200_000
    proc = psutil.Process()
    with (
        Publisher(ANY_PORT, hwm=1_000) as pub,
        SyncSubscriber(pub.address, ["book.binance.BTCUSDT", "status."], rcvhwm=1_000) as sub,
    ):
        warm_up_sync(pub, sub)
        rss_before = proc.memory_info().rss
        msg = book()
        t0 = time.perf_counter()
        slowest = 0.0
        for _ in range(n):
            s = time.perf_counter()
            assert pub.publish(msg)
            slowest = max(slowest, time.perf_counter() - s)
        elapsed = time.perf_counter() - t0
        rss_growth = proc.memory_info().rss - rss_before

        # Generous bounds (the real figures are ~1-3 s and a few MB); a blocking or
        # unbounded publisher would hang or grow by ~260 MB.
        assert elapsed < 30, elapsed
        assert slowest < 1.0, slowest
        assert rss_growth < 64 * 2**20, rss_growth
        assert pub.topic_counts["book.binance.BTCUSDT"].seq == n and pub.published >= n

        # Now read: buffered messages, then a gap, then the next message published.
        received = missed = 0
        last = 0
        deadline = time.monotonic() + 20
        while last <= n and time.monotonic() < deadline:
            r = sub.receive(timeout_ms=20)
            if r is None:
                pub.publish(msg)  # keep a message after the gap coming
                continue
            if r.topic != "book.binance.BTCUSDT":
                continue
            received += 1
            missed += r.missed
            last = r.message.topic_seq
    assert last > n
    assert missed > 100_000  # most of the 200k were dropped for the stuck consumer
    assert received + missed == last  # the very first one (seq 1) counted too
    assert sub.missed_total == missed


@pytest.mark.anyio
async def test_publish_many_batches_by_topic_and_keeps_sequence():
    with Publisher(ANY_PORT) as pub:
        async with Subscriber(pub.address, ["book."]) as sub:
            await warm_up(pub, sub, make=warm_book)
            pub.publish(book("BTCUSDT"))  # seq 1 via publish()
            batch = [book("BTCUSDT", seq=i) for i in range(100)]  # > MAX_BODIES: 2 messages
            batch += [book("ETHUSDT"), book("ETHUSDT"), book("BTCUSDT", seq=100)]
            assert pub.publish_many(batch) == len(batch)
            assert pub.publish_many([]) == 0
            pub.publish(book("ETHUSDT"))
            got = await collect(sub, 1 + len(batch) + 1)
    btc = [r.message.topic_seq for r in got if r.topic == "book.binance.BTCUSDT"]
    eth = [r.message.topic_seq for r in got if r.topic == "book.binance.ETHUSDT"]
    assert btc == list(range(1, 103)) and eth == [1, 2, 3]
    assert [r.message.sequence for r in got[1:101]] == list(range(100))
    assert all(r.missed == 0 for r in got) and sub.missed_total == 0
    assert pub.published >= 1 + len(batch) + 1


def _raw_sub(address: str) -> tuple[zmq.Context, zmq.Socket]:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(address)
    return ctx, sock


def _raw_messages(sock: zmq.Socket, quiet_ms: int = 300) -> list[list[bytes]]:
    """Every ZeroMQ message until ``quiet_ms`` pass without one."""
    out = []
    while sock.poll(quiet_ms):
        out.append(sock.recv_multipart())
    return out


def test_staged_messages_wait_for_flush_and_keep_their_order_one_zmq_message_per_run():
    with Publisher(ANY_PORT) as pub:
        ctx, sock = _raw_sub(pub.address)
        try:
            deadline = time.monotonic() + 10
            while not sock.poll(20):  # the subscription is live once a message gets through
                assert time.monotonic() < deadline
                pub.publish(warm())
            _raw_messages(sock, 100)
            for symbol in ("BTCUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT", "BTCUSDT"):
                pub.stage(book(symbol))
            assert _raw_messages(sock, 200) == []  # nothing leaves before the flush
            runs = pub.flush()
            got = _raw_messages(sock)
        finally:
            sock.close(0)
            ctx.term()
    # runs of one topic share a ZeroMQ message; the order across topics is kept
    assert [(m[0].decode(), len(m) - 1) for m in got] == [
        ("book.binance.BTCUSDT", 2),
        ("book.binance.ETHUSDT", 1),
        ("book.binance.BTCUSDT", 2),
    ]
    seqs = [decoder.decode(body).topic_seq for m in got for body in m[1:]]
    assert seqs == [1, 2, 1, 3, 4]
    # flush reports each run: books carry a receive stamp, nothing was refused
    assert runs == [
        FlushedRun("binance", "BTCUSDT", received=True, sent=2, refused=0),
        FlushedRun("binance", "ETHUSDT", received=True, sent=1, refused=0),
        FlushedRun("binance", "BTCUSDT", received=True, sent=2, refused=0),
    ]
    assert pub.dropped == 0


def test_broadcast_actor_publishes_a_staged_block_at_its_end_and_offers_each_message_to_the_sinks():
    from spiceflow_core.broadcast.actor import BroadcastActor
    from spiceflow_core.runtime.metrics import Metrics
    from spiceflow_core.sinks.contract import Sink

    class Recording(Sink):
        def __init__(self) -> None:
            super().__init__("recording")
            self.offered: list[tuple[str, int]] = []

        def offer(self, topic, body, message) -> None:
            self.offered.append((topic, decoder.decode(body).topic_seq))

    sink = Recording()
    actor = BroadcastActor(ANY_PORT, hwm=1000, status_interval=60, sinks=[sink])
    actor.metrics["binance"] = metrics = Metrics("binance")
    ctx, sock = _raw_sub(actor.address)
    try:
        deadline = time.monotonic() + 10
        while not sock.poll(20):
            assert time.monotonic() < deadline
            actor.publish(warm())
        _raw_messages(sock, 100)
        sink.offered.clear()
        warm_ups = metrics.totals["published"]
        with actor.staged():
            actor.publish(book("BTCUSDT"))
            with actor.staged():  # blocks nest: only the outermost one flushes
                actor.publish(book("BTCUSDT"))
            assert _raw_messages(sock, 200) == []
            actor.publish(book("ETHUSDT"))
        got = _raw_messages(sock)
        actor.publish(book("ETHUSDT"))  # outside a block: at once
        after = _raw_messages(sock)
    finally:
        sock.close(0)
        ctx.term()
        actor.close()
    assert [(m[0].decode(), len(m) - 1) for m in got] == [("book.binance.BTCUSDT", 2), ("book.binance.ETHUSDT", 1)]
    assert [(m[0].decode(), len(m) - 1) for m in after] == [("book.binance.ETHUSDT", 1)]
    # the sinks get every message as it is published, encoded once, topic_seq stamped
    assert sink.offered == [
        ("book.binance.BTCUSDT", 1),
        ("book.binance.BTCUSDT", 2),
        ("book.binance.ETHUSDT", 1),
        ("book.binance.ETHUSDT", 2),
    ]
    assert metrics.totals["published"] - warm_ups == 4 and metrics.totals["publish_drops"] == 0


def test_a_staged_block_counts_its_messages_and_their_latency_from_the_reads_stamp():
    from spiceflow_core.broadcast.actor import BroadcastActor
    from spiceflow_core.runtime.metrics import Metrics

    actor = BroadcastActor(ANY_PORT, hwm=1000, status_interval=60)
    actor.metrics["binance"] = metrics = Metrics("binance")
    try:
        recv = time.time_ns() - 2_000_000  # the read came in 2 ms ago
        with actor.staged(recv):
            for symbol in ("BTCUSDT", "BTCUSDT", "ETHUSDT"):
                message = book(symbol)
                message.recv_ts_ns = recv
                actor.publish(message)
            actor.publish_status("binance", "BTCUSDT", "synced")  # carries no receive stamp
            assert metrics.totals["published"] == 0  # counted when the block ends
        flushed_by = time.time_ns()
    finally:
        actor.close()
    assert metrics.totals["published"] == 4
    assert metrics.by_instrument["BTCUSDT"]["published"] == 3 and metrics.by_instrument["ETHUSDT"]["published"] == 1
    # one latency per book message (the status message has none), from the read's stamp
    # to the moment the block sent them
    assert sum(metrics.latency_histogram.counts) == 3 and len(metrics.latency.samples) == 3
    assert all(2_000_000 <= ns <= flushed_by - recv for ns in metrics.latency.samples)


# -- closing without blocking the event loop -------------------------------------------


class _Consumer(threading.Thread):
    """A raw SUB socket reading as fast as it can (from ``start_reading`` on), counting
    the book messages of one topic. RCVHWM is small, so a burst backs up in the
    publisher's queue instead of being absorbed by this side's I/O thread."""

    def __init__(self, address: str, topic: bytes = b"book.binance.BTCUSDT", rcvhwm: int = 100) -> None:
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(address)
        self.topic = topic
        self.seqs: list[int] = []
        self.joined = threading.Event()  # a warm-up message arrived: the subscription is live
        self.start_reading = threading.Event()
        self.expected: int | None = None  # stop after this many, else after 1 s of silence

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self.joined.is_set():
            if poller.poll(10):
                self.sock.recv_multipart()
                self.joined.set()
        self.start_reading.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (self.expected is None or len(self.seqs) < self.expected):
            if not poller.poll(1000):
                break
            topic, body = self.sock.recv_multipart()
            if topic == self.topic:
                self.seqs.append(decoder.decode(body).topic_seq)
        self.sock.close(linger=0)
        self.ctx.term()


def _join(pub: Publisher, consumer: _Consumer) -> None:
    deadline = time.monotonic() + 10
    while not consumer.joined.is_set():
        assert time.monotonic() < deadline, "the consumer never joined"
        pub.publish(warm())
        time.sleep(0.005)


@pytest.mark.anyio
async def test_aclose_with_a_stuck_consumer_keeps_the_event_loop_running():
    """A consumer that stopped reading leaves a backlog that can never drain, so the
    linger runs out in full: the other task keeps running meanwhile (with a close
    that waited on the loop it could not tick at all)."""
    pub = Publisher(ANY_PORT, hwm=1_000_000)
    with SyncSubscriber(pub.address, ["book.binance.BTCUSDT", "status."], rcvhwm=10) as sub:
        warm_up_sync(pub, sub)
        msg = book()
        for _ in range(20_000):  # ~26 MB, far beyond the socket buffers
            assert pub.publish(msg)
        ticks = 0
        stop = anyio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await anyio.sleep(0.001)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            await anyio.sleep(0)
            before = ticks
            await pub.aclose(linger_ms=300)
            during = ticks - before
            stop.set()
    assert pub.closed
    assert during > 0
    await pub.aclose()  # idempotent
    pub.close()


# 50k 25-level books are ~65 MB: more than the kernel's socket buffers can take, so
# most of the burst is still in the publisher's queue when the close starts
BURST = 50_000


def _burst(pub: Publisher, consumer: _Consumer) -> None:
    """Publish BURST messages while the consumer is not reading yet; it starts reading
    once this returns, i.e. while the close is in progress."""
    msg = book()
    for _ in range(BURST):
        assert pub.publish(msg)
    consumer.start_reading.set()


@pytest.mark.anyio
async def test_aclose_delivers_what_was_queued_for_a_connected_consumer():
    pub = Publisher(ANY_PORT, hwm=1_000_000)
    consumer = _Consumer(pub.address)
    consumer.start()
    _join(pub, consumer)
    consumer.expected = BURST
    _burst(pub, consumer)
    await pub.aclose(linger_ms=30_000)  # returns as soon as everything is out
    consumer.join(30)
    assert consumer.seqs == list(range(1, BURST + 1))


@pytest.mark.anyio
async def test_sync_close_on_the_event_loop_does_not_wait_for_the_backlog():
    """``close()`` called on the loop uses linger 0: what is still queued is discarded
    instead of being waited for (``aclose`` is the close that keeps it)."""
    pub = Publisher(ANY_PORT, hwm=1_000_000)
    consumer = _Consumer(pub.address)
    consumer.start()
    _join(pub, consumer)
    _burst(pub, consumer)
    pub.close()
    consumer.join(30)
    assert len(consumer.seqs) < BURST
    assert consumer.seqs == list(range(1, len(consumer.seqs) + 1))  # a prefix: the tail was dropped


@pytest.mark.anyio
async def test_close_lingers_only_off_the_event_loop():
    """The rule behind ``close()``'s default linger: 0 on the loop's thread, the full
    linger in a worker thread or a plain script (``spiceflow replay`` relies on it)."""
    assert _on_event_loop()
    assert not await anyio.to_thread.run_sync(_on_event_loop)


def test_a_plain_script_is_not_on_an_event_loop():
    assert not _on_event_loop()
