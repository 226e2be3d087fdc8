"""The full pipeline against the Bybit simulator over real sockets: simulator
WebSocket (+ REST) -> WebSocketActor -> router -> books -> ZeroMQ -> subscriber, for the
linear and spot venues.

- books exact against the simulator's truth, trades and tops published;
- a gap in ``u`` resyncs by resubscribing that topic only, exact afterwards;
- a service restart (a snapshot with ``u = 1``) replaces the book at once, no gap;
- dropped / reset connections reconnect and resubscribe, exact afterwards;
- the client keeps Bybit's documented limits (spot: 10 args per request).
"""

from __future__ import annotations

import anyio
import pytest
from runtime_helpers import (
    Collector,
    assert_exact,
    captured_logs,
    collecting,
    heal_fault,
    running,
    settings_for,
    wait_for,
)

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.plugin.registry import discover
from spiceflow_core.runtime.orchestrator import Orchestrator

pytestmark = pytest.mark.anyio

LINEAR = "bybit-linear"
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture
def logs():
    with captured_logs() as lines:
        yield lines


def orchestrator(venue: str, sim, symbols: list[str], registry=None, *, profiles=(), **extra) -> Orchestrator:
    settings = settings_for(venue, symbols, profiles=profiles, **extra)
    return Orchestrator(settings, registry or discover(), [venue], endpoint_overrides={venue: sim.endpoints})


async def test_books_are_exact_and_trades_and_tops_flow():
    registry = discover()
    async with registry.get(LINEAR).simulator(symbols=SYMBOLS, rate=50) as sim:
        settings_extra = {"venues": {LINEAR: {"instruments": SYMBOLS, "feeds": ["book", "trades", "top"]}}}
        orc = orchestrator(LINEAR, sim, SYMBOLS, registry, **settings_extra)
        async with running(orc):
            runtime = orc.runtimes[LINEAR]
            async with (
                Subscriber(orc.broadcaster.address, [f"book.{LINEAR}.", f"trade.{LINEAR}.", f"top.{LINEAR}."]) as sub,
                anyio.create_task_group() as tg,
            ):
                got = Collector(sub)
                kinds: set[str] = set()

                async def watch() -> None:
                    async for received in sub:
                        kinds.add(type(received.message).__name__)
                        if type(received.message).__name__ == "BookMessage":
                            got.books.append(received.message)
                            got.latest[received.message.symbol] = received.message

                tg.start_soon(watch)
                await wait_for(lambda: set(SYMBOLS) <= set(got.latest))
                await assert_exact(sim, got, runtime, SYMBOLS, settle=0.15)
                await wait_for(lambda: len(kinds) >= 3, timeout=10)
                tg.cancel_scope.cancel()
            totals = runtime.metrics.totals
            assert totals["gaps"] == 0 and totals["parse_errors"] == 0
            # Bybit sends no checksum: nothing is verified, nothing fails
            assert all(not m.checksum_verified for m in got.books)
    assert sim.violations == []


FAULTS = {
    "drop": (lambda f: setattr(f, "drop", 1), ("reconnects",), "connection lost"),
    "reset": (lambda f: setattr(f, "reset", 1), ("reconnects",), "connection lost"),
    "gap": (lambda f: setattr(f, "gap", 1), ("gaps", "resyncs"), "gap:"),
    "bad_size": (lambda f: setattr(f, "bad_size", 1), ("gaps",), "gap:"),
    "malformed": (lambda f: setattr(f, "malformed", 2), ("parse_errors",), "bad frame skipped"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_heals_with_an_exact_book(fault, logs):
    registry = discover()
    async with registry.get(LINEAR).simulator(symbols=SYMBOLS, rate=50) as sim:
        async with running(orchestrator(LINEAR, sim, SYMBOLS, registry)) as orc:
            runtime = orc.runtimes[LINEAR]
            async with collecting(orc, f"book.{LINEAR}.") as got:
                subscribes = len(sim.requests("subscribe"))
                await heal_fault(sim, runtime, got, SYMBOLS, FAULTS[fault], logs, settle=0.15)
                if fault == "gap":
                    # that topic alone was resubscribed and rebuilt from a fresh snapshot
                    assert runtime.metrics.totals["reconnects"] == 0
                    assert len(sim.requests("unsubscribe")) >= 1
                    assert len(sim.requests("subscribe")) > subscribes
                if fault in ("drop", "reset"):
                    assert len(sim.requests("subscribe")) > subscribes
                if fault == "malformed":
                    assert runtime.metrics.totals["gaps"] == 0 and runtime.metrics.totals["reconnects"] == 0
                await assert_exact(sim, got, runtime, SYMBOLS, settle=0.15)
    assert sim.violations == []


async def test_service_restart_snapshot_replaces_the_book_without_a_gap():
    """Bybit: after a service restart a snapshot with ``u = 1`` comes; it must replace
    the in-sync book at once (no gap, no resubscribe), and the deltas after it apply."""
    registry = discover()
    async with registry.get(LINEAR).simulator(symbols=SYMBOLS, rate=50) as sim:
        async with running(orchestrator(LINEAR, sim, SYMBOLS, registry)) as orc:
            runtime = orc.runtimes[LINEAR]
            async with collecting(orc, f"book.{LINEAR}.") as got:
                await wait_for(lambda: set(SYMBOLS) <= set(got.latest))
                subscribes = len(sim.requests("subscribe"))
                sim.faults.restart = 1
                await wait_for(lambda: all(got.latest[s].sequence < 1000 for s in SYMBOLS), timeout=10)
                await assert_exact(sim, got, runtime, SYMBOLS, settle=0.15)
                assert runtime.metrics.totals["gaps"] == 0
                assert len(sim.requests("subscribe")) == subscribes


async def test_spot_requests_carry_at_most_ten_args(logs):
    """Spot allows 10 args per subscribe request: 12 instruments x 2 feeds go out in
    requests of at most 10 topics, and every book is exact."""
    venue = "bybit-spot"
    registry = discover()
    symbols = [f"SIM{i}USDT" for i in range(12)]
    async with registry.get(venue).simulator(symbols=symbols, rate=20) as sim:
        extra = {"venues": {venue: {"instruments": symbols, "feeds": ["book", "trades"]}}}
        async with running(orchestrator(venue, sim, symbols, registry, **extra)) as orc:
            runtime = orc.runtimes[venue]
            async with collecting(orc, f"book.{venue}.") as got:
                await wait_for(lambda: set(symbols) <= set(got.latest), timeout=15)
                await assert_exact(sim, got, runtime, symbols, settle=0.15)
        requests = sim.requests("subscribe")
        assert sum(len(r["args"]) for r in requests) >= 24
        assert max(len(r["args"]) for r in requests) <= 10
    assert sim.violations == []
