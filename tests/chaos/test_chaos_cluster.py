"""Chaos, scaled out: three ``spiceflow run --cluster`` worker processes share 60 Binance
spot and Deribit instruments through a 3-node NATS cluster (JetStream KV buckets with 3
replicas); the simulators run in the test process, where the oracle judges every book
any worker publishes (one subscriber on the three workers' ZeroMQ addresses, fencing by
ownership epoch).

Events, in order: ``kill -9`` of a worker; its restart; ``kill -9`` of the nats-server
leading the members bucket; ``SIGSTOP`` of a worker past its TTL, then ``SIGCONT``.
After each: the members bucket lists exactly the live workers, every instrument is
owned (owners bucket) by the member rendezvous hashing gives it and carried by that
member's runtime only, every book was published again at its owner's epoch and equals
the simulator's truth once the market is frozen, and no wrong book was ever published.
At the end ``spiceflow status --cluster --json`` shows the same owners.

A second test kills the members bucket's leader under a TTL longer than the election:
then nothing may move at all (no step-down, same owners and epochs, nothing fenced).

Waits are bounded conditions; the time from each event to all books resynced is
printed, not asserted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from oracle import Oracle, TruthHistory, _norm, _prefix_ok

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.broadcast.wire import BookMessage
from spiceflow_core.cluster import control
from spiceflow_core.cluster import keys as K
from spiceflow_core.cluster.nats_server import NatsServer, nats_cluster
from spiceflow_core.cluster.rendezvous import assign
from spiceflow_core.cluster.store import ClusterStore, open_store
from spiceflow_core.ports import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(180)]

#: short, so that a dead or paused worker's instruments move quickly
TTL = 2.0
#: longer than a NATS stream's leader election (5-6.5 s measured here, with a wide margin)
#: plus a heartbeat period (ttl/3): members keep their lease through one
LONG_TTL = 15.0
DEPTH = 25  # the workers' default book depth
N_BINANCE = 30
N_DERIBIT = 30
#: longest wait for the cluster to settle and every book to be published again
SETTLE_S = 40.0
#: longest wait for a frozen market's last update to be published
EXACT_S = 20.0
BUCKETS = (K.MEMBERS_BUCKET, K.DESIRED_BUCKET, K.OWNERS_BUCKET, K.STATUS_BUCKET)


# -- the workers -----------------------------------------------------------------------
@dataclass
class Worker:
    name: str
    config: Path
    cluster_url: str
    api: str
    broadcast: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "spiceflow_core.cli.main", "run", "--config", str(self.config)]
        cmd += ["--venue", "binance", "--venue", "deribit", "--cluster", self.cluster_url, "--member", self.name]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.config.parent)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)  # a stopped process dies only once resumed
            self.process.kill()
            self.process.wait()

    def logged(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")

    async def carried(self, client: httpx.AsyncClient) -> dict[tuple[str, str], str] | None:
        """(venue, symbol) -> subscription state in this worker's runtime (None: no answer)."""
        try:
            response = await client.get(f"http://{self.api}/subscriptions", timeout=2.0)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return {(s["venue"], s["symbol"]): s["state"] for s in response.json()}


def write_config(tmp: Path, name: str, sims: dict[str, Any], symbols: dict[str, list[str]], ttl: float) -> Worker:
    api, zmq_port = f"127.0.0.1:{free_port()}", free_port()
    venues = ""
    for venue, sim in sims.items():
        listed = ", ".join(f'"{s}"' for s in symbols[venue])
        venues += f"""
[venues.{venue}]
instruments = [{listed}]
ws_url = "{sim.endpoints.ws_url}"
rest_url = "{sim.endpoints.rest_url}"
"""
    config = tmp / f"{name}.toml"
    config.write_text(f"""{venues}
[api]
address = "{api}"
[broadcast]
address = "tcp://127.0.0.1:{zmq_port}"
status_interval = 1.0
[runtime]
reconnect_initial = 0.05
reconnect_max = 0.5
ack_timeout = 3.0
[cluster]
ttl = {ttl}
replicas = 3
""")
    return Worker(name, config, "", api, f"tcp://127.0.0.1:{zmq_port}", tmp / f"{name}.log")


# -- the oracle, one per venue -----------------------------------------------------------
class Tap:
    """The oracle's subscriber, noting when each symbol's last book arrived."""

    def __init__(self, sub: Subscriber) -> None:
        self.sub = sub
        self.at: dict[str, float] = {}
        #: the longest time between two books of one symbol since ``longest_gap`` was reset
        self.longest_gap = 0.0

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for received in self.sub:
            if isinstance(received.message, BookMessage):
                now = time.monotonic()
                previous = self.at.get(received.message.symbol)
                if previous is not None:
                    self.longest_gap = max(self.longest_gap, now - previous)
                self.at[received.message.symbol] = now
            yield received

    def close(self) -> None:
        self.sub.close()


