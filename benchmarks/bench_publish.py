"""Publish-path benchmark: book update -> decoded message in another process.

Each message is a real "book update": one level near the top of a 1,000-level-a-side
book changes, then a BookMessage with the top 25 levels a side is built from the
book's sorted level lists, stamped and published by ``Publisher`` (msgpack via the
shared msgspec encoder, ``zmq.NOBLOCK``). A subscriber in a separate process
(spawned with this same file, ``--role sub``) receives over tcp loopback and decodes
every message through ``spiceflow_core.broadcast.subscriber`` (async ``Subscriber`` by default;
``SyncSubscriber`` as a second row). Two publishing modes are measured: ``publish()``
per message (one ZeroMQ message each) and ``publish_many()`` with 16 updates per call
(one ZeroMQ message per 16 bodies), which is what the broadcast actor does when it
drains a backlog.

End-to-end throughput = book messages decoded by the subscriber / (time of the last
decode - time the publisher started), both wall clock on the same host. Messages
the subscriber did not get (HWM drops, seen as topic_seq gaps) are reported as loss
and are *not* counted as throughput. Latency is measured separately at a paced
10,000 msg/s (publish_ts_ns -> decoded), because under saturation it only measures
queue length.

    python benchmarks/bench_publish.py [--quick]

Prints a table and writes benchmarks/results/publish.json. Target: >= 100,000 msg/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import zmq  # noqa: E402

from spiceflow_core.broadcast.publisher import Publisher  # noqa: E402
from spiceflow_core.broadcast.wire import BookMessage, StatusMessage  # noqa: E402

TARGET_MSG_S = 100_000
DEPTH = 25
BATCH = 16  # updates per publish_many call in the batched run
BOOK_LEVELS = 1_000
RESULTS = ROOT / "benchmarks" / "results" / "publish.json"


# -- the "order book" side ------------------------------------------------------------


class BookSide:
    """Stand-in for the engine's top-N view: levels best-first as exact strings."""

    def __init__(self, best: int, step: int, n: int) -> None:
        # Prices in cents as integers -> exact decimal strings with 2 decimals.
        self.levels = [(f"{(best + i * step) / 100:.2f}", f"{(i % 97 + 1) / 1000:.3f}") for i in range(n)]

    def update(self, i: int) -> None:
        # Size change near the top, like most real traffic.
        k = (i * 7) % 40
        price, _ = self.levels[k]
        self.levels[k] = (price, f"{(i % 9973 + 1) / 1000:.3f}")

    def top(self, n: int) -> list[tuple[str, str]]:
        return self.levels[:n]


def publish_updates(pub: Publisher, n: int, rate: float | None = None, batch: int = 1) -> tuple[int, int]:
    """Apply n book updates and publish each as a BookMessage; returns (t0_ns, t1_ns).

    ``batch > 1`` models the broadcast actor draining the updates already waiting in
    its stream and handing them to ``publish_many`` at once (a full backlog here)."""
    bids = BookSide(4_325_010, -1, BOOK_LEVELS)
    asks = BookSide(4_325_020, +1, BOOK_LEVELS)
    pending: list[BookMessage] = []
    publish = pub.publish if batch == 1 else pending.append
    interval = 1.0 / rate if rate else 0.0
    t0 = time.time_ns()
    next_t = time.perf_counter()
    for i in range(n):
        (bids if i & 1 else asks).update(i)
        publish(
            BookMessage(
                venue="binance",
                symbol="BTCUSDT",
                instrument="binance.spot.BTC.USDT",
                sequence=1_000_000 + i,
                bids=bids.top(DEPTH),
                asks=asks.top(DEPTH),
                exchange_ts_ms=1_700_000_000_000 + i,
                recv_ts_ns=0,
            )
        )
        if len(pending) >= batch:
            pub.publish_many(pending)
            pending.clear()
        if interval:
            next_t += interval
            while time.perf_counter() < next_t:
                pass
    if pending:
        pub.publish_many(pending)
    return t0, time.time_ns()


# -- subscriber process ---------------------------------------------------------------


