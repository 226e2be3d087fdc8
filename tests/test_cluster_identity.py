"""One member id, one process: joining creates the member's key only if it is absent.

Against a real nats-server:

* a second member with a live member's id is refused (``MemberIdInUse``, naming the
  live one's pid and host) and the live one never notices; two new members with one id
  starting at once: exactly one joins;
* a key left by a dead incarnation is waited for (at most the TTL and a margin), then
  taken; a member rejoining over its own key takes it at once;
* the command line: a second ``spiceflow run --member X`` exits 2 with one line while
  the first keeps publishing at the same epochs; a member killed with SIGKILL and
  restarted at once waits for its old lease, then owns its instruments again."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from runtime_helpers import captured_logs, wait_for
from test_cluster import member_settings, read_books
from test_cluster_failover import Member, start_member, synced_on, until

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.broadcast.wire import BookMessage
from spiceflow_core.cluster import keys as K
from spiceflow_core.cluster.member import LEASE_MARGIN_S, ClusterMember, MemberIdInUse
from spiceflow_core.cluster.nats_server import nats_server
from spiceflow_core.cluster.store import ClusterStore, open_store
from spiceflow_core.plugin.registry import discover
from spiceflow_core.ports import free_port
from spiceflow_core.runtime.orchestrator import Orchestrator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

#: the members bucket's TTL in the in-process tests
TTL = 1.0


def idle_member(store: ClusterStore, member: str) -> ClusterMember:
    """A cluster member whose orchestrator runs no venue: membership only."""
    settings = member_settings(store_url(store), member, [], ttl=TTL)
    return ClusterMember(Orchestrator(settings, discover(), []), store, settings.cluster)


def store_url(store: ClusterStore) -> str:
    return str(store.nc.connected_url.geturl())


@contextlib.asynccontextmanager
async def stores(n: int) -> AsyncIterator[list[ClusterStore]]:
    """``n`` connections to one fresh nats-server (each member its own, as processes)."""
    async with nats_server() as server, contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(open_store(server.url, ttl=TTL)) for _ in range(n)]


def holder(item) -> K.MemberInfo:
    assert item is not None
    return K.decode(item.value, K.MemberInfo)


# -- members in this process ---------------------------------------------------------------
async def test_a_second_member_with_a_live_members_id_is_refused():
    async with stores(2) as (store_a, store_b):
        first, second = idle_member(store_a, "feed-1"), idle_member(store_b, "feed-1")
        async with anyio.create_task_group() as tg:
            await tg.start(first.run)
            await wait_for(lambda: first.joined, timeout=10)
            started = time.monotonic()
            with anyio.fail_after(TTL + LEASE_MARGIN_S + 5), pytest.raises(MemberIdInUse) as refused:
                await second.run()
            # refused at the live member's next heartbeat, not after waiting for a lease
            assert time.monotonic() - started < TTL
            assert str(refused.value) == (
                f"member id 'feed-1' is already live in the cluster (pid {os.getpid()} on host "
                f"{socket.gethostname()}, heartbeating); give each process its own --member"
            )
            assert not second.joined
            await anyio.sleep(2 * TTL)  # an overwritten key would have made it step down by now
            assert first.joined and first.step_downs == 0
            assert holder(await store_a.get(store_a.members, "feed-1")).incarnation == first.incarnation
            tg.cancel_scope.cancel()


async def test_two_new_members_with_one_id_at_once_one_joins_the_other_is_refused():
    async with stores(2) as both:
        members = [idle_member(store, "feed-1") for store in both]
        refused: list[ClusterMember] = []

        async def attempt(member: ClusterMember) -> None:
            with contextlib.suppress(MemberIdInUse):
                await member.run()
            refused.append(member)

        async with anyio.create_task_group() as tg:
            for member in members:
                tg.start_soon(attempt, member)
            await wait_for(lambda: refused, timeout=TTL + LEASE_MARGIN_S + 5)
            (loser,) = refused
            (winner,) = [m for m in members if m is not loser]
            assert winner.joined and not loser.joined
            assert holder(await both[0].get(both[0].members, "feed-1")).incarnation == winner.incarnation
            tg.cancel_scope.cancel()


async def test_a_dead_incarnations_key_is_waited_for_then_taken():
    async with stores(1) as (store,):
        # what a killed process leaves: its key, no more heartbeats
        dead = K.MemberInfo(member="feed-1", venues=["binance"], pid=4242, host="old-host", incarnation="dead")
        await store.put(store.members, "feed-1", K.encode(dead))
        written = time.monotonic()
        member = idle_member(store, "feed-1")
        with captured_logs() as lines:
            async with anyio.create_task_group() as tg:
                await tg.start(member.run)
                await wait_for(lambda: member.joined, timeout=TTL + LEASE_MARGIN_S + 5)
                took = time.monotonic() - written
                assert holder(await store.get(store.members, "feed-1")).incarnation == member.incarnation
                tg.cancel_scope.cancel()
        assert 0.9 * TTL <= took <= TTL + LEASE_MARGIN_S + 0.5, took
        assert any(
            re.fullmatch(
                r"waited \d+\.\ds for the lease of the previous incarnation \(pid 4242 on old-host\) to expire", m
            )
            for m in lines
        ), lines


async def test_a_member_rejoining_over_its_own_key_takes_it_at_once():
    """After a step-down (its lease lost by its own clock) the key may still be there:
    written by this process, it is no one else's to wait for."""
    async with stores(1) as (store,):
        member = idle_member(store, "feed-1")
        await member._join()
        first = member._member_rev
        with anyio.fail_after(0.5):  # far below the TTL: no waiting
            await member._join()
        assert member._member_rev > first
        assert holder(await store.get(store.members, "feed-1")).incarnation == member.incarnation


