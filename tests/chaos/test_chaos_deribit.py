"""Chaos suite, Deribit: the full pipeline against the simulator's generator (50+
instruments, resync by resubscribing), every fault injected several times at random
moments; every published book judged against the truth at its change_id."""

from __future__ import annotations

import anyio
import pytest
from harness import Fault, grew, pipeline, run_faults
from spiceflow_deribit.simulator import DeribitSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(170)]

N_INSTRUMENTS = 60


def _tweak(venue) -> None:
    # Deribit's 3 messages/s would make subscribing 60 instruments one by one take 20 s
    # (the limit is tested in the plugin), and its silence timeout is 2.5 x the 10 s
    # heartbeat: the simulator beats every 0.5 s here, so 1.5 s of silence is enough.
    venue.max_messages_per_second = 500.0
    venue.min_silence_timeout = 1.5


def _set(**values):
    def inject(p):
        for name, value in values.items():
            setattr(p.sim.faults, name, list(value) if isinstance(value, list) else value)

    return inject


async def _slow(p):
    p.sim.faults.slow = 0.0005  # the writer sleeps between frames: ~2,000/s at most
    await anyio.sleep(1.0)
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
    # a stale `change` sent before the `snapshot` of the resubscription the gap causes
    Fault("change before snapshot", _set(reorder=1, gap=1), grew("gaps", "resyncs"), "gap: sequence gap"),
    Fault("malformed JSON", _set(malformed=1), grew("parse_errors"), "bad frame skipped (protocol"),
    Fault("unknown JSON shape", _set(unknown_shape=1), grew("parse_errors"), "unknown frame shape"),
    Fault("oversized frame", _set(oversized=1, oversized_bytes=300_000), grew("parse_errors"), "exceeds the"),
    Fault("binary frame", _set(binary=1), grew("parse_errors"), "binary frame"),
    Fault("negative / non-numeric size", _set(bad_size=1), grew("gaps"), "gap:"),
    Fault("subscription refused (resync)", _set(refuse_subscribe=1, gap=1), _resubscribed, "resubscribe failed"),
    Fault(
        "subscription refused (reconnect)",
        _set(refuse_subscribe=1, drop=1),
        grew("reconnects", by=2),
        "resubscribe failed",
    ),
    Fault("heartbeat not sent", _set(skip_heartbeats=2), None, None),
    Fault("heartbeat answer lost", _set(ignore_heartbeat_answers=1), grew("reconnects"), "heartbeat"),
]
for _f in FAULTS:
    _f.times = 2


async def test_deribit_chaos():
    sim = DeribitSimulator(
        instruments=N_INSTRUMENTS,
        update_interval=0.1,
        heartbeat_interval=0.5,
        seed=11,
        subscribe_cost=1,
        max_credits=1e9,
    )
    async with pipeline(
        "deribit",
        sim,
        tweak_venue=_tweak,
        settings_kw={"runtime": {"max_frame_bytes": 256 * 1024, "silence_timeout": 1.5}},
    ) as p:
        assert len(p.symbols) >= 50
        await p.converge()
        injected = await run_faults(p, FAULTS)
        assert sum(injected.values()) >= 30
        v = p.oracle.v
        assert v.checked > 5_000 and v.wrong == 0, v.wrong_examples
        assert v.missed == 0
