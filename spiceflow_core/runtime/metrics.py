"""Counters per venue and instrument, and receive->publish latency percentiles."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

COUNTERS = (
    "frames_in",
    "parse_errors",
    "book_updates",
    "gaps",
    "resyncs",
    "reconnects",
    "published",
    "publish_drops",
    "trades",
    "tops",
    "rotations",
    "refreshes",
    "actor_restarts",
)


@dataclass
class LatencyWindow:
    """A bounded reservoir of recent latencies (ns); percentiles over the window."""

    size: int = 4096
    samples: list[int] = field(default_factory=list)
    _next: int = 0

    def add(self, ns: int) -> None:
        if len(self.samples) < self.size:
            self.samples.append(ns)
        else:
            self.samples[self._next] = ns
            self._next = (self._next + 1) % self.size

    def percentiles(self, *qs: float) -> dict[str, float]:
        if not self.samples:
            return {f"p{int(q * 100)}": 0.0 for q in qs}
        data = sorted(self.samples)
        return {f"p{int(q * 100)}": data[min(len(data) - 1, int(q * len(data)))] / 1e6 for q in qs}


class Metrics:
    """One per venue: ``venue`` counters plus ``instrument`` counters."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        # defaultdict(int), not Counter: a Counter's item update costs ~3x a plain dict's
        # (it is a Python subclass), and ``inc`` runs for every book update
        self.totals: defaultdict[str, int] = defaultdict(int)
        self.by_instrument: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.latency = LatencyWindow()

    def inc(self, name: str, symbol: str | None = None, n: int = 1) -> None:
        self.totals[name] += n
        if symbol is not None:
            self.by_instrument[symbol][name] += n

    def snapshot(self) -> dict[str, int]:
        return {name: self.totals.get(name, 0) for name in COUNTERS}

    def status_line(self) -> str:
        lat = self.latency.percentiles(0.5, 0.99)
        parts = " ".join(f"{k}={v}" for k, v in self.snapshot().items())
        return f"{parts} latency_ms p50={lat['p50']:.3f} p99={lat['p99']:.3f}"