# -- the command line ----------------------------------------------------------------------
#: the CLI tests' TTL: the killed member's key outlives the restarted process's start
CLI_TTL = 3.0


@contextlib.asynccontextmanager
async def one_member(tmp: Path) -> AsyncIterator[tuple[str, object, list[str], list[Member]]]:
    """A nats-server, the Binance simulator and member feed-1 carrying every symbol,
    synced; yields (NATS URL, simulator, symbols, members started: killed at the end)."""
    from spiceflow_binance.config import SPOT
    from spiceflow_binance.simulator import BinanceSimulator

    async with (
        nats_server(tmp / "nats") as server,
        BinanceSimulator(SPOT, symbols=3, weight_limit=100_000) as sim,
    ):
        symbols = sim.symbols()
        members = [start_member(tmp, "feed-1", server.url, sim, symbols, ttl=CLI_TTL)]
        try:
            await until(lambda: synced_on(members[0], symbols), 20, "feed-1 synced")
            yield server.url, sim, symbols, members
        finally:
            for member in members:
                member.process.kill()
                member.process.wait()


async def owner_epochs(url: str, symbols: list[str]) -> dict[str, tuple[str, int]]:
    async with open_store(url) as store:
        owners = await store.snapshot(store.owners)
    out = {}
    for symbol in symbols:
        record = K.decode(owners[K.instrument_key("binance", symbol)].value, K.Owner)
        out[symbol] = (record.member, record.epoch)
    return out


