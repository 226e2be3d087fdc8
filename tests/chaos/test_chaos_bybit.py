"""Chaos suite, Bybit (linear): the full pipeline against the simulator (20 instruments,
books kept at the subscribed depth, resync by resubscribing), every fault injected
twice at random moments; every published book judged against the truth at its ``u``.

Bybit sends no book checksum, so the checksum faults of other venues have no Bybit
counterpart; its own hazard, the service restart (a snapshot with ``u = 1`` on a live
stream), is injected instead."""

from __future__ import annotations

import anyio
import pytest
from harness import Fault, grew, pipeline, run_faults
from spiceflow_bybit import config
from spiceflow_bybit.simulator import BybitSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(120)]

N_INSTRUMENTS = 20


def _set(**values):
    def inject(p):
        for name, value in values.items():
            setattr(p.sim.faults, name, value)

    return inject


async def _slow(p):
    p.sim.faults.slow = 0.0005
    await anyio.sleep(0.5)
    p.sim.faults.slow = 0.0


def _resubscribed(p, before):
    return p.totals["resyncs"] > before.get("resyncs", 0)


FAULTS = [
    Fault("tcp reset", _set(reset=1), grew("reconnects"), "connection lost"),
    Fault("clean close", _set(drop=1), grew("reconnects"), "connection lost"),
    Fault("stall", _set(stall=2.2), grew("reconnects"), "silence timeout"),
    Fault("slow server", _slow, None, None),
    Fault("sequence gap", _set(gap=1), grew("gaps", "resyncs"), "gap: sequence gap"),
    Fault("duplicate frame", _set(duplicate=1), None, None),
    Fault("service restart (u = 1)", _set(restart=1), None, None),
    Fault("malformed JSON", _set(malformed=1), grew("parse_errors"), "bad frame skipped"),
    Fault("unknown JSON shape", _set(unknown_shape=1), grew("parse_errors"), "unknown frame shape"),
    Fault("negative / non-numeric size", _set(bad_size=1), grew("gaps"), "gap:"),
    Fault("subscription refused (resync)", _set(refuse_subscribe=1, gap=1), _resubscribed, None),
]
for _f in FAULTS:
    # the oracle keys the truth by update id: a second restart would reuse the ids 1, 2,
    # ... of the first one, so the restart is injected once
    _f.times = 1 if _f.name.startswith("service restart") else 2


async def test_bybit_chaos():
    sim = BybitSimulator(config.LINEAR, symbols=N_INSTRUMENTS, rate=40, seed=11)
    async with pipeline(
        "bybit-linear",
        sim,
        # a paused market is silent on Bybit: pings (and their pongs) keep the connection
        # alive, so they must come faster than the silence timeout
        settings_kw={"runtime": {"silence_timeout": 1.5, "ping_interval": 0.4}},
    ) as p:
        assert len(p.symbols) == N_INSTRUMENTS
        await p.converge()
        injected = await run_faults(p, FAULTS)
        assert sum(injected.values()) == 2 * len(FAULTS) - 1
        v = p.oracle.v
        assert v.checked > 2_000 and v.wrong == 0, v.wrong_examples
        assert v.missed == 0
    assert sim.violations == []