def run_subscriber(address: str, api: str, gc_tuned: bool = False) -> None:
    """Count decoded book messages until the END status; print a JSON summary."""
    if gc_tuned:
        # Each decoded 25-level book is ~53 GC-tracked containers (50 level tuples,
        # 2 lists, the struct), so CPython's default gen-0 threshold (700) runs a
        # collection every ~13 messages. A consumer application (not the library)
        # can choose a larger threshold; measured separately, default is the headline.
        import gc

        gc.set_threshold(100_000, 50, 100)
    lat: list[int] = []
    state = {"n": 0, "last": 0, "ready": False}

    def on(r) -> bool:  # returns True at END
        now = time.time_ns()
        msg = r.message
        if isinstance(msg, StatusMessage):
            if msg.symbol == "END":
                return True
            if not state["ready"]:
                state["ready"] = True
                print("ready", flush=True)
            return False
        state["n"] += 1
        state["last"] = now
        if len(lat) < 200_000:
            lat.append(now - msg.publish_ts_ns)
        return False

    if api == "sync":
        from spiceflow_core.broadcast.subscriber import SyncSubscriber

        with SyncSubscriber(address, ["book.", "status."]) as sub:
            for r in sub:
                if on(r):
                    break
            missed, malformed = sub.missed_total, sub.malformed
    else:
        import asyncio

        from spiceflow_core.broadcast.subscriber import Subscriber

        async def main() -> tuple[int, int]:
            async with Subscriber(address, ["book.", "status."]) as sub:
                async for r in sub:
                    if on(r):
                        break
                return sub.missed_total, sub.malformed

        missed, malformed = asyncio.run(main())
    lat.sort()

    def pct(q: float) -> int:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0

    print(
        json.dumps(
            {
                "received": state["n"],
                "last_ns": state["last"],
                "missed": missed,
                "malformed": malformed,
                "lat_p50_ns": pct(0.5),
                "lat_p99_ns": pct(0.99),
            }
        ),
        flush=True,
    )


# -- driver ----------------------------------------------------------------------------


def _readline_nowait(proc: subprocess.Popen) -> str | None:
    r, _, _ = select.select([proc.stdout], [], [], 0)
    return proc.stdout.readline().decode() if r else None


def run_case(n: int, api: str, rate: float | None = None, batch: int = 1, gc_tuned: bool = False) -> dict:
    with Publisher("tcp://127.0.0.1:*") as pub:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--role", "sub", "--address", pub.address, "--api", api]
            + (["--gc-tuned"] if gc_tuned else []),
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            # Slow joiner: publish status pings until the subscriber has one.
            deadline = time.monotonic() + 30
            while _readline_nowait(proc) is None:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("subscriber did not start")
                pub.publish(StatusMessage(venue="bench", symbol="PING", state="stats"))
                time.sleep(0.005)
            time.sleep(0.05)  # let the last pings drain; not part of any timing
            t0, t1 = publish_updates(pub, n, rate, batch)
            # END may itself be dropped if the subscriber is behind: repeat until it exits.
            while proc.poll() is None and time.monotonic() < deadline + 120:
                pub.publish(StatusMessage(venue="bench", symbol="END", state="stats"))
                try:
                    proc.wait(0.05)
                except subprocess.TimeoutExpired:
                    pass
            out = proc.stdout.read().decode().strip().splitlines()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    res = json.loads(out[-1])
    res.update(sent=n, publish_s=(t1 - t0) / 1e9, e2e_s=max(res["last_ns"] - t0, 1) / 1e9, published=pub.published)
    res["publish_rate"] = n / res["publish_s"]
    res["e2e_rate"] = res["received"] / res["e2e_s"]
    res["loss_pct"] = 100.0 * (n - res["received"]) / n
    return res


