"""The full pipeline against the OKX simulator over real sockets: simulator WebSocket
(+ REST) -> WebSocketActor -> router -> books (checksum verified) -> ZeroMQ -> subscriber.
Every test ends with ``sim.violations == []``: the client kept OKX's limits."""

from __future__ import annotations

import anyio
import msgspec
import pytest
from runtime_helpers import assert_exact, captured_logs, collecting, heal_fault, running, settings_for, wait_for

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.runtime.orchestrator import Orchestrator

pytestmark = pytest.mark.anyio

VENUE = "okx"
SYMBOLS = ["BTC-USDT", "ETH-USDT-SWAP"]


@pytest.fixture
def logs():
    with captured_logs() as lines:
        yield lines


def orchestrator(sim, registry, symbols, *, feeds=("book",)) -> Orchestrator:
    # no fixtures profile: reference data over REST from the simulator
    settings = settings_for(VENUE, symbols, profiles=())
    settings.venues[VENUE] = msgspec.structs.replace(settings.venues[VENUE], feeds=list(feeds))
    return Orchestrator(settings, registry, [VENUE], endpoint_overrides={VENUE: sim.endpoints})


async def test_books_are_exact_and_checksum_verified(registry):
    async with registry.get(VENUE).simulator(symbols=SYMBOLS, rate=40, seed=3) as sim:
        async with running(orchestrator(sim, registry, SYMBOLS)) as orc:
            runtime = orc.runtimes[VENUE]
            async with collecting(orc, f"book.{VENUE}.") as got:
                await wait_for(lambda: len(got.books) > 50)
                await assert_exact(sim, got, runtime, SYMBOLS, settle=0.15)
            assert all(m.checksum_verified for m in got.books)
            assert runtime.metrics.totals["gaps"] == 0 and runtime.metrics.totals["parse_errors"] == 0
    assert sim.violations == []


async def test_quiet_book_no_change_updates_keep_it_synced(registry):
    async with registry.get(VENUE).simulator(symbols=SYMBOLS[:1], rate=40, quiet_interval=0.1) as sim:
        async with running(orchestrator(sim, registry, SYMBOLS[:1])) as orc:
            runtime = orc.runtimes[VENUE]
            await wait_for(lambda: runtime.books.state_of(SYMBOLS[0]) == "synced")
            sim.paused = True  # only seqId == prevSeqId updates now
            await anyio.sleep(0.6)
            assert runtime.books.state_of(SYMBOLS[0]) == "synced"
            assert runtime.metrics.totals["gaps"] == 0
    assert sim.violations == []


FAULTS = {
    # fault -> (arm, counters that must move, log fragment)
    "corrupt_checksum": (lambda f: setattr(f, "corrupt_checksum", 1), ("gaps", "resyncs"), "checksum mismatch"),
    "gap": (lambda f: setattr(f, "gap", 1), ("gaps", "resyncs"), "sequence gap"),
    "drop": (lambda f: setattr(f, "drop", 1), ("reconnects",), "connection lost"),
    "reset": (lambda f: setattr(f, "reset", 1), ("reconnects",), "connection lost"),
    "malformed": (lambda f: setattr(f, "malformed", 1), ("parse_errors",), "bad frame skipped"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_heals_with_an_exact_book(fault, registry, logs):
    async with registry.get(VENUE).simulator(symbols=SYMBOLS, rate=40, seed=5) as sim:
        async with running(orchestrator(sim, registry, SYMBOLS)) as orc:
            runtime = orc.runtimes[VENUE]
            async with collecting(orc, f"book.{VENUE}.", f"status.{VENUE}.") as got:
                subscribes = len(sim.requests("subscribe"))
                await heal_fault(sim, runtime, got, SYMBOLS, FAULTS[fault], logs, settle=0.15)
                if fault in ("corrupt_checksum", "gap"):
                    # healed the OKX way: that channel unsubscribed and subscribed again
                    assert runtime.metrics.totals["reconnects"] == 0
                    assert len(sim.requests("unsubscribe")) >= 1
                    assert len(sim.requests("subscribe")) > subscribes
                if fault == "corrupt_checksum":
                    assert sum(runtime.metrics.by_instrument[s]["gaps"] for s in SYMBOLS) == 1
                n = len(got.books)
                await wait_for(lambda: len(got.books) > n + 20)
                await assert_exact(sim, got, runtime, SYMBOLS, settle=0.15)
            # every book published after the heal was verified again
            assert got.books[-1].checksum_verified
    assert sim.violations == []


async def test_top_of_book_and_trades_flow(registry):
    symbols = SYMBOLS[:1]
    async with registry.get(VENUE).simulator(symbols=symbols, rate=40) as sim:
        orc = orchestrator(sim, registry, symbols, feeds=["book", "top", "trades"])
        async with running(orc):
            async with (
                Subscriber(orc.broadcaster.address, [f"top.{VENUE}.", f"trade.{VENUE}."]) as sub,
                anyio.create_task_group() as tg,
            ):
                kinds: set[str] = set()

                async def read() -> None:
                    async for received in sub:
                        kinds.add(type(received.message).__name__)

                tg.start_soon(read)
                await wait_for(lambda: len(kinds) >= 2, timeout=10)
                tg.cancel_scope.cancel()
            assert {"bbo-tbt", "trades"} <= {a["channel"] for r in sim.requests("subscribe") for a in r["args"]}
    assert sim.violations == []