@dataclass
class Judge:
    venue: str
    sim: Any
    symbols: list[str]
    history: TruthHistory
    tap: Tap
    oracle: Oracle


@dataclass
class Cluster:
    workers: dict[str, Worker]
    nats: list[NatsServer]
    store: ClusterStore
    judges: list[Judge]
    http: httpx.AsyncClient
    started: float
    live: set[str] = field(default_factory=set)
    #: instrument "venue:symbol" -> owner epoch, as of the last settled check
    epochs: dict[str, int] = field(default_factory=dict)

    @property
    def instruments(self) -> list[tuple[str, str]]:
        return [(j.venue, s) for j in self.judges for s in j.symbols]

    async def ownership_problem(self) -> str | None:
        """None when the members bucket lists exactly the live workers and every instrument
        is owned by its rendezvous member and carried by that member's runtime only,
        synced; else what is not so yet."""
        try:
            with anyio.fail_after(1.0):  # NATS electing a leader: the next poll reads again
                view = await control.describe(self.store)
        except Exception as exc:
            return f"describe: {type(exc).__name__}: {exc}"
        members = set(view["members"])
        if members != self.live:
            return f"members {sorted(members)}, live {sorted(self.live)}"
        keys = {K.instrument_key(v, s): (v, s) for v, s in self.instruments}
        expected = {keys[k]: m for k, m in assign(keys, self.live).items()}
        carried: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for name in sorted(self.live):
            states = await self.workers[name].carried(self.http)
            if states is None:
                return f"{name}: no answer from its API"
            for instrument, state in states.items():
                carried.setdefault(instrument, []).append((name, state))
        epochs: dict[str, int] = {}
        for (venue, symbol), member in expected.items():
            owner = view["owners"].get(f"{venue}:{symbol}")
            if owner is None or owner["member"] != member:
                return f"{venue}:{symbol} owned by {owner}, rendezvous says {member}"
            if carried.get((venue, symbol)) != [(member, "synced")]:
                return f"{venue}:{symbol} carried by {carried.get((venue, symbol))}, owner {member}"
            epochs[f"{venue}:{symbol}"] = owner["epoch"]
        extra = set(carried) - set(expected)
        if extra:
            return f"carried but not desired: {sorted(extra)[:5]}"
        self.epochs = epochs
        return None

    def stale_books(self, since: float) -> list[str]:
        """Instruments whose last book is older than ``since`` or not at its owner's epoch."""
        out = []
        for j in self.judges:
            for s in j.symbols:
                msg = j.oracle.v.latest.get(s)
                if msg is None or j.tap.at.get(s, 0.0) < since or msg.epoch != self.epochs.get(f"{j.venue}:{s}"):
                    out.append(f"{j.venue}:{s}")
        return out

    async def settle(self, since: float, what: str) -> float:
        """Wait until ownership is right and every book was published after ``since`` at
        its owner's epoch; the seconds that took from ``since``."""
        problem: str | None = "not checked"
        stale: list[str] = []
        with anyio.move_on_after(SETTLE_S):
            while True:
                problem = await self.ownership_problem()
                if problem is None:
                    stale = self.stale_books(since)
                    if not stale:
                        return time.monotonic() - since
                    problem = f"{len(stale)} book(s) not published again at their owner's epoch: {stale[:5]}"
                await anyio.sleep(0.1)
        raise AssertionError(f"{what}: not settled within {SETTLE_S:.0f}s: {problem}")

    async def exact(self, what: str) -> None:
        """Freeze both markets; each instrument's last published book must reach the
        truth's last update and equal it level by level. A book that cannot catch up while
        frozen (a resync waiting for the next update) -> resume briefly and try again."""
        deadline = time.monotonic() + EXACT_S

        def lagging() -> list[str]:
            out = []
            for j in self.judges:
                for s in j.symbols:
                    msg = j.oracle.v.latest.get(s)
                    if msg is None or msg.sequence != j.history.latest(s):
                        out.append(f"{j.venue}:{s}")
            return out

        while True:
            for j in self.judges:
                j.sim.paused = True
            try:
                with anyio.move_on_after(3.0):
                    while lagging():
                        await anyio.sleep(0.02)
                lag = lagging()
                if not lag:
                    for j in self.judges:
                        for s in j.symbols:
                            seq, bids, asks = j.sim.truth_top(s, DEPTH)
                            msg = j.oracle.v.latest[s]
                            assert msg.sequence == seq, (what, j.venue, s, msg.sequence, seq)
                            assert _prefix_ok(_norm(msg.bids), _norm(bids), DEPTH), (what, j.venue, s, "bids")
                            assert _prefix_ok(_norm(msg.asks), _norm(asks), DEPTH), (what, j.venue, s, "asks")
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"{what}: last books behind the frozen truth: {lag[:8]} ({len(lag)})")
            finally:
                for j in self.judges:
                    j.sim.paused = False
            await anyio.sleep(0.3)

    def assert_no_wrong_books(self, what: str) -> None:
        for j in self.judges:
            v = j.oracle.v
            assert v.wrong == 0, f"{what}: {v.wrong} wrong {j.venue} books published: {v.wrong_examples}"

    async def after(self, since: float, what: str) -> float:
        took = await self.settle(since, what)
        await self.exact(what)
        self.assert_no_wrong_books(what)
        return took


