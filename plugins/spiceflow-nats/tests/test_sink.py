"""The sink against a real nats-server: exact bodies on the right subjects in order, a
full buffer counts drops (seen by consumers as topic_seq gaps), an outage is survived,
and with JetStream a late joiner gets the last book of every instrument."""

from __future__ import annotations

import anyio
import nats
import pytest
from nats.js.api import DeliverPolicy, StorageType
from nats_testing import Wire, collecting, offer, running, wait_for
from spiceflow_nats.config import NatsOptions
from spiceflow_nats.sink import NatsSink

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.broadcast.wire import BookMessage, decoder
from spiceflow_core.cluster.nats_server import NatsServer

pytestmark = pytest.mark.anyio


def _sink(server: NatsServer, **options: object) -> NatsSink:
    return NatsSink(NatsOptions(servers=[server.url], reconnect_wait=0.1, **options))  # type: ignore[arg-type]


async def test_every_message_reaches_its_subject_with_the_exact_body_in_order(nats_server, wire: Wire):
    messages = []
    for i in range(50):
        messages.append(wire.book("BTCUSDT", bid=f"100.{i}"))
        messages.append(wire.book("ETH.USD"))  # a '.' in the symbol stays inside one token
        if i % 10 == 0:
            messages.append(wire.trade("BTCUSDT"))
            messages.append(wire.status())  # status.toy.*: a wildcard character in the symbol
    async with collecting(nats_server.url) as got:
        async with running(_sink(nats_server)) as sink:
            offer(sink, messages[:30])
            await wait_for(lambda: len(got.got) >= 30)
            offer(sink, messages[30:])  # a second batch, after the first was flushed
            await wait_for(lambda: len(got.got) == len(messages))
            assert sink.stats.written == len(messages) and sink.stats.dropped == 0
    assert got.got == [
        (topic.replace("ETH.USD", "ETH%2EUSD").replace(".*", ".%2A"), body) for topic, body, _ in messages
    ]
    assert got.seqs("book.toy.BTCUSDT") == list(range(1, 51))
    assert got.seqs("book.toy.ETH%2EUSD") == list(range(1, 51))
    assert got.seqs("trade.toy.BTCUSDT") == [1, 2, 3, 4, 5]


async def test_the_subject_prefix_goes_in_front_of_every_topic(nats_server, wire: Wire):
    message = wire.book("BTCUSDT")
    async with collecting(nats_server.url) as got, running(_sink(nats_server, subject_prefix="md.eu")) as sink:
        offer(sink, [message])
        await wait_for(lambda: got.got)
    assert got.got == [("md.eu.book.toy.BTCUSDT", message[1])]


async def test_a_full_buffer_counts_drops_that_consumers_see_as_a_gap(nats_server, wire: Wire):
    sink = _sink(nats_server, capacity=10)
    first = [wire.book("BTCUSDT") for _ in range(25)]  # topic_seq 1..25
    offer(sink, first)  # the sink's task is not running yet: the buffer fills up
    assert (sink.stats.offered, sink.stats.dropped, sink.current_stats().buffered) == (25, 15, 10)
    async with Subscriber(nats_server.url, ["book.toy."]) as sub, running(sink):
        got = [await sub.receive() for _ in range(10)]
        assert [r.message.topic_seq for r in got] == list(range(1, 11))
        assert all(r.missed == 0 for r in got)
        offer(sink, [wire.book("BTCUSDT")])  # topic_seq 26: 15 were dropped before it
        late = await sub.receive()
    assert (late.message.topic_seq, late.missed) == (26, 15)
    assert sub.missed_total == 15
    assert (sink.stats.written, sink.stats.dropped) == (11, 15)


