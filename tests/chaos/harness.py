"""Runs the real pipeline (orchestrator, real plugin, loopback simulator, ZeroMQ) with
the oracle attached, and injects faults at random moments (seeded RNG)."""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from loguru import logger
from oracle import Oracle, TruthHistory, converge, wait_for

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.config import decode_settings
from spiceflow_core.plugin.registry import discover
from spiceflow_core.runtime.orchestrator import Orchestrator

DEPTH = 25


def chaos_seed() -> int:
    """``SPICEFLOW_CHAOS_SEED`` replays a run; otherwise a fresh seed (printed)."""
    value = os.environ.get("SPICEFLOW_CHAOS_SEED")
    return int(value) if value else random.SystemRandom().randrange(1, 2**31)


def chaos_settings(
    venue: str,
    symbols: list[str],
    *,
    runtime: dict | None = None,
    venue_extra: dict | None = None,
    broadcast: dict | None = None,
):
    raw = {
        "profiles": [],  # reference data from the simulator's REST, like live
        "venues": {venue: {"instruments": symbols, **(venue_extra or {})}},
        "book": {"depth": DEPTH},
        "broadcast": {"address": "tcp://127.0.0.1:*", "status_interval": 1.0, **(broadcast or {})},
        "api": {"enabled": False},
        "runtime": {
            "silence_timeout": 3.0,
            "reconnect_initial": 0.05,
            "reconnect_max": 0.5,
            "ack_timeout": 3.0,
            **(runtime or {}),
        },
    }
    return decode_settings(raw, "<chaos>")


class LogTap:
    """Collects WARNING+ log lines (the suite checks each fault is logged with its cause)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._id = logger.add(lambda m: self.lines.append(m.record["message"]), level="WARNING")

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def close(self) -> None:
        logger.remove(self._id)


@dataclass
class Pipeline:
    venue: str
    sim: object
    orc: Orchestrator
    oracle: Oracle
    symbols: list[str]
    log: LogTap
    rng: random.Random
    seed: int
    injected: dict[str, int] = field(default_factory=dict)

    @property
    def runtime(self):
        return self.orc.runtimes[self.venue]

    @property
    def totals(self):
        return self.runtime.metrics.totals

    async def pause(self) -> None:
        self.sim.paused = True
        await anyio.sleep(0.05)  # let frames already sent drain through the pipeline

    async def resume(self) -> None:
        self.sim.paused = False

    async def converge(self, timeout: float = 25.0) -> None:
        await converge(self.sim, self.oracle, self.runtime, self.symbols, timeout, self.pause, self.resume)

    def assert_no_wrong_books(self) -> None:
        v = self.oracle.v
        assert v.wrong == 0, f"seed {self.seed}: {v.wrong} wrong books published: {v.wrong_examples}"


@contextlib.asynccontextmanager
async def pipeline(
    venue: str,
    sim,
    *,
    settings_kw: dict | None = None,
    tweak_venue: Callable | None = None,
    history_keep: int = 3000,
    on_ready: Callable | None = None,
    sync_timeout: float = 30.0,
) -> AsyncIterator[Pipeline]:
    seed = chaos_seed()
    print(f"chaos seed for {venue}: {seed} (SPICEFLOW_CHAOS_SEED={seed} replays it)")
    rng = random.Random(seed)
    registry = discover()
    v = registry.get(venue)
    if tweak_venue is not None:
        tweak_venue(v)
    log = LogTap()
    try:
        async with sim:
            symbols = sim.symbols()
            history = TruthHistory(sim, symbols, DEPTH, keep=history_keep)
            settings = chaos_settings(venue, symbols, **(settings_kw or {}))
            orc = Orchestrator(settings, registry, [venue], endpoint_overrides={venue: sim.endpoints})
            async with anyio.create_task_group() as tg:
                exited: dict = {}

                async def run() -> None:
                    exited["code"] = await orc.run()

                tg.start_soon(run)
                await wait_for(lambda: orc.ready.is_set() or exited, 60, what="orchestrator ready")
                assert orc.ready.is_set(), f"orchestrator exited with {exited.get('code')}: {log.lines[-3:]}"
                sub = Subscriber(orc.broadcaster.address, [f"book.{venue}.", f"status.{venue}."], rcvhwm=1_000_000)
                sub.open()
                oracle = Oracle(sub, history)
                tg.start_soon(oracle.run)  # closes the socket itself when cancelled
                if True:
                    p = Pipeline(venue, sim, orc, oracle, symbols, log, rng, seed)
                    if on_ready is not None:
                        on_ready(p)
                    await wait_for(
                        lambda: all(p.runtime.books.state_of(s) == "synced" for s in symbols),
                        sync_timeout,
                        what="initial sync",
                    )
                    await wait_for(lambda: set(symbols) <= set(oracle.v.latest), 30, what="a book of every symbol")
                    try:
                        yield p
                    finally:
                        tg.cancel_scope.cancel()
    finally:
        log.close()


@dataclass
class Fault:
    """One fault kind: ``inject`` arms it; ``effect`` says it happened (counter moved);
    ``logged`` is a text the logs must contain afterwards (the cause)."""

    name: str
    inject: Callable[[Pipeline], Awaitable[None] | None]
    effect: Callable[[Pipeline, dict], bool] | None = None
    logged: str | None = None
    times: int = 3


async def run_faults(p: Pipeline, faults: list[Fault], *, effect_timeout: float = 20.0) -> dict[str, int]:
    """Each fault ``times`` times, shuffled (seeded), at a random moment; after each:
    effect observed, the cause logged, every book synced and exact again."""
    plan = [f for f in faults for _ in range(f.times)]
    p.rng.shuffle(plan)
    started = time.monotonic()
    for i, fault in enumerate(plan):
        await anyio.sleep(p.rng.uniform(0.02, 0.4))  # a random moment in the stream
        before = dict(p.totals)
        logged_before = p.log.count(fault.logged) if fault.logged else 0
        result = fault.inject(p)
        if result is not None:
            await result
        p.injected[fault.name] = p.injected.get(fault.name, 0) + 1
        where = f"seed {p.seed}, fault #{i} {fault.name}"
        if fault.effect is not None:
            try:
                await wait_for(lambda: fault.effect(p, before), effect_timeout, what=f"effect of {fault.name}")
            except TimeoutError as exc:
                raise AssertionError(f"{where}: {exc}; counters {dict(p.totals)}") from None
        try:
            await p.converge()
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None
        if fault.logged:
            assert p.log.count(fault.logged) > logged_before, (
                f"{where}: no log line containing {fault.logged!r}; last: {p.log.lines[-6:]}"
            )
        p.assert_no_wrong_books()
    v = p.oracle.v
    print(
        f"{p.venue}: {len(plan)} faults in {time.monotonic() - started:.1f}s; books judged {v.checked}, wrong {v.wrong}, "
        f"unverifiable {v.unverifiable}, counters {dict(p.totals)}"
    )
    return p.injected


# -- effects -------------------------------------------------------------------------------
def grew(*names: str, by: int = 1):
    return lambda p, before: all(p.totals[n] >= before.get(n, 0) + by for n in names)
