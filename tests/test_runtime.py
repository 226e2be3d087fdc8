"""The actor runtime end to end against the toy venue's loopback simulator and a real
ZeroMQ subscriber."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from runtime_helpers import Collector, assert_exact, running, settings_for, toy_registry, wait_for

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.runtime.orchestrator import Orchestrator
from spiceflow_core.testkit.toy import ToySimulator

pytestmark = pytest.mark.anyio
HERE = Path(__file__).parent


def orchestrator_for(sim: ToySimulator, symbols: list[str], **kw) -> Orchestrator:
    settings = settings_for("toy", symbols, profiles=kw.pop("profiles", ()), **kw)
    return Orchestrator(settings, toy_registry(), ["toy"], endpoint_overrides={"toy": sim.endpoints})


async def test_full_workflow_delivers_exact_books_to_a_zmq_subscriber():
    sim = ToySimulator(symbols=["AAA", "BBB", "CCC"], rate=300)
    async with sim.running(), running(orchestrator_for(sim, ["AAA", "BBB"])) as orc:
        async with (
            Subscriber(orc.broadcaster.address, ["book.toy.", "status.toy."]) as sub,
            anyio.create_task_group() as tg,
        ):
            latest = Collector(sub)
            tg.start_soon(latest.run)
            await wait_for(lambda: {"AAA", "BBB"} <= set(latest.latest) and latest.count > 50)
            assert "CCC" not in latest.latest
            msg = latest.latest["AAA"]
            assert msg.instrument == "toy.spot.AAA.USD" and msg.topic_seq > 1
            await assert_exact(sim, latest, orc.runtimes["toy"], ["AAA", "BBB"])
            # late joiners learn each feed's state from the periodic status republish
            await wait_for(lambda: any(s.state == "synced" and s.symbol == "AAA" for s in latest.status))
            tg.cancel_scope.cancel()
        subs = sim.client_frames
        assert any('"subscribe"' in f for f in subs)


async def test_ws_only_workflow_completes_at_first_heartbeat(capsys):
    sim = ToySimulator(symbols=["AAA"], heartbeat_interval=0.3)
    async with sim.running():
        orc = orchestrator_for(sim, ["AAA"], profiles=("ws-only",))
        with anyio.fail_after(10):
            code = await orc.run()
    assert code == 0
    out = capsys.readouterr().out
    assert "ws-only toy: connected after" in out and "first heartbeat after" in out
    assert orc.broadcaster is None  # no books, no broadcast in ws-only


async def test_ws_only_fails_without_heartbeat(capsys):
    sim = ToySimulator(symbols=["AAA"], heartbeat_interval=30)
    sim.silent = True
    async with sim.running():
        orc = orchestrator_for(sim, ["AAA"], profiles=("ws-only",), runtime={"first_heartbeat_timeout": 1.0})
        with anyio.fail_after(10):
            code = await orc.run()
    assert code == 1
    assert "FAILED, no heartbeat within 1s" in capsys.readouterr().out


@pytest.mark.parametrize("fault", ["reset", "drop"])
async def test_killed_connection_reconnects_resubscribes_and_resyncs(fault):
    sim = ToySimulator(symbols=["AAA", "BBB"], rate=300)
    async with sim.running(), running(orchestrator_for(sim, ["AAA", "BBB"])) as orc:
        async with (
            Subscriber(orc.broadcaster.address, ["book.toy.", "status.toy."]) as sub,
            anyio.create_task_group() as tg,
        ):
            latest = Collector(sub)
            tg.start_soon(latest.run)
            await wait_for(lambda: {"AAA", "BBB"} <= set(latest.latest))
            runtime = orc.runtimes["toy"]
            setattr(sim.faults, fault, 1)
            await wait_for(lambda: runtime.metrics.totals["reconnects"] >= 1)
            await wait_for(lambda: all(runtime.books.state_of(s) == "synced" for s in ("AAA", "BBB")))
            assert sum(f.count('"subscribe"') for f in sim.client_frames) >= 2  # resubscribed
            assert any(s.state == "stale" for s in latest.status)
            await assert_exact(sim, latest, orc.runtimes["toy"], ["AAA", "BBB"])
            tg.cancel_scope.cancel()


async def test_gap_in_one_instrument_resyncs_only_that_one():
    sim = ToySimulator(symbols=["AAA", "BBB"], rate=300)
    async with sim.running(), running(orchestrator_for(sim, ["AAA", "BBB"])) as orc:
        async with (
            Subscriber(orc.broadcaster.address, ["book.toy.", "status.toy."]) as sub,
            anyio.create_task_group() as tg,
        ):
            latest = Collector(sub)
            tg.start_soon(latest.run)
            await wait_for(lambda: {"AAA", "BBB"} <= set(latest.latest))
            runtime = orc.runtimes["toy"]
            sim.faults.gap = 1  # the next AAA update is skipped (AAA steps first)
            await wait_for(lambda: runtime.metrics.totals["gaps"] >= 1)
            await wait_for(lambda: runtime.books.state_of("AAA") == "synced")
            assert runtime.metrics.by_instrument["AAA"]["gaps"] == 1
            assert runtime.metrics.by_instrument["BBB"]["gaps"] == 0
            assert runtime.metrics.totals["reconnects"] == 0
            await assert_exact(sim, latest, orc.runtimes["toy"], ["AAA", "BBB"])
            tg.cancel_scope.cancel()


async def test_malformed_frame_is_counted_and_skipped():
    sim = ToySimulator(symbols=["AAA"], rate=300)
    async with sim.running(), running(orchestrator_for(sim, ["AAA"])) as orc:
        runtime = orc.runtimes["toy"]
        await wait_for(lambda: runtime.books.state_of("AAA") == "synced")
        sim.faults.malformed = 2
        await wait_for(lambda: runtime.metrics.totals["parse_errors"] >= 2)
        assert runtime.metrics.totals["reconnects"] == 0
        assert runtime.books.state_of("AAA") == "synced"


async def test_silent_server_triggers_the_silence_timeout_and_a_reconnect():
    sim = ToySimulator(symbols=["AAA"], rate=100)
    async with sim.running(), running(orchestrator_for(sim, ["AAA"], runtime={"silence_timeout": 0.7})) as orc:
        runtime = orc.runtimes["toy"]
        await wait_for(lambda: runtime.books.state_of("AAA") == "synced")
        sim.silent = True
        await wait_for(lambda: runtime.metrics.totals["reconnects"] >= 1, timeout=5)
        sim.silent = False
        await wait_for(lambda: runtime.books.state_of("AAA") == "synced")


async def test_refused_subscription_at_startup_ends_the_run_with_a_clear_error():
    sim = ToySimulator(symbols=["AAA"])
    sim.faults.refuse_subscribe = 1
    async with sim.running():
        orc = orchestrator_for(sim, ["AAA"])
        with anyio.fail_after(10):
            assert await orc.run() == 1


async def test_unknown_instrument_in_config_is_a_startup_error():
    sim = ToySimulator(symbols=["AAA"])
    async with sim.running():
        orc = orchestrator_for(sim, ["AAB"])
        with anyio.fail_after(10):
            assert await orc.run() == 1


def test_sigterm_stops_the_process_cleanly_within_two_seconds(tmp_path):
    script = HERE / "run_toy_demo.py"
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "READY" in line:
                break
        else:
            pytest.fail("demo did not start: " + "".join(lines))
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=5)
        elapsed = time.monotonic() - started
        rest = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, rest
    assert elapsed < 2.0, f"took {elapsed:.2f}s"
    assert "SIGTERM received: shutting down" in rest


async def test_aged_connection_is_replaced_make_before_break_without_a_gap():
    sim = ToySimulator(symbols=["AAA", "BBB"], rate=300)
    async with (
        sim.running(),
        running(orchestrator_for(sim, ["AAA", "BBB"], runtime={"max_connection_age": 0.5})) as orc,
    ):
        async with Subscriber(orc.broadcaster.address, ["book.toy."]) as sub, anyio.create_task_group() as tg:
            latest = Collector(sub)
            tg.start_soon(latest.run)
            runtime = orc.runtimes["toy"]
            await wait_for(lambda: runtime.metrics.totals["rotations"] >= 2, timeout=10)
            assert runtime.metrics.totals["gaps"] == 0 and runtime.metrics.totals["reconnects"] == 0
            assert len(runtime.connections) == 1
            assert all(runtime.books.state_of(s) == "synced" for s in ("AAA", "BBB"))
            await assert_exact(sim, latest, orc.runtimes["toy"], ["AAA", "BBB"])
            tg.cancel_scope.cancel()


async def test_instruments_are_sharded_over_connections_at_the_stream_limit():
    sim = ToySimulator(symbols=["AAA", "BBB", "CCC"], rate=100)
    settings = settings_for("toy", ["AAA", "BBB", "CCC"], profiles=())
    settings.venues["toy"] = __import__("msgspec").structs.replace(settings.venues["toy"], max_streams_per_connection=2)
    async with sim.running():
        orc = Orchestrator(settings, toy_registry(), ["toy"], endpoint_overrides={"toy": sim.endpoints})
        async with running(orc):
            await _sharded(orc)


async def _sharded(orc) -> None:
    if True:
        runtime = orc.runtimes["toy"]
        assert sorted(len(runtime.table.channels_on(c)) for c in runtime.connections) == [1, 2]
        await wait_for(lambda: all(runtime.books.state_of(s) == "synced" for s in ("AAA", "BBB", "CCC")))
        await runtime.unsubscribe("CCC")
        assert len(runtime.connections) == 1  # the connection left empty is closed


class _FlakyPolicy:
    """A sequence policy that blows up once, to prove one instrument's failure is
    contained: it is resynced and the other instruments never notice."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.armed = True

    def first(self, snapshot_sequence, delta):
        return self.inner.first(snapshot_sequence, delta)

    def next(self, last_sequence, delta):
        if self.armed and delta.sequence % 7 == 0:
            self.armed = False
            raise RuntimeError("policy bug")
        return self.inner.next(last_sequence, delta)


