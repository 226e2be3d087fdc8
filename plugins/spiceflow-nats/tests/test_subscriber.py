"""The consumer side speaking NATS: the core's Subscriber / SyncSubscriber and
`spiceflow tail` with a nats:// address -- same prefixes, same decoding, same gap
detection as over ZeroMQ."""

from __future__ import annotations

import json
import subprocess
import sys

import anyio
import pytest
from nats_testing import Wire, offer, running, wait_for
from spiceflow_nats.config import NatsOptions
from spiceflow_nats.sink import NatsSink

from spiceflow_core.broadcast.sources import SourceError
from spiceflow_core.broadcast.subscriber import Subscriber, SyncSubscriber
from spiceflow_core.broadcast.wire import BookMessage, StatusMessage, TradeMessage, decoder
from spiceflow_core.cluster.nats_server import NatsServer
from spiceflow_core.ports import free_port

pytestmark = pytest.mark.anyio
SPICEFLOW = [sys.executable, "-m", "spiceflow_core.cli.main"]


def _sink(server: NatsServer, **options: object) -> NatsSink:
    return NatsSink(NatsOptions(servers=[server.url], reconnect_wait=0.1, **options))  # type: ignore[arg-type]


async def test_subscriber_decodes_messages_and_detects_a_topic_seq_gap(nats_server, wire: Wire):
    messages = [wire.book("BTCUSDT") for _ in range(4)]  # topic_seq 1..4
    lost = messages.pop(2)  # topic_seq 3 never reaches NATS
    async with Subscriber(nats_server.url, ["book."]) as sub, running(_sink(nats_server)) as sink:
        offer(sink, messages)
        got = [await sub.receive() for _ in range(3)]
    assert [r.message for r in got] == [decoder.decode(body) for _, body, _ in messages]
    assert [(r.topic, r.message.topic_seq, r.missed) for r in got] == [
        ("book.toy.BTCUSDT", 1, 0),
        ("book.toy.BTCUSDT", 2, 0),
        ("book.toy.BTCUSDT", 4, 1),
    ]
    assert isinstance(got[0].message, BookMessage) and tuple(got[0].message.bids[0]) == ("100.5", "1.25")
    assert (sub.received, sub.missed_total, sub.malformed) == (3, 1, 0)
    assert lost[2].topic_seq == 3


async def test_topic_prefixes_mean_what_they_mean_over_zeromq(nats_server, wire: Wire):
    messages = [
        wire.book("BTCUSDT"),
        wire.book("BTCUSDT_PERP"),
        wire.book("ETHUSDT"),
        wire.book("BTCUSDT", venue="other"),
        wire.trade("BTCUSDT"),
        wire.status(),  # status.toy.*
    ]
    async with running(_sink(nats_server)) as sink:
        # a prefix ending inside a token, a whole channel, and overlapping prefixes
        # (a message matching two of them is still delivered once)
        async with (
            Subscriber(nats_server.url, ["book.toy.BTC", "status.", "status.toy."]) as sub,
            Subscriber(nats_server.url, [""]) as everything,
        ):
            offer(sink, messages)
            offer(sink, [wire.book("SOLUSDT")])  # then a marker: nothing else is in flight
            picked = [await sub.receive() for _ in range(3)]
            everything_got = [await everything.receive() for _ in range(7)]
            with anyio.move_on_after(0.2):
                extra = await sub.receive()
                pytest.fail(f"unexpected {extra.topic}")
    assert [r.topic for r in picked] == ["book.toy.BTCUSDT", "book.toy.BTCUSDT_PERP", "status.toy.*"]
    assert isinstance(picked[2].message, StatusMessage) and picked[2].message.symbol == "*"
    assert [r.topic for r in everything_got] == [topic for topic, _, _ in messages] + ["book.toy.SOLUSDT"]
    assert isinstance(everything_got[4].message, TradeMessage)


async def test_sync_subscriber_reads_nats_too(nats_server, wire: Wire):
    messages = [wire.book("BTCUSDT"), wire.book("BTCUSDT"), wire.book("BTCUSDT")]
    del messages[1]
    with SyncSubscriber(nats_server.url, ["book.toy."]) as sub:
        assert sub.receive(timeout_ms=50) is None  # nothing yet: the timeout is honoured
        async with running(_sink(nats_server)) as sink:
            offer(sink, messages)
            await wait_for(lambda: sink.stats.written == 2)
        got = [sub.receive(timeout_ms=5000) for _ in range(2)]
    assert [(r.message.topic_seq, r.missed) for r in got if r is not None] == [(1, 0), (3, 1)]


