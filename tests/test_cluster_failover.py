"""Failover between `spiceflow run --cluster` processes (real processes, a real
nats-server, the Binance simulator in the test process):

* kill -9 of a member: the survivor takes every instrument over and its books are exact;
* SIGSTOP of a member past the TTL, then SIGCONT: it steps down before owning again,
  and no instrument is ever carried by both members after that.

Waits are bounded conditions; the measured takeover time is printed, not asserted."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from runtime_helpers import wait_for
from test_cluster import exact_books, read_books

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.broadcast.wire import BookMessage
from spiceflow_core.cluster.nats_server import nats_server
from spiceflow_core.ports import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(120)]

TTL = 2.0
N = 10


@dataclass
class Member:
    name: str
    api: str
    broadcast: str
    log: Path
    process: subprocess.Popen[bytes]

    async def subscriptions(self) -> list[dict] | None:
        try:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://{self.api}/subscriptions", timeout=1.0)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def logged(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")


def start_member(tmp: Path, name: str, nats_url: str, sim, symbols: list[str], ttl: float = TTL) -> Member:
    api, zmq_port = f"127.0.0.1:{free_port()}", free_port()
    config = tmp / f"{name}.toml"
    listed = ", ".join(f'"{s}"' for s in symbols)
    config.write_text(f"""
[venues.binance]
instruments = [{listed}]
ws_url = "{sim.endpoints.ws_url}"
rest_url = "{sim.endpoints.rest_url}"
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
nats = "{nats_url}"
member = "{name}"
ttl = {ttl}
""")
    log = tmp / f"{name}.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "spiceflow_core.cli.main", "run", "--config", str(config), "--venue", "binance"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    return Member(name, api, f"tcp://127.0.0.1:{zmq_port}", log, process)


async def carried(members: list[Member]) -> dict[str, list[str]] | None:
    """symbol -> members whose runtime carries it (None if a member does not answer)."""
    out: dict[str, list[str]] = {}
    for member in members:
        subs = await member.subscriptions()
        if subs is None:
            return None
        for sub in subs:
            out.setdefault(sub["symbol"], []).append(member.name)
    return out


async def synced_on(member: Member, symbols: list[str]) -> bool:
    subs = await member.subscriptions() or []
    return {s["symbol"] for s in subs if s["state"] == "synced"} >= set(symbols)


async def until(predicate, timeout: float, what: str) -> None:
    """Wait (bounded) for an async predicate."""
    try:
        with anyio.fail_after(timeout):
            while not await predicate():
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout}s") from None


async def split_between(members: list[Member], symbols: list[str], names: set[str]) -> bool:
    c = await carried(members)
    return (
        c is not None
        and set(c) == set(symbols)
        and all(len(o) == 1 for o in c.values())
        and {o[0] for o in c.values()} == names
    )


@contextlib.asynccontextmanager
async def cluster_of_two(tmp_path: Path) -> AsyncIterator[tuple[object, list[str], list[Member], dict]]:
    from spiceflow_binance.config import SPOT
    from spiceflow_binance.simulator import BinanceSimulator

    async with (
        nats_server(tmp_path / "nats") as server,
        BinanceSimulator(
            SPOT,
            symbols=N,
            weight_limit=100_000,  # every takeover costs snapshots: no REST budget wait
        ) as sim,
    ):
        symbols = sim.symbols()
        members = [start_member(tmp_path, name, server.url, sim, symbols) for name in ("a", "b")]
        try:
            await until(lambda: split_between(members, symbols, {"a", "b"}), 40, "a split")
            latest: dict[str, BookMessage] = {}
            async with anyio.create_task_group() as tg:
                sub = Subscriber(",".join(m.broadcast for m in members), ["book.binance."], rcvhwm=1_000_000)
                sub.open()
                tg.start_soon(read_books, sub, latest)
                try:
                    await wait_for(lambda: set(latest) == set(symbols), timeout=20)
                except TimeoutError:
                    raise AssertionError(f"no book of {set(symbols) - set(latest)}; fenced {sub.fenced}") from None
                yield sim, symbols, members, latest
                tg.cancel_scope.cancel()
                sub.close()
        finally:
            for member in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member.process.pid, signal.SIGCONT)
                member.process.kill()
                member.process.wait()


async def test_kill_9_moves_every_instrument_to_the_survivor_with_exact_books(tmp_path):
    async with cluster_of_two(tmp_path) as (sim, symbols, members, latest):
        a, b = members
        b_had = [s for s, o in (await carried(members) or {}).items() if o == ["b"]]
        epochs_before = {s: latest[s].epoch for s in b_had}
        killed = time.monotonic()
        b.process.kill()
        b.process.wait()
        await until(lambda: synced_on(a, symbols), 20, "takeover")
        await wait_for(lambda: all(latest[s].epoch > epochs_before[s] for s in b_had), timeout=20)
        took = time.monotonic() - killed
        print(f"kill -9: {len(b_had)} instruments resynced on the survivor {took:.2f}s after the kill (ttl {TTL}s)")
        assert {s["symbol"] for s in await a.subscriptions() or []} == set(symbols)
        await exact_books(sim, latest, symbols)


async def test_a_member_paused_past_its_ttl_steps_down_and_never_doubles_up(tmp_path):
    async with cluster_of_two(tmp_path) as (sim, symbols, members, latest):
        a, b = members
        os.kill(b.process.pid, signal.SIGSTOP)
        # its key expires; the other member takes everything over
        await until(lambda: synced_on(a, symbols), 20, "takeover")
        os.kill(b.process.pid, signal.SIGCONT)
        await wait_for(lambda: b.logged("stepping down"), timeout=20, interval=0.05)
        # from its step-down on: never one instrument on both members, until they split again
        with anyio.fail_after(40):
            while True:
                c = await carried(members)
                if c is not None:
                    doubled = {s: o for s, o in c.items() if len(o) > 1}
                    assert not doubled, f"carried twice after the step-down: {doubled}"
                    if set(c) == set(symbols) and {o[0] for o in c.values()} == {"a", "b"}:
                        break
                await anyio.sleep(0.05)
        b_has = [s for s, o in (await carried(members) or {}).items() if o == ["b"]]
        await until(lambda: synced_on(b, b_has), 20, "b synced again")
        await exact_books(sim, latest, symbols)
