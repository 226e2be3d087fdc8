"""Chaos suite, OKX: the full pipeline against the simulator (20 instruments, books
verified by checksum, resync by resubscribing), every fault injected at random moments
-- corrupted checksums included; every published book judged against the truth at its
seqId."""

from __future__ import annotations

import pytest
from harness import Fault, grew, pipeline, run_faults
from spiceflow_okx.simulator import OkxSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(120)]

N_INSTRUMENTS = 20


def _tweak(venue) -> None:
    # the simulator's keep-alive is the client's ping; 1.5 s of silence is a stall here
    venue.min_silence_timeout = 1.5


def _set(**values):
    def inject(p):
        for name, value in values.items():
            setattr(p.sim.faults, name, value)

    return inject


FAULTS = [
    Fault("corrupted checksum", _set(corrupt_checksum=1), grew("gaps", "resyncs"), "checksum mismatch"),
    Fault("sequence gap", _set(gap=1), grew("gaps", "resyncs"), "gap: sequence gap"),
    Fault("tcp reset", _set(reset=1), grew("reconnects"), "connection lost"),
    Fault("clean close", _set(drop=1), grew("reconnects"), "connection lost"),
    Fault("stall", _set(stall=2.2), grew("reconnects"), "silence timeout"),
    Fault("duplicate frame", _set(duplicate=1), None, None),
    Fault("malformed JSON", _set(malformed=1), grew("parse_errors"), "bad frame skipped"),
    Fault("unknown JSON shape", _set(unknown_shape=1), grew("parse_errors"), "unknown frame shape"),
    Fault("binary frame", _set(binary=1), grew("parse_errors"), "binary frame"),
    Fault(
        "subscription refused (reconnect)",
        _set(refuse_subscribe=1, drop=1),
        grew("reconnects", by=2),
        "resubscribe failed",
    ),
]
for _f in FAULTS:
    _f.times = 3 if _f.name == "corrupted checksum" else 2


async def test_okx_chaos():
    sim = OkxSimulator(symbols=N_INSTRUMENTS, update_interval=0.05, seed=13)
    async with pipeline(
        "okx",
        sim,
        tweak_venue=_tweak,
        settings_kw={"runtime": {"silence_timeout": 1.5, "ping_interval": 1.0}},
    ) as p:
        assert len(p.symbols) == N_INSTRUMENTS
        await p.converge()
        injected = await run_faults(p, FAULTS)
        assert sum(injected.values()) >= 20
        v = p.oracle.v
        assert v.checked > 2_000 and v.wrong == 0, v.wrong_examples
        assert v.missed == 0
        assert sim.violations == []
        assert p.log.count("checksum mismatch") >= 3
