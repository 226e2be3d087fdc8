"""Chaos suite, Kraken: the full pipeline against the simulator (20 instruments, one
``book`` request for all of them, books kept at the subscribed depth, integrity by the
CRC32 checksum, resync by resubscribing), every fault injected at random moments; every
published book judged against the truth at its sequence (the update's timestamp).

Not injected: ``duplicate`` -- a Kraken update carries no id, so a repeated frame cannot
be recognised; its levels are absolute, so applying it again leaves the book exact, but
it is published under a new id that the truth never had."""

from __future__ import annotations

import anyio
import pytest
from harness import Fault, grew, pipeline, run_faults
from spiceflow_kraken.simulator import KrakenSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(120)]

N_INSTRUMENTS = 20


def _tweak(venue) -> None:
    # the simulator beats every 0.3 s: 1 s of silence is enough to call a connection dead
    venue.min_silence_timeout = 1.0


def _set(**values):
    def inject(p):
        for name, value in values.items():
            setattr(p.sim.faults, name, value)

    return inject


async def _slow(p):
    p.sim.faults.slow = 0.001
    await anyio.sleep(0.5)
    p.sim.faults.slow = 0.0


def _resubscribed(p, before):
    return p.totals["resyncs"] > before.get("resyncs", 0)


FAULTS = [
    Fault("corrupted checksum", _set(corrupt_checksum=1), grew("gaps", "resyncs"), "checksum mismatch"),
    Fault("corrupted checksum x3", _set(corrupt_checksum=3), grew("gaps", "resyncs"), "checksum mismatch"),
    # a lost update: the next message's checksum disagrees with the book (unless the next
    # step rewrites the same levels, which leaves the book exact): no effect asserted
    Fault("lost update", _set(gap=1), None, None),
    Fault("negative / non-numeric size", _set(bad_size=1), grew("gaps"), "gap:"),
    Fault("tcp reset", _set(reset=1), grew("reconnects"), "connection lost"),
    Fault("clean close", _set(drop=1), grew("reconnects"), "connection lost"),
    Fault("stall", _set(stall=1.6), grew("reconnects"), "silence timeout"),
    Fault("slow server", _slow, None, None),
    Fault("malformed JSON", _set(malformed=1), grew("parse_errors"), "bad frame skipped (protocol"),
    Fault("unknown JSON shape", _set(unknown_shape=1), grew("parse_errors"), "unknown frame shape"),
    Fault("binary frame", _set(binary=1), grew("parse_errors"), "binary frame"),
    Fault(
        "subscription refused (resync)",
        _set(refuse_subscribe=1, corrupt_checksum=1),
        _resubscribed,
        "resubscribe failed",
    ),
    Fault(
        "subscription refused (reconnect)",
        _set(refuse_subscribe=1, drop=1),
        grew("reconnects", by=2),
        "resubscribe failed",
    ),
    Fault("heartbeat not sent", _set(skip_heartbeats=1), None, None),
]
for _f in FAULTS:
    _f.times = 2


async def test_kraken_chaos():
    sim = KrakenSimulator(symbols=N_INSTRUMENTS, rate=10, heartbeat_interval=0.3, seed=11, levels=40)
    async with pipeline(
        "kraken",
        sim,
        tweak_venue=_tweak,
        settings_kw={"runtime": {"silence_timeout": 1.0}},
    ) as p:
        assert len(p.symbols) == N_INSTRUMENTS
        await p.converge()
        injected = await run_faults(p, FAULTS)
        assert sum(injected.values()) == 2 * len(FAULTS)
        v = p.oracle.v
        assert v.checked > 2_000 and v.wrong == 0, v.wrong_examples
        assert v.missed == 0
    assert sim.violations == []