def encode_only_rate(n: int) -> float:
    """Upper bound without sockets: build + stamp + encode + decode in one process."""
    from spiceflow_core.broadcast.wire import decoder, encoder

    bids = BookSide(4_325_010, -1, BOOK_LEVELS)
    asks = BookSide(4_325_020, +1, BOOK_LEVELS)
    t = time.perf_counter()
    for i in range(n):
        (bids if i & 1 else asks).update(i)
        m = BookMessage(
            venue="binance",
            symbol="BTCUSDT",
            sequence=i,
            bids=bids.top(DEPTH),
            asks=asks.top(DEPTH),
            topic_seq=i,
            publish_ts_ns=time.time_ns(),
        )
        decoder.decode(encoder.encode(m))
    return n / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages (~10 s total)")
    ap.add_argument("--messages", type=int, default=None)
    ap.add_argument("--role", choices=["driver", "sub"], default="driver", help=argparse.SUPPRESS)
    ap.add_argument("--address", help=argparse.SUPPRESS)
    ap.add_argument("--api", choices=["async", "sync"], default="async", help=argparse.SUPPRESS)
    ap.add_argument("--gc-tuned", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.role == "sub":
        run_subscriber(args.address, args.api, args.gc_tuned)
        return 0

    n = args.messages or (200_000 if args.quick else 1_000_000)
    sample = BookMessage(
        venue="binance",
        symbol="BTCUSDT",
        instrument="binance.spot.BTC.USDT",
        sequence=1,
        bids=BookSide(4_325_010, -1, DEPTH).top(DEPTH),
        asks=BookSide(4_325_020, 1, DEPTH).top(DEPTH),
        topic_seq=1,
        publish_ts_ns=time.time_ns(),
        exchange_ts_ms=1,
    )
    msg_bytes = len(msgspec.msgpack.encode(sample))

    enc = encode_only_rate(min(n, 200_000))
    a = run_case(n, "async")
    s = run_case(n, "sync")
    b = run_case(n, "async", batch=BATCH)
    g = run_case(n, "async", batch=BATCH, gc_tuned=True)
    paced = run_case(20_000 if args.quick else 50_000, "async", rate=10_000)

    rows = [
        (f"e2e msg/s, publish_many({BATCH}), async Sub", b["e2e_rate"], "msg/s", TARGET_MSG_S),
        (f"e2e msg/s, publish_many({BATCH}), gc-tuned sub", g["e2e_rate"], "msg/s", TARGET_MSG_S),
        ("e2e msg/s, publish(), async Subscriber", a["e2e_rate"], "msg/s", TARGET_MSG_S),
        ("e2e msg/s, publish(), SyncSubscriber", s["e2e_rate"], "msg/s", TARGET_MSG_S),
        (f"publisher msg/s, publish_many({BATCH})", b["publish_rate"], "msg/s", TARGET_MSG_S),
        ("publisher msg/s, publish()", a["publish_rate"], "msg/s", TARGET_MSG_S),
        ("loss (HWM drops), batched run", b["loss_pct"], "%", None),
        ("loss (HWM drops), publish() async", a["loss_pct"], "%", None),
        ("loss (HWM drops), publish() sync", s["loss_pct"], "%", None),
        ("latency p50 @10k msg/s", paced["lat_p50_ns"] / 1000, "us", None),
        ("latency p99 @10k msg/s", paced["lat_p99_ns"] / 1000, "us", None),
        ("in-process build+encode+decode msg/s", enc, "msg/s", None),
        ("message size (25x2 levels)", msg_bytes, "bytes", None),
    ]
    print(
        f"\npublish path: {n:,} book updates, depth {DEPTH}, tcp loopback, "
        f"{os.cpu_count()} CPUs, pyzmq {zmq.__version__} / libzmq {zmq.zmq_version()}\n"
    )
    print(f"{'metric':<40} {'figure':>14} {'target':>12} {'ratio':>7}")
    print("-" * 76)
    metrics = []
    for name, value, unit, target in rows:
        ratio = value / target if target else None
        fig = f"{value:,.0f} {unit}" if unit != "%" else f"{value:.2f} %"
        tgt = f"{target:,}" if target else "-"
        print(f"{name:<40} {fig:>14} {tgt:>12} {f'{ratio:.2f}x' if ratio else '-':>7}")
        metrics.append({"metric": name, "value": value, "unit": unit, "target": target, "ratio": ratio})
    for label, r in (
        (f"publish_many({BATCH})", b),
        (f"publish_many({BATCH}) + gc-tuned subscriber", g),
        ("publish() one by one", a),
    ):
        ok_r = r["e2e_rate"] >= TARGET_MSG_S and r["loss_pct"] == 0
        print(
            f"\n{label}, async Subscriber, end to end: {r['e2e_rate']:,.0f} msg/s -> "
            f"{'MEETS' if ok_r else 'BELOW'} target {TARGET_MSG_S:,} msg/s"
            + ("" if r["loss_pct"] == 0 else f" (with {r['loss_pct']:.2f}% loss)"),
            end="",
        )
    print()
    ok = b["e2e_rate"] >= TARGET_MSG_S and b["loss_pct"] == 0

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "publish",
                "quick": args.quick,
                "messages": n,
                "depth": DEPTH,
                "target_msg_s": TARGET_MSG_S,
                "meets_target": ok,
                "metrics": metrics,
                "batch": BATCH,
                "runs": {"batched_async": b, "batched_async_gc_tuned": g, "async": a, "sync": s, "paced_10k": paced},
                "env": {
                    "python": platform.python_version(),
                    "pyzmq": zmq.__version__,
                    "libzmq": zmq.zmq_version(),
                    "msgspec": msgspec.__version__,
                    "cpus": os.cpu_count(),
                    "machine": platform.machine(),
                },
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