async def test_a_failing_book_update_resyncs_only_that_instrument():
    from spiceflow_core.book.policy import ChainPolicy

    sim = ToySimulator(symbols=["AAA", "BBB"], rate=300)
    async with sim.running(), running(orchestrator_for(sim, ["AAA", "BBB"])) as orc:
        runtime = orc.runtimes["toy"]
        await wait_for(lambda: runtime.books.state_of("BBB") == "synced")
        flaky = _FlakyPolicy(ChainPolicy())
        runtime.table.book("AAA").sync.policy = flaky
        await wait_for(lambda: not flaky.armed)
        await wait_for(lambda: runtime.metrics.by_instrument["AAA"]["resyncs"] >= 1)
        await wait_for(lambda: runtime.books.state_of("AAA") == "synced")
        assert runtime.metrics.by_instrument["BBB"]["gaps"] == 0
        assert runtime.metrics.totals["actor_restarts"] == 0


async def test_a_crashed_actor_is_restarted_by_its_supervisor(capfd):
    sim = ToySimulator(symbols=["AAA"], rate=300)
    async with sim.running(), running(orchestrator_for(sim, ["AAA"])) as orc:
        runtime = orc.runtimes["toy"]
        await wait_for(lambda: runtime.books.state_of("AAA") == "synced")
        router = runtime.router
        original = router.route
        calls = {"n": 0}

        def crash_once(conn, frame, ts):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("router bug")
            return original(conn, frame, ts)

        router.route = crash_once
        await wait_for(lambda: runtime.metrics.totals["actor_restarts"] == 1)
        before = runtime.metrics.totals["book_updates"]
        await wait_for(lambda: runtime.metrics.totals["book_updates"] > before + 20)
        await wait_for(lambda: runtime.books.state_of("AAA") == "synced")


