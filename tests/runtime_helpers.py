"""Helpers to run the orchestrator in-process against a simulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.config import Settings, decode_settings
from spiceflow_core.plugin.registry import VenueRegistry, register_venues
from spiceflow_core.runtime.orchestrator import Orchestrator
from spiceflow_core.testkit.polling import wait_for


def toy_registry() -> VenueRegistry:
    from spiceflow_core.testkit import toy

    registry = VenueRegistry()
    register_venues(registry, toy, "spiceflow-toy", "0.0", "toy")
    return registry


def settings_for(venue: str, instruments: list[str], *, profiles=("fixtures",), runtime=None, **extra) -> Settings:
    raw = {
        "profiles": list(profiles),
        "venues": {venue: {"instruments": instruments}},
        "broadcast": {"address": "tcp://127.0.0.1:*", "status_interval": 0.5},
        "api": {"enabled": False, "address": "127.0.0.1:0"},
        "runtime": {
            "silence_timeout": 2.0,
            "reconnect_initial": 0.05,
            "reconnect_max": 0.5,
            "ack_timeout": 3.0,
            "first_heartbeat_timeout": 5.0,
            **(runtime or {}),
        },
        **extra,
    }
    return decode_settings(raw, "<test>")


@contextlib.asynccontextmanager
async def running(orchestrator: Orchestrator) -> AsyncIterator[Orchestrator]:
    """Run the orchestrator in a task; yield once it is ready; stop it afterwards."""
    async with anyio.create_task_group() as tg:
        result = {}

        async def run() -> None:
            result["code"] = await orchestrator.run()

        tg.start_soon(run)
        with anyio.fail_after(15):
            while not orchestrator.ready.is_set():
                if "code" in result:
                    raise RuntimeError(f"orchestrator exited early with {result['code']}")
                await anyio.sleep(0.01)
        try:
            yield orchestrator
        finally:
            tg.cancel_scope.cancel()


class Collector:
    """Reads every published message in the background: all book messages in order,
    the latest per symbol, and the status messages."""

    def __init__(self, sub) -> None:
        self.sub = sub
        self.books: list = []
        self.latest: dict[str, object] = {}
        self.status: list = []
        self.count = 0

    async def run(self) -> None:
        async for received in self.sub:
            self.count += 1
            msg = received.message
            kind = type(msg).__name__
            if kind == "BookMessage":
                self.books.append(msg)
                self.latest[msg.symbol] = msg
            elif kind == "StatusMessage":
                self.status.append(msg)


@contextlib.asynccontextmanager
async def collecting(orchestrator: Orchestrator, *prefixes: str) -> AsyncIterator[Collector]:
    """A ``Collector`` of the orchestrator's broadcast, subscribed to the topic
    ``prefixes`` and reading in the background until the block ends."""
    assert orchestrator.broadcaster is not None, "the orchestrator is not running"
    async with Subscriber(orchestrator.broadcaster.address, list(prefixes)) as sub, anyio.create_task_group() as tg:
        got = Collector(sub)
        tg.start_soon(got.run)
        try:
            yield got
        finally:
            tg.cancel_scope.cancel()


def levels(raw) -> list[tuple[str, str]]:
    """Published levels (BookLevel structs) as plain (price, size) tuples."""
    return [tuple(level) for level in raw]


@contextlib.contextmanager
def captured_logs():
    """Every log message (text only) emitted inside the block."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="DEBUG", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(sink)


async def assert_exact(
    sim, got: Collector, runtime, symbols: list[str], *, depth: int = 25, settle: float = 0.05
) -> None:
    """Freeze the simulator's market (its ``paused`` switch), wait until each symbol's
    last update is published by an in-sync feed, and compare the published levels with
    the simulator's truth (top ``depth``)."""
    sim.paused = True
    await anyio.sleep(settle)  # let a frame in flight reach the pipeline
    try:
        for symbol in symbols:
            seq, bids, asks = sim.truth(symbol)
            await wait_for(
                lambda: (
                    runtime.books.state_of(symbol) == "synced"
                    and symbol in got.latest
                    and got.latest[symbol].sequence == seq
                ),
                timeout=10,
            )
            msg = got.latest[symbol]
            assert levels(msg.bids) == bids[:depth], symbol
            assert levels(msg.asks) == asks[:depth], symbol
    finally:
        sim.paused = False


async def heal_fault(
    sim, runtime, got: Collector, symbols: list[str], fault, logs: list[str], *, settle: float = 0.05
) -> None:
    """One fault of a plugin's ``FAULTS`` table, ``(arm, counters, log fragment)``: with
    every book published and exact, arm it on the simulator, wait for each counter it
    must move and its log line, then for every book to be in sync again. The caller
    checks how the venue healed it and that the books are exact again."""
    arm, counters, fragment = fault
    await wait_for(lambda: set(symbols) <= set(got.latest))
    await assert_exact(sim, got, runtime, symbols, settle=settle)
    before = dict(runtime.metrics.totals)
    arm(sim.faults)
    for counter in counters:
        await wait_for(lambda: runtime.metrics.totals[counter] > before.get(counter, 0), timeout=10)
    assert any(fragment in line for line in logs), f"no log line with {fragment!r}"
    await wait_for(lambda: all(runtime.books.state_of(s) == "synced" for s in symbols), timeout=10)
