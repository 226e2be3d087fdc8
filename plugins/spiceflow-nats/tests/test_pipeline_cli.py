"""End to end, as processes: `spiceflow run --profile demo` with a `[sinks.nats]` table
publishes the exact book messages ZeroMQ consumers get (byte for byte, same topic_seq)
on NATS subjects; the sink's counters reach consumers on `status.sinks.nats`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import nats
import pytest
import zmq
import zmq.asyncio
from nats_testing import collecting, wait_for

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.broadcast.wire import StatusMessage, decoder
from spiceflow_core.cluster.nats_server import NatsServer
from spiceflow_core.ports import free_port
from spiceflow_core.testkit.processes import interrupt

pytestmark = pytest.mark.anyio
SPICEFLOW = [sys.executable, "-m", "spiceflow_core.cli.main"]
WANTED = 200  # book messages seen by both consumers


async def test_demo_run_publishes_the_exact_zeromq_books_on_nats(nats_server: NatsServer, tmp_path: Path):
    zmq_address = f"tcp://127.0.0.1:{free_port()}"
    config = tmp_path / "spiceflow.toml"
    config.write_text(f"""
[broadcast]
address = "{zmq_address}"
status_interval = 0.5
[api]
enabled = false
[sinks.nats]
servers = ["{nats_server.url}"]
jetstream = true
reconnect_wait = 0.2
""")
    log = tmp_path / "run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*SPICEFLOW, "run", "--config", str(config), "--profile", "demo", "--venue", "binance"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        await wait_for(lambda: "nats sink connected" in log.read_text() or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, log.read_text()

        from_zmq: dict[tuple[str, int], bytes] = {}
        sock = zmq.asyncio.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(zmq_address)
        sock.setsockopt(zmq.SUBSCRIBE, b"book.")

        async def read_zmq() -> None:
            while True:
                topic, *bodies = await sock.recv_multipart()
                for body in bodies:
                    from_zmq[(topic.decode(), decoder.decode(body).topic_seq)] = body

        try:
            async with (
                collecting(nats_server.url, "book.>") as from_nats,
                Subscriber(nats_server.url, ["book.binance.", "status.sinks."]) as decoded,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(read_zmq)

                def common() -> set[tuple[str, int]]:
                    keys = {(s, decoder.decode(b).topic_seq) for s, b in from_nats.got}
                    return keys & from_zmq.keys()

                await wait_for(lambda: len(common()) >= WANTED, timeout=60)
                tg.cancel_scope.cancel()
                by_key = {(s, decoder.decode(b).topic_seq): b for s, b in from_nats.got}
                same = common()
                assert {topic for topic, _ in same} == {"book.binance.BTCUSDT", "book.binance.ETHUSDT"}
                assert all(by_key[key] == from_zmq[key] for key in same)  # byte for byte
                for topic in ("book.binance.BTCUSDT", "book.binance.ETHUSDT"):
                    seqs = from_nats.seqs(topic)
                    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # nothing lost

                # the core's Subscriber reads the same stream, and the sink's counters
                stats = None
                while stats is None:
                    received = await decoded.receive()
                    if isinstance(received.message, StatusMessage) and received.topic == "status.sinks.nats":
                        stats = received.message
                assert stats.counters["written"] > 0 and stats.counters["dropped"] == 0
        finally:
            sock.close(linger=0)

        # the books stream holds the last book of each instrument
        nc = await nats.connect(nats_server.url)
        try:
            info = await nc.jetstream().stream_info("SPICEFLOW_BOOKS")
        finally:
            await nc.close()
        assert info.state.messages == 2
    finally:
        code = await interrupt(proc)
    assert code == 0, log.read_text()[-3000:]