async def test_a_subscribe_racing_a_failed_then_successful_reconnect_completes():
    sim = ToySimulator(symbols=["AAA", "BBB"], rate=200)
    runtime_settings = {"reconnect_initial": 0.2, "reconnect_max": 0.4}
    async with sim.running(), running(orchestrator_for(sim, ["AAA"], runtime=runtime_settings)) as orc:
        runtime = orc.runtimes["toy"]
        await wait_for(lambda: runtime.books.state_of("AAA") == "synced")
        sim.faults.refuse_connect = 2  # the next two handshakes are answered 503
        sim.faults.drop = 1  # the connection goes down
        await wait_for(lambda: not any(c.up for c in runtime.connections.values()))
        # subscribe while the connection is down and its reconnects fail
        with anyio.fail_after(15):
            sub = await runtime.subscribe("BBB")
        assert sub.symbol == "BBB" and sub.feed == "book"
        assert sim.faults.refuse_connect == 0  # both failed attempts happened
        await wait_for(lambda: all(runtime.books.state_of(s) == "synced" for s in ("AAA", "BBB")))
        assert runtime.metrics.totals["reconnects"] == 1
        assert {s.symbol for s in runtime.list_subscriptions()} == {"AAA", "BBB"}


async def test_a_resync_requested_while_the_resync_actor_is_in_supervisor_backoff_is_served():
    from spiceflow_core.book.policy import ChainPolicy

    sim = ToySimulator(symbols=["AAA", "BBB"], rate=300)
    async with sim.running(), running(orchestrator_for(sim, ["AAA", "BBB"])) as orc:
        runtime = orc.runtimes["toy"]
        books = runtime.books
        await wait_for(lambda: all(books.state_of(s) == "synced" for s in ("AAA", "BBB")))
        async with Subscriber(orc.broadcaster.address, ["book.toy."]) as sub, anyio.create_task_group() as tg:
            latest = Collector(sub)
            tg.start_soon(latest.run)
            original = books._resync
            calls = {"n": 0}

            async def broken_twice(*args):
                calls["n"] += 1
                if calls["n"] <= 2:
                    raise RuntimeError("resync actor bug")
                await original(*args)

            books._resync = broken_twice
            sim.faults.gap = 1  # AAA gaps; serving its resync crashes the resync actor, twice
            await wait_for(lambda: runtime.metrics.totals["actor_restarts"] >= 2)
            # the actor waits in its supervisor's backoff: BBB's book fails and asks for a resync
            flaky = _FlakyPolicy(ChainPolicy())
            runtime.table.book("BBB").sync.policy = flaky
            await wait_for(lambda: not flaky.armed)
            await wait_for(lambda: all(books.state_of(s) == "synced" for s in ("AAA", "BBB")), timeout=10)
            assert runtime.metrics.by_instrument["BBB"]["resyncs"] >= 1
            assert calls["n"] >= 4  # AAA twice (crashed), then AAA and BBB served
            await assert_exact(sim, latest, runtime, ["AAA", "BBB"])
            tg.cancel_scope.cancel()