@pytest.mark.timeout(30)
async def test_cli_a_second_run_with_the_same_member_exits_2_while_the_first_keeps_publishing(tmp_path):
    async with one_member(tmp_path) as (url, _, symbols, (first,)):
        latest: dict[str, BookMessage] = {}
        async with Subscriber(first.broadcast, ["book.binance."]) as sub, anyio.create_task_group() as tg:
            tg.start_soon(read_books, sub, latest)
            await wait_for(lambda: set(latest) == set(symbols), timeout=10)
            epochs = {s: latest[s].epoch for s in symbols}
            assert all(epochs.values())
            cmd = [sys.executable, "-m", "spiceflow_core.cli.main", "run", "--config", str(tmp_path / "feed-1.toml")]
            cmd += ["--venue", "binance", "--api", f"127.0.0.1:{free_port()}"]
            cmd += ["--broadcast", f"tcp://127.0.0.1:{free_port()}"]
            with anyio.fail_after(15):
                second = await anyio.run_process(cmd, check=False, cwd=tmp_path)
            stderr = second.stderr.decode(errors="replace")
            assert second.returncode == 2, stderr
            expected = (
                f"spiceflow run: error: member id 'feed-1' is already live in the cluster (pid {first.process.pid} "
                f"on host {socket.gethostname()}, heartbeating); give each process its own --member"
            )
            assert stderr.splitlines().count(expected) == 1, stderr
            assert "Traceback" not in stderr
            # the first one goes on as if nothing happened: same epochs (a step-down and a
            # new claim would raise them), books keep coming
            await anyio.sleep(CLI_TTL)
            latest.clear()
            await wait_for(lambda: set(latest) == set(symbols), timeout=10)
            assert {s: latest[s].epoch for s in symbols} == epochs
            tg.cancel_scope.cancel()
        assert first.process.poll() is None
        assert not first.logged("stepping down")
        assert await owner_epochs(url, symbols) == {s: ("feed-1", e) for s, e in epochs.items()}


@pytest.mark.timeout(40)
async def test_cli_a_member_killed_and_restarted_at_once_waits_for_its_old_lease_then_owns_again(tmp_path):
    async with one_member(tmp_path) as (url, sim, symbols, members):
        first = members[0]
        before = await owner_epochs(url, symbols)
        first.process.kill()
        first.process.wait()
        restarted = start_member(tmp_path, "feed-1", url, sim, symbols, ttl=CLI_TTL)
        members.append(restarted)
        await until(lambda: synced_on(restarted, symbols), CLI_TTL + LEASE_MARGIN_S + 15, "the restart synced")
        log = restarted.log.read_text(errors="replace")  # both incarnations write to it
        waited = re.search(r"waited (\d+\.\d)s for the lease of the previous incarnation \(pid (\d+) on ", log)
        assert waited is not None, log[-3000:]
        assert int(waited[2]) == first.process.pid
        assert float(waited[1]) <= CLI_TTL + LEASE_MARGIN_S
        assert "already live" not in log
        assert await owner_epochs(url, symbols) == {s: ("feed-1", e + 1) for s, (_, e) in before.items()}


@pytest.mark.timeout(40)
async def test_cli_workers_stop_with_exit_2_when_a_workers_id_is_live(tmp_path):
    """``--workers`` restarts a failed worker, but not one refused for its configuration:
    restarted, it would be refused again, forever."""
    async with stores(1) as (store,), anyio.create_task_group() as tg:
        live = idle_member(store, "worker-0")
        await tg.start(live.run)
        await wait_for(lambda: live.joined, timeout=10)
        cmd = [sys.executable, "-m", "spiceflow_core.cli.main", "run", "--workers", "1", "--profile", "demo"]
        cmd += ["--venue", "binance", "--cluster", store_url(store), "--api", f"127.0.0.1:{free_port()}"]
        cmd += ["--broadcast", f"tcp://127.0.0.1:{free_port()}"]
        with anyio.fail_after(25):
            parent = await anyio.run_process(cmd, check=False, cwd=tmp_path)
        stderr = parent.stderr.decode(errors="replace")
        assert parent.returncode == 2, stderr[-3000:]
        assert stderr.count("spiceflow run: error: member id 'worker-0' is already live in the cluster") == 1
        assert "restarting it" not in stderr
        assert live.joined and live.step_downs == 0
        tg.cancel_scope.cancel()