async def wait_until(predicate: Callable[[], Awaitable[bool] | bool], timeout: float, what: str) -> None:
    with anyio.move_on_after(timeout):
        while True:
            value = predicate()
            if not isinstance(value, bool):
                value = await value
            if value:
                return
            await anyio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


async def bucket_replicas(url: str) -> dict[str, int]:
    """The replica count of each KV bucket's stream, once the workers created them all."""
    import nats

    nc = await nats.connect(url.split(","), connect_timeout=2)
    try:
        js = nc.jetstream(timeout=2)
        out: dict[str, int] = {}
        with anyio.fail_after(30):
            while len(out) < len(BUCKETS):
                for bucket in BUCKETS:
                    if bucket not in out:
                        with contextlib.suppress(Exception):
                            out[bucket] = (await js.stream_info(f"KV_{bucket}")).config.num_replicas or 1
                await anyio.sleep(0.1)
        return out
    finally:
        await nc.close()


async def stream_leader(store: ClusterStore, bucket: str) -> str:
    info = await store.nc.jetstream(timeout=5).stream_info(f"KV_{bucket}")
    assert info.cluster is not None and info.cluster.leader, info
    return str(info.cluster.leader)


@contextlib.asynccontextmanager
async def cluster(tmp: Path, *, ttl: float = TTL) -> AsyncIterator[Cluster]:
    from spiceflow_binance.config import SPOT
    from spiceflow_binance.simulator import BinanceSimulator
    from spiceflow_deribit.simulator import DeribitSimulator

    binance = BinanceSimulator(SPOT, symbols=N_BINANCE, rate=300, levels=300, weight_limit=100_000)
    deribit = DeribitSimulator(instruments=N_DERIBIT, update_interval=0.1, seed=11, subscribe_cost=1, max_credits=1e9)
    async with nats_cluster(3) as servers, binance, deribit:
        url = ",".join(s.url for s in servers)
        sims = {"binance": binance, "deribit": deribit}
        symbols = {venue: sim.symbols() for venue, sim in sims.items()}
        assert len(symbols["binance"]) == N_BINANCE and len(symbols["deribit"]) == N_DERIBIT
        workers = {name: write_config(tmp, name, sims, symbols, ttl) for name in ("w0", "w1", "w2")}
        judges = []
        async with contextlib.AsyncExitStack() as stack:
            try:
                addresses = ",".join(w.broadcast for w in workers.values())
                async with anyio.create_task_group() as tg:
                    # the truth is recorded and the oracle listening before any worker
                    # starts: every book a worker publishes can be judged
                    for venue, sim in sims.items():
                        history = TruthHistory(sim, symbols[venue], DEPTH, keep=3000)
                        sub = Subscriber(addresses, [f"book.{venue}."], rcvhwm=1_000_000)
                        sub.open()
                        tap = Tap(sub)
                        oracle = Oracle(tap, history)
                        tg.start_soon(oracle.run)  # closes the socket itself when cancelled
                        judges.append(Judge(venue, sim, symbols[venue], history, tap, oracle))
                    started = time.monotonic()
                    for worker in workers.values():
                        worker.cluster_url = url
                        worker.start()
                    replicas = await bucket_replicas(url)
                    assert replicas == {b: 3 for b in BUCKETS}, replicas
                    store = await stack.enter_async_context(open_store(url, ttl=ttl, replicas=3))
                    http = await stack.enter_async_context(httpx.AsyncClient())
                    yield Cluster(workers, list(servers), store, judges, http, started, live=set(workers))
                    tg.cancel_scope.cancel()
            finally:
                for worker in workers.values():
                    worker.kill()
                for j in judges:
                    v = j.oracle.v
                    print(
                        f"{j.venue}: books judged {v.checked}, wrong {v.wrong}, unverifiable {v.unverifiable}, "
                        f"missed {v.missed}, short {v.short}, fenced {j.tap.sub.fenced}"
                    )


