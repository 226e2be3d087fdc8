"""The full pipeline against the Kraken simulator over real sockets: simulator v2
WebSocket (+ REST AssetPairs) -> WebSocketActor -> router -> books (checksum verified,
book kept at the subscribed depth) -> ZeroMQ -> subscriber."""

from __future__ import annotations

import pytest
from runtime_helpers import assert_exact, captured_logs, collecting, heal_fault, running, settings_for, wait_for

from spiceflow_core.plugin.registry import discover
from spiceflow_core.runtime.orchestrator import Orchestrator

pytestmark = pytest.mark.anyio

VENUE = "kraken"
SYMBOLS = ["BTC/USD", "ETH/USD"]


@pytest.fixture
def logs():
    with captured_logs() as lines:
        yield lines


def orchestrator(sim, symbols: list[str], registry, *, profiles=("fixtures",), **runtime) -> Orchestrator:
    settings = settings_for(VENUE, symbols, profiles=profiles, runtime=runtime or None)
    return Orchestrator(settings, registry, [VENUE], endpoint_overrides={VENUE: sim.endpoints})


async def test_books_are_exact_and_checksum_verified():
    registry = discover()
    async with registry.get(VENUE).simulator(symbols=SYMBOLS, rate=50) as sim:
        # reference data from the simulator's REST AssetPairs, like live
        async with running(orchestrator(sim, SYMBOLS, registry, profiles=())) as orc:
            runtime = orc.runtimes[VENUE]
            async with collecting(orc, f"book.{VENUE}.") as got:
                await wait_for(lambda: set(SYMBOLS) <= set(got.latest) and len(got.books) > 100)
                await assert_exact(sim, got, runtime, SYMBOLS, settle=0.15)
                assert all(msg.checksum_verified for msg in got.books)
                assert {msg.instrument for msg in got.books} == {"kraken.spot.BTC.USD", "kraken.spot.ETH.USD"}
            totals = runtime.metrics.totals
            assert totals["gaps"] == 0 and totals["parse_errors"] == 0
    subscribes = sim.requests("subscribe")
    assert subscribes and all(r["params"]["depth"] == 25 for r in subscribes if r["params"]["channel"] == "book")
    assert sim.violations == []


FAULTS = {
    # fault -> (arm, counters that must move, log fragment)
    "corrupt_checksum": (lambda f: setattr(f, "corrupt_checksum", 1), ("gaps", "resyncs"), "checksum mismatch"),
    "drop": (lambda f: setattr(f, "drop", 1), ("reconnects",), "connection lost"),
    "reset": (lambda f: setattr(f, "reset", 1), ("reconnects",), "connection lost"),
    "bad_size": (lambda f: setattr(f, "bad_size", 1), ("gaps", "resyncs"), "gap:"),
    "malformed": (lambda f: setattr(f, "malformed", 2), ("parse_errors",), "bad frame skipped"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_heals_with_an_exact_book(fault, logs):
    registry = discover()
    async with registry.get(VENUE).simulator(symbols=SYMBOLS, rate=50) as sim:
        async with running(orchestrator(sim, SYMBOLS, registry)) as orc:
            runtime = orc.runtimes[VENUE]
            async with collecting(orc, f"book.{VENUE}.") as got:
                unsubscribes = len(sim.requests("unsubscribe"))
                await heal_fault(sim, runtime, got, SYMBOLS, FAULTS[fault], logs, settle=0.15)
                if fault in ("corrupt_checksum", "bad_size"):
                    # healed by resubscribing that book only, on the same connection
                    assert runtime.metrics.totals["reconnects"] == 0
                    assert len(sim.requests("unsubscribe")) > unsubscribes
                await assert_exact(sim, got, runtime, SYMBOLS, settle=0.15)
                n = len(got.books)
                await wait_for(lambda: len(got.books) > n + 20)
                assert all(msg.checksum_verified for msg in got.books[n:])
    assert sim.violations == []


async def test_refused_subscription_is_reported_and_rolled_back(logs):
    registry = discover()
    async with registry.get(VENUE).simulator(symbols=SYMBOLS, rate=20) as sim:
        async with running(orchestrator(sim, ["BTC/USD"], registry)) as orc:
            runtime = orc.runtimes[VENUE]
            await wait_for(lambda: runtime.books.state_of("BTC/USD") == "synced")
            sim.faults.refuse_subscribe = 1
            with pytest.raises(Exception, match="refused"):
                await runtime.subscribe("ETH/USD")
            assert {s.symbol for s in runtime.list_subscriptions()} == {"BTC/USD"}
            await runtime.subscribe("ETH/USD")  # accepted the second time
            await wait_for(lambda: runtime.books.state_of("ETH/USD") == "synced")
    assert sim.violations == []
