"""Soak: the demo pipeline (Binance spot simulator -> orchestrator -> ZeroMQ) for a set
duration at a set rate with faults every few seconds, every published book judged by the
chaos suite's oracle (truth at the book's sequence). Not a CI test.

    .venv/bin/python benchmarks/soak.py --duration 600 --rate 5000 --symbols 200

Prints frames processed, faults injected, resyncs, books found wrong (must be 0), RSS at
start (after warm-up) / middle / end (must stay within 10%), latency percentiles.
Everything runs in one process (simulator, pipeline, oracle share one core's event
loop), so the achieved rate is printed next to the asked one.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import anyio
import psutil
from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))

from harness import pipeline  # noqa: E402

from spiceflow_binance.config import SPOT  # noqa: E402
from spiceflow_binance.rest import budget_for  # noqa: E402
from spiceflow_binance.simulator import BinanceSimulator  # noqa: E402

FAULTS = ["gap", "duplicate", "reorder", "malformed", "unknown_shape", "binary", "bad_size", "stale_snapshot+gap",
          "rest_500+gap", "rest_429+gap", "oversized"]
RARE = ["reset", "drop"]  # every ~30 s: each costs a resync of every symbol


def inject(sim, name: str) -> None:
    f = sim.faults
    if name == "stale_snapshot+gap":
        f.stale_snapshot, f.gap = 1, 1
    elif name == "rest_500+gap":
        f.rest_errors, f.gap = [500], 1
    elif name == "rest_429+gap":
        f.rest_errors, f.gap = [429], 1
    elif name == "oversized":
        f.oversized_bytes, f.oversized = 300_000, 1
    else:
        setattr(f, name, getattr(f, name) + 1)


def pct(data: list[int], q: float) -> float:
    if not data:
        return 0.0
    data = sorted(data)
    return data[min(len(data) - 1, int(q * len(data)))] / 1e6


async def soak(args) -> int:
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    rng = random.Random(args.seed)
    proc = psutil.Process()
    sim = BinanceSimulator(SPOT, symbols=args.symbols, rate=args.rate, levels=300, max_requests_per_second=10_000)

    def tweak(venue) -> None:
        venue.max_messages_per_second = 500.0

    injected: dict[str, int] = {}
    rss: dict[str, float] = {}
    def roomy_budget(p) -> None:
        budget_for(p.runtime.rest, SPOT).limit = 6000  # today's Binance limit (the fixture says 1,200)

    async with pipeline("binance", sim, tweak_venue=tweak, history_keep=args.history, on_ready=roomy_budget,
                        sync_timeout=90,
                        settings_kw={"runtime": {"max_frame_bytes": 256 * 1024, "silence_timeout": 5.0},
                                     "venue_extra": {"snapshot_depth": 100}}) as p:
        warm = 25.0  # the simulator books, the oracle history and the caches fill first
        await anyio.sleep(warm)
        t0 = time.monotonic()
        frames0 = p.totals["frames_in"]
        rss["start"] = proc.memory_info().rss / 2**20
        next_fault = t0 + rng.uniform(1, args.fault_every * 2)
        next_rare = t0 + 30
        middle_done = False
        last_print = t0
        while (now := time.monotonic()) < t0 + args.duration:
            if now >= next_fault:
                name = rng.choice(FAULTS)
                inject(sim, name)
                injected[name] = injected.get(name, 0) + 1
                next_fault = now + rng.uniform(0.5, args.fault_every * 1.5)
            if now >= next_rare:
                name = rng.choice(RARE)
                inject(sim, name)
                injected[name] = injected.get(name, 0) + 1
                next_rare = now + 30
            if not middle_done and now >= t0 + args.duration / 2:
                rss["middle"] = proc.memory_info().rss / 2**20
                middle_done = True
            if now - last_print >= 30:
                last_print = now
                print(f"  t={now - t0:5.0f}s frames={p.totals['frames_in'] - frames0} resyncs={p.totals['resyncs']} "
                      f"wrong={p.oracle.v.wrong} rss={proc.memory_info().rss / 2**20:.0f}MiB", flush=True)
            await anyio.sleep(0.05)
        elapsed = time.monotonic() - t0
        rss["end"] = proc.memory_info().rss / 2**20
        await p.converge(timeout=60)  # final check: every book exact
        v = p.oracle.v
        t = p.totals
        frames = t["frames_in"] - frames0
        internal = p.runtime.metrics.latency.percentiles(0.5, 0.9, 0.99)
        drift = max(abs(rss["middle"] - rss["start"]), abs(rss["end"] - rss["start"])) / rss["start"]
        rows = [
            ("duration (s)", f"{elapsed:.0f} (+{warm:.0f} warm-up)"),
            ("instruments", str(len(p.symbols))),
            ("rate asked / achieved (frames/s)", f"{args.rate:.0f} / {frames / elapsed:.0f}"),
            ("frames processed", str(frames)),
            ("faults injected", f"{sum(injected.values())}  " + ", ".join(f"{k}={n}" for k, n in sorted(injected.items()))),
            ("gaps / resyncs / reconnects", f"{t['gaps']} / {t['resyncs']} / {t['reconnects']}"),
            ("parse errors", str(t["parse_errors"])),
            ("books published / judged", f"{t['published']} / {v.checked} (unverifiable {v.unverifiable})"),
            ("books found wrong", str(v.wrong)),
            ("books exact but shallower than 25 levels", f"{v.short} (range vouched by a 100-level snapshot)"),
            ("RSS start / middle / end (MiB)", f"{rss['start']:.0f} / {rss.get('middle', 0):.0f} / {rss['end']:.0f}"
                                                f"  (max drift {drift * 100:.1f}%)"),
            ("latency recv->publish p50/p90/p99 (ms)",
             f"{internal['p50']:.2f} / {internal['p90']:.2f} / {internal['p99']:.2f} (last 4096)"),
            ("latency recv->consumer p50/p99/max (ms)",
             f"{pct(v.latency_ns, 0.5):.2f} / {pct(v.latency_ns, 0.99):.2f} / {pct(v.latency_ns, 1.0):.2f}"),
        ]
        width = max(len(k) for k, _ in rows)
        print("\nSpiceFlow soak (seed %d)" % args.seed)
        for k, val in rows:
            print(f"  {k.ljust(width)}  {val}")
        if v.wrong:
            print("  wrong examples:", v.wrong_examples[:5])
        ok = v.wrong == 0 and drift <= 0.10
        print("RESULT:", "PASS" if ok else "FAIL")
        return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds measured (after a warm-up)")
    ap.add_argument("--rate", type=float, default=5000.0, help="depth frames per second, all instruments together")
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--fault-every", type=float, default=3.0, help="mean seconds between faults")
    ap.add_argument("--history", type=int, default=100, help="truth entries kept per symbol by the oracle")
    ap.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1, 2**31))
    args = ap.parse_args()
    return anyio.run(soak, args)


if __name__ == "__main__":
    sys.exit(main())
