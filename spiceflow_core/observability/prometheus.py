"""Prometheus metrics of a running pipeline, served at ``GET /metrics`` by the control API.

A custom collector reads what the runtime keeps anyway (each venue's ``Metrics``
counters and latency histogram, the subscription table, the connections, the sinks'
stats) when Prometheus scrapes: the frame path pays nothing for the exporter. The scrape
runs on the event loop, like the actors, so it reads one consistent state. Each run has
a ``CollectorRegistry`` of its own, never the process-wide default one, so several
orchestrators in one process (and tests) do not collide.

Cardinality is bounded: labels are ``venue``, ``feed``, ``state`` (the fixed feed
states), ``sink`` and ``symbol``. ``symbol`` series exist only for subscribed
instruments, and for at most ``[api] metrics_max_instruments`` of them: an instrument
gets series of its own if there is room when it first appears (in ``(venue, symbol)``
order within one scrape) and keeps them while it stays subscribed; the others are summed
per venue into ``symbol="_other"``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, get_args

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response

from spiceflow_core.model import FEEDS, FeedState

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.runtime.orchestrator import Orchestrator
    from spiceflow_core.runtime.subscriptions import Subscription

#: runtime counter (``spiceflow_core.runtime.metrics.COUNTERS``) -> (metric, help); one
#: series per venue, from ``Metrics.totals``
VENUE_COUNTERS: dict[str, tuple[str, str]] = {
    "frames_in": ("spiceflow_frames_received_total", "WebSocket frames received"),
    "parse_errors": ("spiceflow_parse_errors_total", "Frames skipped: oversized, binary or not parseable"),
    "book_updates": ("spiceflow_book_updates_total", "Snapshots and deltas applied to a book"),
    "gaps": ("spiceflow_book_gaps_total", "Sequence gaps detected (the book resyncs)"),
    "resyncs": ("spiceflow_book_resyncs_total", "Book resyncs started"),
    "refreshes": ("spiceflow_book_refreshes_total", "Shadow refreshes of a book"),
    "reconnects": ("spiceflow_reconnects_total", "WebSocket reconnections"),
    "rotations": ("spiceflow_connection_rotations_total", "Connections replaced before the venue's age limit"),
    "published": ("spiceflow_messages_published_total", "Messages published on ZeroMQ (status messages included)"),
    "publish_drops": ("spiceflow_publish_drops_total", "Messages ZeroMQ refused (high-water mark reached)"),
    "trades": ("spiceflow_trades_total", "Trades published"),
    "tops": ("spiceflow_tops_total", "Exchange best bid/ask messages published"),
    "actor_restarts": ("spiceflow_actor_restarts_total", "Actors restarted after a failure"),
}
#: the runtime counters also kept per instrument (``Metrics.by_instrument``)
INSTRUMENT_COUNTERS = ("book_updates", "gaps", "resyncs", "refreshes", "trades", "tops", "published", "publish_drops")
SINK_COUNTERS: dict[str, str] = {
    "offered": "Messages offered to the sink",
    "written": "Messages the sink wrote",
    "dropped": "Messages the sink dropped (buffer full or failed write)",
    "errors": "Sink write or task failures",
}
FEED_STATES: tuple[str, ...] = get_args(FeedState)
#: the ``symbol`` of the per-venue sum of the instruments beyond the cap
OTHER = "_other"
#: a bucket bound as the client library writes ``le`` (the library leaves it unannotated)
_le: Callable[[float], str] = floatToGoString


def instrument_metric(counter: str) -> str:
    """``book_updates`` -> ``spiceflow_instrument_book_updates_total``: the per-instrument
    twin of a venue counter (a family of its own, so that summing a family never counts an
    event twice)."""
    return "spiceflow_instrument_" + VENUE_COUNTERS[counter][0].removeprefix("spiceflow_")


@dataclass
class _Member:
    """An instrument inside ``_other``: its counts when it joined (the sum counts only
    what came after) and at the last read."""

    base: dict[str, int]
    last: dict[str, int]


@dataclass
class _Overflow:
    """One venue's ``_other``: its members and what members that left had added, so the
    sum never goes down when an instrument leaves, comes back or its runtime restarts."""

    members: dict[str, _Member] = field(default_factory=dict)
    retired: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def join(self, symbol: str, counts: Mapping[str, int]) -> None:
        now = {c: counts.get(c, 0) for c in INSTRUMENT_COUNTERS}
        self.members[symbol] = _Member(base=now, last=dict(now))

    def leave(self, symbol: str, counts: Mapping[str, int] | None) -> None:
        if counts is not None:
            self.read(symbol, counts)
        member = self.members.pop(symbol)
        for c in INSTRUMENT_COUNTERS:
            self.retired[c] += member.last[c] - member.base[c]

    def read(self, symbol: str, counts: Mapping[str, int]) -> None:
        member = self.members[symbol]
        now = {c: counts.get(c, 0) for c in INSTRUMENT_COUNTERS}
        if any(now[c] < member.last[c] for c in INSTRUMENT_COUNTERS):  # the venue's runtime restarted
            for c in INSTRUMENT_COUNTERS:
                self.retired[c] += member.last[c] - member.base[c]
            member.base = dict.fromkeys(INSTRUMENT_COUNTERS, 0)
        member.last = now

    def total(self, counter: str) -> int:
        return self.retired[counter] + sum(m.last[counter] - m.base[counter] for m in self.members.values())


class InstrumentSeries:
    """Which subscribed instruments have series of their own (at most ``cap``); the rest
    are summed per venue."""

    def __init__(self) -> None:
        self.own: set[tuple[str, str]] = set()
        self.overflow: dict[str, _Overflow] = {}

    def update(
        self,
        subscribed: Mapping[str, set[str]],
        counts: Mapping[str, Mapping[str, Mapping[str, int]]],
        cap: int,
    ) -> None:
        """``subscribed``: venue -> symbols; ``counts``: venue -> symbol -> counter -> n."""
        current = {(venue, symbol) for venue, symbols in subscribed.items() for symbol in symbols}
        self.own &= current
        for venue, overflow in self.overflow.items():
            venue_counts = counts.get(venue, {})
            for symbol in list(overflow.members):
                if (venue, symbol) in current:
                    overflow.read(symbol, venue_counts.get(symbol, {}))
                else:
                    overflow.leave(symbol, venue_counts.get(symbol))
        for venue, symbol in sorted(current - self.own):
            if self.aggregated(venue, symbol):
                continue
            if len(self.own) < cap:
                self.own.add((venue, symbol))
            else:
                self.overflow.setdefault(venue, _Overflow()).join(symbol, counts.get(venue, {}).get(symbol, {}))

    def aggregated(self, venue: str, symbol: str) -> bool:
        overflow = self.overflow.get(venue)
        return overflow is not None and symbol in overflow.members


class _Families:
    """Every family the collector exposes, empty until a scrape fills it."""

    def __init__(self) -> None:
        self.venue = {
            counter: CounterMetricFamily(name, doc, labels=["venue"]) for counter, (name, doc) in VENUE_COUNTERS.items()
        }
        self.instrument = {
            counter: CounterMetricFamily(
                instrument_metric(counter), f"{VENUE_COUNTERS[counter][1]}, per instrument", labels=["venue", "symbol"]
            )
            for counter in INSTRUMENT_COUNTERS
        }
        self.book_state = GaugeMetricFamily(
            "spiceflow_book_state",
            "Book feed state as a state set: 1 for the current state, 0 for the others (symbol=_other: books in it)",
            labels=["venue", "symbol", "state"],
        )
        self.subscriptions = GaugeMetricFamily(
            "spiceflow_subscriptions", "Subscriptions by feed and state", labels=["venue", "feed", "state"]
        )
        self.connections = GaugeMetricFamily("spiceflow_connections", "WebSocket connections", labels=["venue"])
        self.connections_up = GaugeMetricFamily(
            "spiceflow_connections_up", "WebSocket connections up", labels=["venue"]
        )
        self.aggregated = GaugeMetricFamily(
            "spiceflow_metrics_aggregated_instruments",
            "Subscribed instruments beyond [api] metrics_max_instruments, counted in symbol=_other",
            labels=["venue"],
        )
        self.latency = HistogramMetricFamily(
            "spiceflow_publish_latency_seconds",
            "From frame received to message published (books, trades, tops)",
            labels=["venue"],
        )
        self.sink = {
            stat: CounterMetricFamily(f"spiceflow_sink_{stat}_total", doc, labels=["sink"])
            for stat, doc in SINK_COUNTERS.items()
        }
        self.sink_buffered = GaugeMetricFamily(
            "spiceflow_sink_buffered", "Messages waiting in the sink's buffer", labels=["sink"]
        )

    def __iter__(self) -> Iterator[Metric]:
        yield from self.venue.values()
        yield from self.instrument.values()
        yield from (self.book_state, self.subscriptions, self.connections, self.connections_up, self.aggregated)
        yield self.latency
        yield from self.sink.values()
        yield self.sink_buffered


class PipelineCollector(Collector):
    """Reads the orchestrator's runtimes and broadcaster at each scrape."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orc = orchestrator
        self.series = InstrumentSeries()

    def describe(self) -> Iterator[Metric]:
        """The names (no samples), for the registry's collision check."""
        yield from _Families()

    def collect(self) -> Iterator[Metric]:
        out = _Families()
        runtimes = dict(self.orc.runtimes)
        subscriptions = {venue: runtime.list_subscriptions() for venue, runtime in runtimes.items()}
        self.series.update(
            {venue: {s.symbol for s in subs} for venue, subs in subscriptions.items()},
            {venue: runtime.metrics.by_instrument for venue, runtime in runtimes.items()},
            max(0, self.orc.settings.api.metrics_max_instruments),
        )
        for venue, runtime in sorted(runtimes.items()):
            metrics = runtime.metrics
            for counter, family in out.venue.items():
                family.add_metric([venue], metrics.totals.get(counter, 0))
            self._instruments(out, venue, subscriptions[venue], metrics.by_instrument)
            connections = runtime.connection_states()
            out.connections.add_metric([venue], len(connections))
            out.connections_up.add_metric([venue], sum(1 for c in connections if c["up"]))
            histogram = metrics.latency_histogram
            cumulative = histogram.cumulative()
            buckets = [(_le(b), float(n)) for b, n in zip(histogram.bounds_s, cumulative, strict=False)]
            buckets.append(("+Inf", float(cumulative[-1])))
            out.latency.add_metric([venue], buckets, histogram.sum_ns / 1e9)
        broadcaster = self.orc.broadcaster
        for stats in broadcaster.sink_stats() if broadcaster is not None else []:
            for stat, family in out.sink.items():
                family.add_metric([stats.name], getattr(stats, stat))
            out.sink_buffered.add_metric([stats.name], stats.buffered)
        yield from out

    def _instruments(
        self,
        out: _Families,
        venue: str,
        subscriptions: list[Subscription],
        by_instrument: Mapping[str, Mapping[str, int]],
    ) -> None:
        """Per-instrument counters, book states and subscription counts of one venue."""
        overflow = self.series.overflow.get(venue)
        own = sorted({s.symbol for s in subscriptions if not self.series.aggregated(venue, s.symbol)})
        for counter, family in out.instrument.items():
            for symbol in own:
                family.add_metric([venue, symbol], by_instrument.get(symbol, {}).get(counter, 0))
            if overflow is not None:  # once a venue overflowed, its _other series stay
                family.add_metric([venue, OTHER], overflow.total(counter))
        out.aggregated.add_metric([venue], len(overflow.members) if overflow is not None else 0)

        other_states = dict.fromkeys(FEED_STATES, 0)
        by_feed_state: dict[tuple[str, str], int] = {(feed, state): 0 for feed in FEEDS for state in FEED_STATES}
        for sub in subscriptions:
            by_feed_state[(sub.feed, sub.state)] = by_feed_state.get((sub.feed, sub.state), 0) + 1
            if sub.feed != "book":
                continue
            if self.series.aggregated(venue, sub.symbol):
                other_states[sub.state] = other_states.get(sub.state, 0) + 1
                continue
            for state in FEED_STATES:
                out.book_state.add_metric([venue, sub.symbol, state], 1 if sub.state == state else 0)
        if overflow is not None:
            for state, n in other_states.items():
                out.book_state.add_metric([venue, OTHER, state], n)
        for (feed, state), n in by_feed_state.items():
            out.subscriptions.add_metric([venue, feed, state], n)


def metrics_endpoint(orchestrator: Orchestrator) -> Callable[[Request], Awaitable[Response]]:
    """The ``GET /metrics`` handler of one run (its own registry). Nothing is read from
    the orchestrator before the first scrape."""
    registry = CollectorRegistry()
    registry.register(PipelineCollector(orchestrator))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics
