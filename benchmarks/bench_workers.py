"""Scaling out on one machine: the highest sustained frames/s of ``spiceflow run --workers 1``
and of ``spiceflow run --workers 2``, and their ratio (target >= 1.7x on 2 cores).

    python benchmarks/bench_workers.py [--workers 1,2] [--symbols 40] [--duration 4] [--transport T]

* The sender (a subprocess of this script) speaks Binance spot on loopback for
  ``--symbols`` generated instruments: ``exchangeInfo``, the REST depth snapshot (the
  true book at the last update sent) and a combined-stream WebSocket answering
  SUBSCRIBE/UNSUBSCRIBE. Each step it streams depth updates at a fixed total rate,
  round-robin over the instruments, each connection receiving the updates of the
  streams it subscribed. The sender must cost little next to what is measured (it
  shares the 2 cores): before a step starts it builds every frame and joins them into
  one socket write per connection and millisecond of stream; streaming is then one
  write per connection each millisecond (the true book catches up when a snapshot is
  asked for, or after the step).
* ``spiceflow run --workers N`` (the CLI as installed, default configuration, control API
  off) with a nats-server this script starts: the N workers split the instruments
  (rendezvous hashing) and each opens its own connection to the sender.
* This process subscribes to every worker's ZeroMQ address directly (base port + 1 + i)
  and counts every book message in libzmq, without Python per message (``Output``);
  one symbol per worker is also decoded for the receive -> deliver latency.

For each N the rate goes up by x1.25 from 4,000 frames/s until a step fails, then is
bisected three times between the last pass and the first failure. A step passes when
the sender reached >= 95% of the rate, >= 99% of its frames came out as book messages and
the last message arrived within DRAIN_LIMIT_MS of the sender's last frame: a worker
slower than the rate ends the step with a backlog (in the kernel or its inbox) that
takes longer than that to drain. Unlike ``bench_live.py`` the p99 latency is reported
but not a criterion: this compares throughput, and on a shared 2-core machine a
scheduling hiccup of another process shows up in the tail of a 4 s step.
Sustained = the highest passing rate.
Writes benchmarks/results/workers.json, with the load average before and after (other
processes on the machine share the 2 cores with the sender, the workers and this one).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from spiceflow_core.ports import free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

RESULTS = HERE / "results" / "workers.json"
TARGET_RATIO = 1.7
#: levels a side of each generated book; updates touch the top TOUCHED of them
LEVELS = 200
TOUCHED = 30
DRAIN_LIMIT_MS = 100
#: after the sender's last frame, a step ends when every frame is delivered, after this
#: long without a message, or at the latest after BEHIND_LIMIT_S
QUIET_S = 1.0
BEHIND_LIMIT_S = 8.0
START_RATE = 4000
MAX_RATE = 200_000
CLI = [sys.executable, "-m", "spiceflow_core.cli.main"]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the sender (a subprocess) ---------------------------------------------------------
def symbol_names(n: int) -> list[str]:
    return [f"BW{i}USDT" for i in range(n)]


def exchange_info(symbols: list[str]) -> bytes:
    """The fixture's exchangeInfo with the generated symbols (cloned from BTCUSDT) and a
    REQUEST_WEIGHT budget that never delays a snapshot."""
    path = REPO / "plugins/spiceflow-binance/spiceflow_binance/fixtures/api_v3_exchangeInfo.json"
    info = json.loads(path.read_bytes())
    template = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    entries = []
    for name in symbols:
        entry = json.loads(json.dumps(template))
        entry["symbol"], entry["baseAsset"] = name, name.removesuffix("USDT")
        entries.append(entry)
    info["symbols"] = entries
    for rl in info["rateLimits"]:
        if rl["rateLimitType"] == "REQUEST_WEIGHT":
            rl["limit"] = 10_000_000
    return json.dumps(info).encode()


def _ws_text_frame(payload: bytes) -> bytes:
    """One unmasked, final WebSocket text frame (server -> client, RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


class Market:
    """The true books (sizes by level rank; prices fixed) and the last update id sent."""

    def __init__(self, symbols: list[str], seed: int = 7) -> None:
        self.symbols = symbols
        self.rng = random.Random(seed)
        self.sizes = [f"{self.rng.randint(1, 500_000) / 100_000:.5f}" for _ in range(997)]
        self.bid_prices = [f"{(100_000 - k) / 100:.2f}" for k in range(LEVELS)]
        self.ask_prices = [f"{(100_001 + k) / 100:.2f}" for k in range(LEVELS)]
        self.bids = {s: [self.rng.choice(self.sizes) for _ in range(LEVELS)] for s in symbols}
        self.asks = {s: [self.rng.choice(self.sizes) for _ in range(LEVELS)] for s in symbols}
        self.sent_id = dict.fromkeys(symbols, 999)  # last update id sent (the snapshot's)
        self._next_id = dict.fromkeys(symbols, 1000)  # next id to generate
        #: the current step's updates: the first ``sent`` went out, the first ``applied``
        #: are in the truth
        self.pending: list[tuple[str, bytes, int, tuple[tuple[int, str], ...]]] = []
        self.sent = self.applied = 0

    def generate(self, count: int, start: int) -> list[tuple[str, bytes, int, tuple[tuple[int, str], ...]]]:
        """``count`` framed updates (symbol, frame, last id, changes), round-robin from
        the ``start``-th symbol; each changes two bid and two ask sizes."""
        rng, sizes, n = self.rng, self.sizes, len(self.symbols)
        out = []
        for i in range(count):
            symbol = self.symbols[(start + i) % n]
            first = self._next_id[symbol]
            last = first + rng.randint(0, 3)
            self._next_id[symbol] = last + 1
            b = rng.sample(range(TOUCHED), 2)
            a = rng.sample(range(TOUCHED), 2)
            changes = tuple((k, rng.choice(sizes)) for k in b) + tuple((-1 - k, rng.choice(sizes)) for k in a)
            bids = ",".join(f'["{self.bid_prices[k]}","{q}"]' for k, q in changes[:2])
            asks = ",".join(f'["{self.ask_prices[-1 - k]}","{q}"]' for k, q in changes[2:])
            text = (
                f'{{"stream":"{symbol.lower()}@depth@100ms","data":{{"e":"depthUpdate","E":{int(time.time() * 1000)},'
                f'"s":"{symbol}","U":{first},"u":{last},"b":[{bids}],"a":[{asks}]}}}}'
            )
            out.append((symbol, _ws_text_frame(text.encode()), last, changes))
        return out

    def catch_up(self) -> None:
        """Apply the updates sent since the last call to the truth. Done when a snapshot
        is asked for or before the next step, not per frame while streaming: the sender
        must cost little next to what is measured."""
        for symbol, _, last, changes in self.pending[self.applied : self.sent]:
            bids, asks = self.bids[symbol], self.asks[symbol]
            for k, q in changes:
                if k >= 0:
                    bids[k] = q
                else:
                    asks[-1 - k] = q
            self.sent_id[symbol] = last
        self.applied = self.sent

    def snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        self.catch_up()
        limit = min(limit, LEVELS)
        return {
            "lastUpdateId": self.sent_id[symbol],
            "bids": [[p, q] for p, q in zip(self.bid_prices[:limit], self.bids[symbol][:limit], strict=True)],
            "asks": [[p, q] for p, q in zip(self.ask_prices[:limit], self.asks[symbol][:limit], strict=True)],
        }


def serve(n_symbols: int, port_file: Path) -> None:
    """The sender: commands on stdin (``status``, ``step RATE SECONDS``, ``quit``), one
    JSON line per answer on stdout."""
    import anyio

    from spiceflow_core.testkit import HttpAnswer, LoopbackServer, json_answer

    symbols = symbol_names(n_symbols)
    market = Market(symbols)
    info = exchange_info(symbols)
    conns: dict[int, tuple[Any, set[str]]] = {}  # id -> (transport, subscribed symbols)
    routes: dict[str, list[Any]] = {}  # symbol -> transports subscribed to it

    def reroute() -> None:
        routes.clear()
        for transport, subscribed in conns.values():
            for s in subscribed:
                routes.setdefault(s, []).append(transport)

    def say(**fields: Any) -> None:
        print(json.dumps(fields), flush=True)

    async def http(path: str, query: dict[str, str]) -> HttpAnswer:
        if path.endswith("/depth"):
            return json_answer(market.snapshot(query["symbol"], int(query.get("limit", 100))))
        return json_answer(info)

    async def ws(conn: Any) -> None:
        key = id(conn)
        conns[key] = (conn.transport, set())
        try:
            async for text in conn:
                req = json.loads(text)
                streams = {p.split("@")[0].upper() for p in req.get("params") or []}
                if req.get("method") == "SUBSCRIBE":
                    conns[key][1].update(streams)
                elif req.get("method") == "UNSUBSCRIBE":
                    conns[key][1].difference_update(streams)
                reroute()
                await conn.send(json.dumps({"result": None, "id": req.get("id")}))
        finally:
            conns.pop(key, None)
            reroute()

    async def step(rate: float, seconds: float, start: int) -> None:
        market.catch_up()
        frames = market.generate(int(rate * seconds), start)
        market.pending, market.sent, market.applied = frames, 0, 0
        # one socket write per connection and millisecond of stream, joined up front (the
        # subscriptions do not change during a step once the cluster is ready)
        per_chunk = max(1, int(rate / 1000))
        chunks: list[tuple[int, list[tuple[Any, bytes]]]] = []
        for i in range(0, len(frames), per_chunk):
            out: dict[Any, list[bytes]] = {}
            for symbol, frame, _, _ in frames[i : i + per_chunk]:
                for transport in routes.get(symbol, ()):
                    out.setdefault(transport, []).append(frame)
            chunks.append((min(i + per_chunk, len(frames)), [(t, b"".join(parts)) for t, parts in out.items()]))
        say(start_ns=time.time_ns())
        t0 = time.perf_counter()
        k = 0
        while k < len(chunks):
            due = int((time.perf_counter() - t0) * rate) + 1
            while k < len(chunks) and k * per_chunk < due:
                end, writes = chunks[k]
                for transport, data in writes:
                    if not transport.is_closing():
                        transport.write(data)
                market.sent = end
                k += 1
            await anyio.sleep(0.001)
        say(sent=market.sent, send_seconds=time.perf_counter() - t0, end_ns=time.time_ns())

    async def main() -> None:
        async with LoopbackServer(ws=ws, http=http, ping_interval=None, max_size=2**22) as server:
            port_file.write_text(str(server.port))
            start = 0
            while True:
                line = (await anyio.to_thread.run_sync(sys.stdin.readline)).split()
                if not line or line[0] == "quit":
                    return
                if line[0] == "status":
                    counts = [len(subscribed) for _, subscribed in conns.values() if subscribed]
                    covered = sum(1 for s in symbols if routes.get(s))
                    doubled = sum(1 for s in symbols if len(routes.get(s, ())) > 1)
                    say(covered=covered, doubled=doubled, per_connection=sorted(counts))
                elif line[0] == "step":
                    rate, seconds = float(line[1]), float(line[2])
                    await step(rate, seconds, start)
                    start += int(rate * seconds)

    anyio.run(main)


# -- the measuring side ---------------------------------------------------------------
def free_port_run(count: int) -> int:
    """A port such that it and the ``count - 1`` after it are free (now)."""
    for _ in range(100):
        base = free_port()
        try:
            with contextlib.ExitStack() as stack:
                for i in range(count):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
    raise RuntimeError("no run of free ports")


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Sender:
    def __init__(self, n_symbols: int, tmp: Path) -> None:
        port_file = tmp / f"sender-{time.monotonic_ns()}.port"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(n_symbols), str(port_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(tmp / "sender.log", "w"),  # noqa: SIM115 -- the child keeps it
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the sender did not start: {(tmp / 'sender.log').read_text()[-500:]}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def command(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def answer(self, timeout: float = 30.0) -> dict[str, Any]:
        return self.lines.get(timeout=timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.command("quit")
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Workers:
    """``spiceflow run --workers N`` with its own nats-server."""

    def __init__(self, n: int, symbols: list[str], sender_port: int, tmp: Path, transport: str | None) -> None:
        import anyio

        from spiceflow_core.cluster.nats_server import NatsServer

        self.n = n
        self.symbols = symbols
        self.nats = NatsServer(f"bench-nats-{n}", store_dir=tmp / f"nats-{n}")
        anyio.run(self.nats.start)
        self.base = free_port_run(n + 1)
        listed = ", ".join(f'"{s}"' for s in symbols)
        runtime = f'[runtime]\ntransport = "{transport}"\n' if transport else ""
        config = tmp / f"workers-{n}.toml"
        config.write_text(
            f"""profiles = []
[venues.binance]
instruments = [{listed}]
ws_url = "ws://127.0.0.1:{sender_port}"
rest_url = "http://127.0.0.1:{sender_port}"
[broadcast]
address = "tcp://127.0.0.1:{self.base}"
[api]
enabled = false
[cluster]
nats = "{self.nats.url}"
{runtime}"""
        )
        self.log = tmp / f"workers-{n}.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [*CLI, "run", "--workers", str(n), "--config", str(config), "--venue", "binance"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp,
            )
        self.addresses = [f"tcp://127.0.0.1:{self.base + 1 + i}" for i in range(n)]

    def split(self) -> dict[str, str] | None:
        """symbol -> its owner, once the owners bucket names, for every instrument, the
        member rendezvous hashing gives it among the N live members."""
        import anyio

        from spiceflow_core.cluster import control
        from spiceflow_core.cluster import keys as K
        from spiceflow_core.cluster.rendezvous import assign
        from spiceflow_core.cluster.store import open_store

        async def read() -> dict[str, Any]:
            async with open_store(self.nats.url) as store:
                return await control.describe(store)

        view = anyio.run(read)
        if len(view["members"]) != self.n:
            return None
        wanted = assign([K.instrument_key("binance", s) for s in self.symbols], view["members"])
        out: dict[str, str] = {}
        for symbol in self.symbols:
            owner = view["owners"].get(f"binance:{symbol}", {}).get("member")
            if owner != wanted[K.instrument_key("binance", symbol)]:
                return None
            out[symbol] = owner
        return out

    def worker_cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in children(self.process.pid) if pid != self.nats_pid)

    @property
    def nats_pid(self) -> int:
        return self.nats.process.pid if self.nats.process is not None else -1

    def close(self) -> None:
        import anyio

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        anyio.run(self.nats.stop)


def wait_ready(sender: Sender, workers: Workers, timeout: float = 60.0) -> dict[str, Any]:
    """Until the instruments are split as rendezvous hashing says and each is subscribed
    on exactly one of the N workers' connections."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if workers.process.poll() is not None:
            raise RuntimeError(f"spiceflow run --workers exited: {workers.log.read_text()[-1500:]}")
        split = workers.split()
        sender.command("status")
        status = sender.answer()
        counts: dict[str, int] = {}
        for owner in (split or {}).values():
            counts[owner] = counts.get(owner, 0) + 1
        if (
            split is not None
            and status["covered"] == len(workers.symbols)
            and status["doubled"] == 0
            and status["per_connection"] == sorted(counts.values())
        ):
            return {"per_connection": status["per_connection"], "owners": dict(sorted(counts.items())), "of": split}
        time.sleep(0.5)
    raise RuntimeError(f"not ready within {timeout:.0f}s: {status}")


class Output:
    """What the workers publish, consumed at little cost: a SUB socket on every worker
    subscribed to all book topics, drained by libzmq's own proxy in a thread that holds
    no GIL (forwarding to a PUB socket nobody reads); its STATISTICS give the count.
    A worker packs consecutive updates of one topic from one socket read into one
    message ``[topic, body, body, ...]``, but the sender interleaves its instruments
    round-robin on every connection, so no two consecutive updates share a topic: every
    message is ``[topic, body]`` and books = message parts / 2. The second SUB socket,
    which takes one symbol per worker for the latency (the workers send those few topics
    twice), checks that: a message with more bodies ends the run (``samples``)."""

    def __init__(self, addresses: list[str], sampled: list[str]) -> None:
        import zmq

        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"book.binance.")
        self.sink = self.ctx.socket(zmq.PUB)
        self.sink.bind(f"inproc://sink-{id(self)}")
        control = self.ctx.socket(zmq.REP)
        control.bind(f"inproc://control-{id(self)}")
        self.control = self.ctx.socket(zmq.REQ)
        self.control.connect(f"inproc://control-{id(self)}")
        self.sampler = self.ctx.socket(zmq.SUB)
        self.sampler.setsockopt(zmq.RCVHWM, 0)
        for symbol in sampled:
            self.sampler.setsockopt(zmq.SUBSCRIBE, f"book.binance.{symbol}".encode())
        for address in addresses:
            self.sub.connect(address)
            self.sampler.connect(address)
        self.thread = threading.Thread(
            target=zmq.proxy_steerable, args=(self.sub, self.sink, None, control), daemon=True
        )
        self.thread.start()
        self._control_server = control

    def books(self) -> int:
        self.control.send(b"STATISTICS")
        parts = self.control.recv_multipart()
        return int.from_bytes(parts[0], sys.byteorder) // 2  # frontend: message parts received

    def samples(self) -> list[tuple[int, bytes]]:
        """(arrival ns, body) of the sampled messages waiting."""
        import zmq

        out: list[tuple[int, bytes]] = []
        while True:
            try:
                frames = self.sampler.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            if len(frames) != 2:
                raise RuntimeError(f"a message of {len(frames) - 1} bodies: books = message parts / 2 does not hold")
            out.append((time.time_ns(), frames[1]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.control.send(b"TERMINATE")
            self.control.recv_multipart()
        self.thread.join(timeout=2)
        for sock in (self.sub, self.sink, self._control_server, self.control, self.sampler):
            sock.close(linger=0)
        self.ctx.term()


def run_step(sender: Sender, output: Output, workers: Workers, rate: float, seconds: float) -> dict[str, Any]:
    from spiceflow_core.broadcast.wire import BookMessage, decoder

    before = output.books()  # counts only grow: this step's are the difference
    output.samples()  # leftovers of the previous step
    sender.command(f"step {rate} {seconds}")
    sender.answer(timeout=120)  # frames built: the step starts
    cpu0 = workers.worker_cpu()
    sender_cpu0, own_cpu0 = cpu_seconds(sender.process.pid), sum(os.times()[:2])
    t_start = time.monotonic()
    count = 0
    latencies: list[int] = []
    end: dict[str, Any] | None = None
    t_end = 0.0
    last_arrival_ns = 0
    last_change = time.monotonic()
    skip_until_ns = time.time_ns() + int(0.1 * seconds * 1e9)
    while True:
        time.sleep(0.005)
        now = time.monotonic()
        for arrived, body in output.samples():
            msg = decoder.decode(body)
            if isinstance(msg, BookMessage) and msg.recv_ts_ns and arrived > skip_until_ns:
                latencies.append(arrived - msg.recv_ts_ns)
        books = output.books() - before
        if books != count:
            count, last_change, last_arrival_ns = books, now, time.time_ns()
        if end is None:
            with contextlib.suppress(queue.Empty):
                end = sender.lines.get_nowait()
                t_end = now
        if end is not None and (count >= end["sent"] or now - last_change > QUIET_S or now - t_end > BEHIND_LIMIT_S):
            break
    cpu = workers.worker_cpu() - cpu0
    sender_cpu = cpu_seconds(sender.process.pid) - sender_cpu0
    own_cpu = sum(os.times()[:2]) - own_cpu0
    assert end is not None
    sent = end["sent"]
    latencies.sort()

    def pct(q: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6 if latencies else None

    drain_ms = (last_arrival_ns - end["end_ns"]) / 1e6 if last_arrival_ns else None
    achieved = sent / end["send_seconds"] if end["send_seconds"] else 0.0
    ok = achieved >= 0.95 * rate and count >= 0.99 * sent and drain_ms is not None and drain_ms <= DRAIN_LIMIT_MS
    return {
        "rate": rate,
        "sent": sent,
        "sender_rate": round(achieved),
        "delivered": count,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "latency_samples": len(latencies),
        "drain_ms": drain_ms,
        "worker_cpu_s": round(cpu, 2),
        "worker_cpu_us_per_frame": round(cpu / count * 1e6, 1) if count else None,
        "sender_cpu_s": round(sender_cpu, 2),
        "subscriber_cpu_s": round(own_cpu, 2),
        "wall_s": round(time.monotonic() - t_start, 2),
        "kept_up": ok,
    }


def ladder(measure: Any) -> tuple[int, list[dict[str, Any]]]:
    """x1.25 steps from START_RATE until one fails, then 3 bisections."""
    steps: list[dict[str, Any]] = []
    best, rate = 0, START_RATE
    failed: int | None = None
    while rate <= MAX_RATE:
        result = measure(rate)
        steps.append(result)
        if not result["kept_up"]:
            failed = rate
            break
        best = rate
        rate = int(rate * 1.25 / 100) * 100
    if failed is not None and best:
        lo, hi = best, failed
        for _ in range(3):
            mid = (lo + hi) // 200 * 100
            if mid <= lo or mid >= hi:
                break
            result = measure(mid)
            steps.append(result)
            if result["kept_up"]:
                lo = best = mid
            else:
                hi = mid
    return best, steps


def show(step: dict[str, Any]) -> None:
    p99 = f"{step['p99_ms']:.1f}" if step["p99_ms"] is not None else "-"
    drain = f"{step['drain_ms']:.0f}" if step["drain_ms"] is not None else "-"
    print(
        f"  {step['rate']:>8,.0f}/s: sent {step['sender_rate']:>7,}/s, delivered {step['delivered']:>8,} of "
        f"{step['sent']:>8,}, p99 {p99} ms, drain {drain} ms, CPU s workers {step['worker_cpu_s']} sender "
        f"{step['sender_cpu_s']} subscriber {step['subscriber_cpu_s']} in {step['wall_s']} s"
        f" -> {'kept up' if step['kept_up'] else 'FELL BEHIND'}",
        flush=True,
    )


def bench(n: int, n_symbols: int, seconds: float, transport: str | None, tmp: Path, rates: list[int]) -> dict[str, Any]:
    sender = Sender(n_symbols, tmp)
    workers = output = None
    try:
        workers = Workers(n, symbol_names(n_symbols), sender.port, tmp, transport)
        split = wait_ready(sender, workers)
        of = split.pop("of")
        sampled = sorted({member: symbol for symbol, member in sorted(of.items(), reverse=True)}.values())
        print(
            f"--workers {n}: ready, instruments per worker {split['owners']}, latency sampled on {sampled}", flush=True
        )
        output = Output(workers.addresses, sampled)
        # warm-up: every book takes its first update (the sync with the snapshot), and
        # both sockets have joined (ZeroMQ's slow joiner)
        for _ in range(5):
            warm = run_step(sender, output, workers, 1000, 2.0)
            if warm["delivered"] >= 0.99 * warm["sent"] and warm["latency_samples"]:
                break
        else:
            raise RuntimeError(f"--workers {n}: the warm-up never delivered every frame: {warm}")

        def measure(rate: int) -> dict[str, Any]:
            step = run_step(sender, output, workers, rate, seconds)
            show(step)
            return step

        if rates:
            steps = [measure(rate) for rate in rates]
            best = max((step["rate"] for step in steps if step["kept_up"]), default=0)
        else:
            best, steps = ladder(measure)
        return {"workers": n, "sustained": best, "split": split, "latency_sampled": sampled, "steps": steps}
    finally:
        if output is not None:
            output.close()
        if workers is not None:
            workers.close()
        sender.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", nargs=2, metavar=("SYMBOLS", "PORT_FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure (default 1,2)")
    parser.add_argument("--symbols", type=int, default=40, help="instruments (default 40)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per rate step (default 4)")
    parser.add_argument("--transport", default=None, help="runtime.transport of the workers (default: theirs)")
    parser.add_argument("--rates", default="", help="fixed rates (comma-separated) instead of the search")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return
    counts = [int(x) for x in args.workers.split(",")]
    rates = [int(x) for x in args.rates.split(",") if x]
    load_before = os.getloadavg()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)} ({os.cpu_count()} cores)", flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        for n in counts:
            runs.append(bench(n, args.symbols, args.duration, args.transport, Path(tmp), rates))
    load_after = os.getloadavg()
    print()
    for run in runs:
        # where the CPU went at the sustained rate: the workers' (all threads: the ZeroMQ
        # I/O thread runs beside the event loop, so one worker can use more than a core)
        # and this machine's other two parts of the measurement
        at = next((st for st in run["steps"] if st["rate"] == run["sustained"] and st["kept_up"]), None)
        if at is not None:
            run["cores_at_sustained"] = {
                "workers": round(at["worker_cpu_s"] / at["wall_s"], 2),
                "sender": round(at["sender_cpu_s"] / at["wall_s"], 2),
                "subscriber": round(at["subscriber_cpu_s"] / at["wall_s"], 2),
            }
            run["worker_cpu_us_per_frame"] = at["worker_cpu_us_per_frame"]
        print(
            f"--workers {run['workers']}: highest sustained {run['sustained']:,} frames/s ({run['split']['owners']});"
            f" cores used there {run.get('cores_at_sustained')}, workers' CPU per frame"
            f" {run.get('worker_cpu_us_per_frame')} us"
        )
    by_n = {run["workers"]: run["sustained"] for run in runs}
    ratio = by_n[2] / by_n[1] if by_n.get(1) and 2 in by_n else None
    if ratio is not None:
        verdict = "pass" if ratio >= TARGET_RATIO else "below target"
        print(f"ratio 2 workers / 1 worker: {ratio:.2f}x (target >= {TARGET_RATIO}x: {verdict})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    result = {
        "benchmark": "bench_workers",
        "symbols": args.symbols,
        "step_seconds": args.duration,
        "transport": args.transport or "default",
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "criterion": {
            "sender_rate": ">= 95% of the rate",
            "delivered": ">= 99% of frames sent",
            "drain_ms": f"<= {DRAIN_LIMIT_MS}",
        },
        "runs": runs,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "target_ratio": TARGET_RATIO,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
