"""Counters per venue and instrument, and receive->publish latency (percentiles over a
recent window, and a cumulative histogram for the Prometheus exporter)."""

from __future__ import annotations

from bisect import bisect_left
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

    def add(self, ns: int, n: int = 1) -> None:
        """``n`` samples of ``ns`` (the messages of one read share their latency)."""
        samples, size = self.samples, self.size
        n = min(n, size)
        appended = min(n, size - len(samples))
        if appended > 0:
            samples.extend([ns] * appended)
            n -= appended
        while n:  # the window is full: overwrite the oldest, wrapping at the end
            end = min(self._next + n, size)
            samples[self._next : end] = [ns] * (end - self._next)
            n -= end - self._next
            self._next = end % size

    def percentiles(self, *qs: float) -> dict[str, float]:
        if not self.samples:
            return {f"p{int(q * 100)}": 0.0 for q in qs}
        data = sorted(self.samples)
        return {f"p{int(q * 100)}": data[min(len(data) - 1, int(q * len(data)))] / 1e6 for q in qs}


#: upper bounds (seconds) of the receive->publish latency histogram: 10 µs to 10 s, 1-2.5-5 steps
LATENCY_BUCKETS_S = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class LatencyHistogram:
    """Every latency since start (ns) counted in fixed buckets: one bisect and two integer
    additions per sample, so it can sit on the publish path; cumulated only when read."""

    def __init__(self, bounds_s: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.bounds_s = bounds_s
        self._bounds_ns = [round(b * 1e9) for b in bounds_s]
        #: per bucket (not cumulative); the last one counts what is above every bound
        self.counts = [0] * (len(bounds_s) + 1)
        self.sum_ns = 0

    def add(self, ns: int, n: int = 1) -> None:
        """``n`` samples of ``ns``."""
        self.counts[bisect_left(self._bounds_ns, ns)] += n  # bisect_left: a sample equal to a bound is in it (le)
        self.sum_ns += ns * n

    def cumulative(self) -> list[int]:
        """Counts of samples <= each bound, then the total (the ``+Inf`` bucket)."""
        out, running = [], 0
        for count in self.counts:
            running += count
            out.append(running)
        return out


class Metrics:
    """One per venue: ``venue`` counters plus ``instrument`` counters. Besides
    ``COUNTERS`` (what status and the exporter show), ``totals`` counts the book events
    handed to books, ``deltas`` and ``snapshots`` (a replay's summary reports them)."""

    def __init__(self, venue: str) -> None:
        self.venue = venue
        # defaultdict(int), not Counter: a Counter's item update costs ~3x a plain dict's
        # (it is a Python subclass), and ``inc`` runs for every book update
        self.totals: defaultdict[str, int] = defaultdict(int)
        self.by_instrument: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.latency = LatencyWindow()
        self.latency_histogram = LatencyHistogram()

    def observe_latency(self, ns: int, n: int = 1) -> None:
        """``n`` published messages ``ns`` after their frame was received: the status
        window and the exported histogram."""
        self.latency.add(ns, n)
        self.latency_histogram.add(ns, n)

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