async def test_three_workers_survive_worker_and_nats_failures_with_exact_books(tmp_path):
    async with cluster(tmp_path) as c:

        async def event(name: str, since: float) -> None:
            took = await c.after(since, name)
            print(f"{name}: every instrument owned once and every book resynced and exact {took:.2f}s after it")

        await event("initial sync (from the workers' start)", c.started)

        # 1. kill -9 of a worker: the others take its instruments over once its key expires
        w0 = c.workers["w0"]
        t = time.monotonic()
        w0.kill()
        c.live.discard("w0")
        await event("kill -9 worker", t)

        # 2. its restart (same member id, same ZeroMQ address): it takes its share back
        t = time.monotonic()
        w0.start()
        c.live.add("w0")
        await event("restart worker", t)

        # 3. kill -9 of the nats-server leading the members bucket: its stream elects a new
        # leader (seconds without heartbeats: members whose lease ran out step down)
        leader = await stream_leader(c.store, K.MEMBERS_BUCKET)
        node = next(s for s in c.nats if s.name == leader)
        t = time.monotonic()
        node.kill()
        await event(f"kill -9 nats node {leader}", t)

        # 4. SIGSTOP of a worker past its TTL (its key expires: the others take over), then
        # SIGCONT: it steps down (its instruments moved meanwhile) before owning again
        w1 = c.workers["w1"]
        step_downs = w1.log.read_text(errors="replace").count("stepping down")
        t = time.monotonic()
        w1.signal(signal.SIGSTOP)
        c.live.discard("w1")
        await event("SIGSTOP worker (takeover)", t)
        t = time.monotonic()
        w1.signal(signal.SIGCONT)
        c.live.add("w1")
        await wait_until(
            lambda: w1.log.read_text(errors="replace").count("stepping down") > step_downs,
            SETTLE_S,
            "the resumed worker stepping down",
        )
        await event("SIGCONT worker", t)

        # the CLI reads the same ownership (its URL list still names the dead node)
        cli = [sys.executable, "-m", "spiceflow_core.cli.main", "status", "--cluster", w1.cluster_url, "--json"]
        shown = json.loads((await anyio.run_process(cli)).stdout)
        assert set(shown["members"]) == c.live
        assert {k: o["epoch"] for k, o in shown["owners"].items()} == c.epochs
        for j in c.judges:  # every book judged (none older than the truth's history), none lost
            v = j.oracle.v
            assert v.checked > 1_000 and v.unverifiable == 0 and v.missed == 0, (j.venue, v)


async def test_a_nats_leader_election_within_the_ttl_moves_nothing(tmp_path):
    """The nats-server leading the members bucket dies; with a TTL longer than the
    election, every member keeps its lease (its heartbeat is retried until the new
    leader answers): no step-down, no instrument changes owner or epoch, no book fenced,
    and the books are exact afterwards."""
    async with cluster(tmp_path, ttl=LONG_TTL) as c:
        await c.after(c.started, "initial sync")
        before = dict(c.epochs)
        beats = {k: item.revision for k, item in (await c.store.snapshot(c.store.members)).items()}
        leader = await stream_leader(c.store, K.MEMBERS_BUCKET)
        fenced = {j.venue: j.tap.sub.fenced for j in c.judges}  # the start's moves fence some
        for j in c.judges:
            j.tap.longest_gap = 0.0
        t = time.monotonic()
        next(s for s in c.nats if s.name == leader).kill()

        async def every_member_beat_again() -> bool:
            with anyio.move_on_after(1.0):
                now = await c.store.snapshot(c.store.members)
                return set(now) == set(beats) and all(now[k].revision > rev for k, rev in beats.items())
            return False

        await wait_until(every_member_beat_again, SETTLE_S, "a heartbeat of every member after the election")
        took = await c.after(t, "nats leader election")
        print(
            f"kill -9 nats node {leader} (ttl {LONG_TTL}s): every member beat again and every book checked "
            f"{took:.2f}s after it; longest silence of a book "
            f"{max(j.tap.longest_gap for j in c.judges):.2f}s"
        )
        assert c.epochs == before
        for w in c.workers.values():
            assert not w.logged("stepping down"), w.name
        for j in c.judges:
            assert j.tap.sub.fenced == fenced[j.venue] and j.oracle.v.missed == 0, (j.venue, fenced, j.tap.sub.fenced)
