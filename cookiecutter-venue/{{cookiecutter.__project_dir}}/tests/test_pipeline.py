"""The full pipeline in process against the simulator, over real sockets: simulator
WebSocket (+ REST) -> WebSocketActor -> router -> books -> ZeroMQ -> subscriber.

1. WebSocketOnly, the bring-up loop's first step: reference data -> connect ->
   subscribe -> done at the first heartbeat.
2. Full: books built from the venue's snapshots and deltas, published over ZeroMQ and
   exactly equal to the simulator's truth -- at first, and again after each fault heals.

Every test that runs the pipeline ends with ``sim.violations == []``: the client kept
the venue's documented limits.

FILL IN: a fault of the venue's own (a service restart, ...) is one more entry in
``FAULTS``, or a test of its own when it heals differently.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
from loguru import logger
from {{ cookiecutter.__package }} import config
from {{ cookiecutter.__package }}.sync import CHECKSUM

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.broadcast.wire import BookMessage
from spiceflow_core.runtime.orchestrator import Orchestrator

pytestmark = pytest.mark.anyio

VENUE = config.VENUE
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
#: levels per side the published books carry (the core's default ``book.depth``)
DEPTH = 25


# -- helpers ------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def running(orchestrator: Orchestrator) -> AsyncIterator[Orchestrator]:
    """Run the orchestrator in a task; yield once it is ready; stop it afterwards."""
    async with anyio.create_task_group() as tg:
        exited: dict[str, int] = {}

        async def run() -> None:
            exited["code"] = await orchestrator.run()

        tg.start_soon(run)
        with anyio.fail_after(15):
            while not orchestrator.ready.is_set():
                assert "code" not in exited, f"the orchestrator exited early with {exited['code']}"
                await anyio.sleep(0.01)
        try:
            yield orchestrator
        finally:
            tg.cancel_scope.cancel()


async def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


class Books:
    """Every book message published for the venue, in order, and the latest per symbol."""

    def __init__(self) -> None:
        self.all: list[BookMessage] = []
        self.latest: dict[str, BookMessage] = {}

    async def collect(self, sub: Subscriber) -> None:
        async for received in sub:
            if isinstance(received.message, BookMessage):
                self.all.append(received.message)
                self.latest[received.message.symbol] = received.message


async def assert_exact(sim: Any, books: Books, runtime: Any, symbols: list[str]) -> None:
    """Hold the simulator's market, wait until each symbol's last update is published by
    an in-sync book, and compare the published levels with the simulator's truth."""
    sim.paused = True
    try:
        for symbol in symbols:
            await assert_published(sim.truth(symbol), books, runtime, symbol)
    finally:
        sim.paused = False


async def assert_published(truth: Any, books: Books, runtime: Any, symbol: str) -> None:
    seq, bids, asks = truth
    await wait_for(
        lambda: (
            runtime.books.state_of(symbol) == "synced"
            and symbol in books.latest
            and books.latest[symbol].sequence == seq
        )
    )
    book = books.latest[symbol]
    assert [tuple(level) for level in book.bids] == bids[:DEPTH], symbol
    assert [tuple(level) for level in book.asks] == asks[:DEPTH], symbol


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every log message (text only) emitted inside the block."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="DEBUG", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(sink)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    with captured_logs() as lines:
        yield lines


@pytest.fixture
def orchestrator(registry, settings_for) -> Callable[..., Orchestrator]:
    def make(sim: Any, symbols: list[str], profiles: tuple[str, ...] = (), **runtime: Any) -> Orchestrator:
        # no fixtures profile: reference data over REST from the simulator, like live
        settings = settings_for(symbols, list(profiles), **runtime)
        return Orchestrator(settings, registry, [VENUE], endpoint_overrides={VENUE: sim.endpoints})

    return make


# -- 1. WebSocketOnly ---------------------------------------------------------------------
async def test_ws_only_completes_at_the_first_heartbeat(venue, orchestrator, capsys):
    async with venue.simulator(symbols=SYMBOLS) as sim:
        # live REST (the simulator's) for reference data, like `--endpoint` on the CLI
        with anyio.fail_after(20):
            code = await orchestrator(sim, SYMBOLS, ("ws-only",)).run()
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"ws-only {VENUE}: connected after" in out and "first heartbeat after" in out
    assert sim.requests(config.SUBSCRIBE_METHOD)
    assert sim.violations == []


async def test_ws_only_with_the_packaged_fixtures(venue, orchestrator):
    async with venue.simulator(symbols=SYMBOLS) as sim:
        with anyio.fail_after(20):
            assert await orchestrator(sim, ["BTCUSDT"], ("fixtures", "ws-only")).run() == 0
    assert sim.violations == []