async def test_the_server_going_away_and_coming_back_is_survived(nats_server, wire: Wire):
    # trades land in a file-backed JetStream stream: what the server stored across the
    # outage is read back afterwards, independently of any live subscriber's timing
    sink = _sink(nats_server, jetstream=True, trades_max_bytes=1 << 20)
    before = [wire.trade("BTCUSDT") for _ in range(20)]
    during = [wire.trade("BTCUSDT") for _ in range(20)]
    after = [wire.trade("BTCUSDT") for _ in range(20)]
    async with running(sink):
        offer(sink, before)
        await wait_for(lambda: sink.stats.written == 20)
        await nats_server.stop(kill=True)
        await wait_for(lambda: sink._nc is not None and not sink._nc.is_connected)
        offer(sink, during)  # held while NATS is away
        await anyio.sleep(0.3)
        assert sink.stats.written == 20 and sink.current_stats().dropped == 0
        await nats_server.start()  # same port, same store
        await wait_for(lambda: sink.stats.written == 40)
        async with collecting(nats_server.url, "trade.>") as live:
            offer(sink, after)
            await wait_for(lambda: len(live.got) == 20)
        assert live.got == [("trade.toy.BTCUSDT", body) for _, body, _ in after]
    assert (sink.stats.written, sink.stats.dropped) == (60, 0)

    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        stored = await js.subscribe("trade.>", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
        bodies = [(await stored.next_msg(timeout=5)).data for _ in range(60)]
    finally:
        await nc.close()
    assert bodies == [body for _, body, _ in before + during + after]
    assert [decoder.decode(b).topic_seq for b in bodies] == list(range(1, 61))


async def test_jetstream_keeps_the_last_book_of_each_instrument_for_a_late_joiner(nats_server, wire: Wire):
    sink = _sink(nats_server, jetstream=True, trades_max_age=3600.0, trades_max_bytes=1 << 20)
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    history = [wire.book(symbol, bid=f"10{i}.0") for i in range(5) for symbol in symbols]
    async with running(sink):
        offer(sink, [*history, wire.trade("BTCUSDT")])
        await wait_for(lambda: sink.stats.written == len(history) + 1)
        nc = await nats.connect(nats_server.url)
        try:
            books = await nc.jetstream().stream_info("SPICEFLOW_BOOKS")
            trades = await nc.jetstream().stream_info("SPICEFLOW_TRADES")
        finally:
            await nc.close()
        assert books.config.subjects == ["book.>"] and books.config.max_msgs_per_subject == 1
        assert books.config.storage == StorageType.MEMORY
        assert books.state.messages == 3  # one per instrument
        assert trades.config.subjects == ["trade.>"]
        assert (trades.config.max_age, trades.config.max_bytes) == (3600.0, 1 << 20)
        assert trades.state.messages == 1

        async with Subscriber(nats_server.url + "?deliver=last", ["book."]) as late:
            first = [await late.receive() for _ in symbols]
            assert {r.topic: r.message.topic_seq for r in first} == {f"book.toy.{s}": 5 for s in symbols}
            assert all(isinstance(r.message, BookMessage) and r.message.bids[0][0] == "104.0" for r in first)
            offer(sink, [wire.book("ETHUSDT", bid="105.0")])  # then live, no gap
            live = await late.receive()
    assert (live.topic, live.message.topic_seq, live.missed) == ("book.toy.ETHUSDT", 6, 0)


async def test_streams_are_updated_when_their_limits_change(nats_server, wire: Wire):
    async with running(_sink(nats_server, jetstream=True, trades_max_bytes=1 << 20)) as sink:
        offer(sink, [wire.trade("BTCUSDT")])
        await wait_for(lambda: sink.stats.written == 1)
    async with running(_sink(nats_server, jetstream=True, trades_max_bytes=2 << 20, trades_max_age=60.0)) as sink:
        offer(sink, [wire.trade("BTCUSDT")])
        await wait_for(lambda: sink.stats.written == 1)
        assert sink.stats.errors == 0
    nc = await nats.connect(nats_server.url)
    try:
        trades = await nc.jetstream().stream_info("SPICEFLOW_TRADES")
    finally:
        await nc.close()
    assert (trades.config.max_bytes, trades.config.max_age) == (2 << 20, 60.0)
    assert trades.state.messages == 2  # updated in place: what it held stays


async def test_a_sink_started_before_its_server_waits_for_it(wire: Wire):
    server = NatsServer()  # port chosen, not started
    sink = _sink(server)
    message = wire.book("BTCUSDT")
    try:
        async with running(sink):
            offer(sink, [message])
            await anyio.sleep(0.3)
            assert sink.stats.written == 0 and "Connect" in sink.stats.last_error
            await server.start()
            async with collecting(server.url) as got:
                # the first message was written (or not) before this subscriber existed:
                # what matters is that the sink connected and goes on
                await wait_for(lambda: sink.stats.written == 1)
                offer(sink, [wire.book("BTCUSDT")])
                await wait_for(lambda: 2 in got.seqs("book.toy.BTCUSDT"))
            assert got.seqs("book.toy.BTCUSDT") in ([2], [1, 2])
    finally:
        await server.aclose()


async def test_without_jetstream_on_the_server_the_sink_still_publishes(wire: Wire):
    async with NatsServer(jetstream=False) as server:
        sink = _sink(server, jetstream=True)
        async with collecting(server.url, "book.>") as got, running(sink):
            offer(sink, [wire.book("BTCUSDT")])
            await wait_for(lambda: got.got)
            assert sink.stats.errors >= 1 and "jetstream" in sink.stats.last_error