async def test_the_subject_prefix_is_given_in_the_address(nats_server, wire: Wire):
    async with (
        Subscriber(nats_server.url + "?prefix=md", ["book."]) as sub,
        running(_sink(nats_server, subject_prefix="md")) as sink,
    ):
        offer(sink, [wire.book("BTCUSDT")])
        got = await sub.receive()
    assert got.topic == "book.toy.BTCUSDT"


async def test_deliver_last_covers_books_from_the_stream_and_the_rest_live(nats_server, wire: Wire):
    async with running(_sink(nats_server, jetstream=True, trades_max_bytes=1 << 20)) as sink:
        offer(sink, [wire.book("BTCUSDT"), wire.book("BTCUSDT"), wire.trade("BTCUSDT")])
        await wait_for(lambda: sink.stats.written == 3)
        async with Subscriber(nats_server.url + "?deliver=last", [""]) as sub:
            first = await sub.receive()  # the stored book; the stored trade is not replayed
            assert (first.topic, first.message.topic_seq) == ("book.toy.BTCUSDT", 2)
            offer(sink, [wire.trade("BTCUSDT"), wire.book("BTCUSDT")])
            live = [await sub.receive() for _ in range(2)]
            with anyio.move_on_after(0.2):
                extra = await sub.receive()
                pytest.fail(f"delivered twice: {extra.topic} {extra.message.topic_seq}")
    assert sorted((r.topic, r.message.topic_seq, r.missed) for r in live) == [
        ("book.toy.BTCUSDT", 3, 0),
        ("trade.toy.BTCUSDT", 2, 0),
    ]


async def test_opening_fails_clearly(nats_server):
    with pytest.raises(SourceError, match="cannot connect"):
        async with Subscriber(f"nats://127.0.0.1:{free_port()}"):
            pass
    with pytest.raises(SourceError, match="unknown option"):
        async with Subscriber(nats_server.url + "?prefx=md"):
            pass
    with pytest.raises(SourceError, match="needs the sink's jetstream"):
        async with Subscriber(nats_server.url + "?deliver=last", ["book."]):
            pass
    with pytest.raises(SourceError, match="no installed subscriber plugin for foo://"):
        Subscriber("foo://somewhere")
    with pytest.raises(RuntimeError, match="aopen"):
        Subscriber(nats_server.url).open()  # connecting to NATS is async


async def test_spiceflow_tail_prints_messages_from_a_nats_address(nats_server, wire: Wire):
    async with running(_sink(nats_server)) as sink:
        result: dict[str, subprocess.CompletedProcess[str]] = {}

        async def tail() -> None:
            cmd = [*SPICEFLOW, "tail", nats_server.url, "book.toy.", "--json", "--limit", "5"]
            result["tail"] = await anyio.run_process(cmd, check=False)

        async with anyio.create_task_group() as tg:
            tg.start_soon(tail)
            # publish until the tail (a separate process, connecting at its own pace)
            # has its five messages
            with anyio.fail_after(30):
                while "tail" not in result:
                    offer(sink, [wire.book("BTCUSDT"), wire.trade("BTCUSDT")])
                    await anyio.sleep(0.05)
    done = result["tail"]
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(lines) == 5
    assert all(line["topic"] == "book.toy.BTCUSDT" and line["type"] == "book" for line in lines)
    seqs = [line["topic_seq"] for line in lines]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert lines[0]["bids"][0] == ["100.5", "1.25"]


def test_spiceflow_tail_exits_2_when_the_address_cannot_be_used():
    down = subprocess.run(
        [*SPICEFLOW, "tail", f"nats://127.0.0.1:{free_port()}", "--limit", "1"], capture_output=True, text=True
    )
    assert down.returncode == 2 and "cannot connect" in down.stderr
    unknown = subprocess.run(
        [*SPICEFLOW, "tail", "--address", "foo://x", "--limit", "1"], capture_output=True, text=True
    )
    assert unknown.returncode == 2 and "no installed subscriber plugin for foo://" in unknown.stderr