async def test_ws_only_fails_when_the_venue_stays_silent(venue, orchestrator, capsys):
    """The first-heartbeat check is real: nothing comes back, the workflow fails."""
    async with venue.simulator(symbols=SYMBOLS) as sim:
        sim.silent = True
        with anyio.fail_after(20):
            code = await orchestrator(sim, SYMBOLS, ("ws-only",), first_heartbeat_timeout=1.0).run()
    assert code == 1
    assert "FAILED, no heartbeat within 1s" in capsys.readouterr().out


# -- 2. Full ----------------------------------------------------------------------------
async def test_books_are_exact(venue, orchestrator):
    async with venue.simulator(symbols=SYMBOLS, rate=100) as sim, running(orchestrator(sim, SYMBOLS)) as orc:
        runtime = orc.runtimes[VENUE]
        books = Books()
        async with Subscriber(orc.broadcaster.address, [f"book.{VENUE}."]) as sub, anyio.create_task_group() as tg:
            tg.start_soon(books.collect, sub)
            await wait_for(lambda: set(SYMBOLS) <= set(books.latest) and len(books.all) > 50)
            await assert_exact(sim, books, runtime, SYMBOLS)
            tg.cancel_scope.cancel()
        assert runtime.metrics.totals["gaps"] == 0 and runtime.metrics.totals["parse_errors"] == 0
        # a venue with a checksum vouches for every book; one without, for none
        assert {m.checksum_verified for m in books.all} == {CHECKSUM is not None}
    assert sim.violations == []


FAULTS: dict[str, tuple[tuple[str, ...], str]] = {
    # fault switch (armed once) -> (counters that must grow, a log line fragment)
    "gap": (("gaps", "resyncs"), "sequence gap"),
    "drop": (("reconnects",), "connection lost"),
    "reset": (("reconnects",), "connection lost"),
    "malformed": (("parse_errors",), "bad frame skipped"),
}
if CHECKSUM is not None:  # the venue's book messages carry a checksum (sync.py)
    FAULTS["corrupt_checksum"] = (("gaps", "resyncs"), "checksum mismatch")


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_heals_with_an_exact_book(fault, venue, orchestrator, logs):
    counters, fragment = FAULTS[fault]
    async with venue.simulator(symbols=SYMBOLS, rate=50) as sim, running(orchestrator(sim, SYMBOLS)) as orc:
        runtime = orc.runtimes[VENUE]
        books = Books()
        async with Subscriber(orc.broadcaster.address, [f"book.{VENUE}."]) as sub, anyio.create_task_group() as tg:
            tg.start_soon(books.collect, sub)
            await wait_for(lambda: set(SYMBOLS) <= set(books.latest))
            await assert_exact(sim, books, runtime, SYMBOLS)
            before = dict(runtime.metrics.totals)
            subscribes = len(sim.requests(config.SUBSCRIBE_METHOD))
            setattr(sim.faults, fault, 1)
            await wait_for(lambda: all(runtime.metrics.totals[c] > before.get(c, 0) for c in counters))
            assert any(fragment in line for line in logs), f"no log line with {fragment!r}"
            await wait_for(lambda: all(runtime.books.state_of(s) == "synced" for s in SYMBOLS))
            if fault in ("gap", "corrupt_checksum"):
                # healed by resubscribing that channel (resync = "resubscribe"), same connection
                assert runtime.metrics.totals["reconnects"] == 0
                assert sim.requests(config.UNSUBSCRIBE_METHOD)
                assert len(sim.requests(config.SUBSCRIBE_METHOD)) > subscribes
            n = len(books.all)
            await wait_for(lambda: len(books.all) > n + 20)
            await assert_exact(sim, books, runtime, SYMBOLS)
            tg.cancel_scope.cancel()
    assert sim.violations == []


async def test_a_refused_subscription_is_rolled_back(venue, orchestrator):
    async with venue.simulator(symbols=SYMBOLS, rate=20) as sim, running(orchestrator(sim, ["BTCUSDT"])) as orc:
        runtime = orc.runtimes[VENUE]
        await wait_for(lambda: runtime.books.state_of("BTCUSDT") == "synced")
        sim.faults.refuse_subscribe = 1
        with pytest.raises(Exception, match="refused"):
            await runtime.subscribe("ETHUSDT")
        assert {s.symbol for s in runtime.list_subscriptions()} == {"BTCUSDT"}
        await runtime.subscribe("ETHUSDT")  # accepted the second time
        await wait_for(lambda: runtime.books.state_of("ETHUSDT") == "synced")
    assert sim.violations == []
