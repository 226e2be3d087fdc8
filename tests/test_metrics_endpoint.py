"""``GET /metrics`` against a running pipeline (the toy venue's simulator, the control
API on a real socket): scraped over HTTP and parsed with the Prometheus client's own
parser; the values are compared with the runtime's counters read just before and just
after each scrape (the scrape runs on the event loop, so its values lie in between)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from runtime_helpers import running, settings_for, toy_registry, wait_for

from spiceflow_core.model import FEEDS
from spiceflow_core.observability.prometheus import (
    FEED_STATES,
    INSTRUMENT_COUNTERS,
    OTHER,
    VENUE_COUNTERS,
    metrics_endpoint,
)
from spiceflow_core.runtime.metrics import COUNTERS, LatencyHistogram, LatencyWindow
from spiceflow_core.runtime.orchestrator import Orchestrator
from spiceflow_core.sinks.contract import BufferedSink
from spiceflow_core.testkit.toy import ToySimulator

pytestmark = pytest.mark.anyio

DASHBOARD = Path(__file__).parent.parent / "docs" / "grafana-dashboard.json"


class StuckSink(BufferedSink):
    """A sink whose writes never finish: its small buffer fills, the rest is dropped."""

    async def write(self, batch):
        await anyio.sleep_forever()


class Scrape:
    """One parsed scrape: sample name -> {labels: value}."""

    def __init__(self, text: str) -> None:
        self.samples: dict[str, dict[frozenset, float]] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples[name][frozenset(labels.items())]

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(key)[label] for key in self.samples.get(name, {})}


def orchestrator(sim: ToySimulator, instruments: list[str], *, sinks=(), **api) -> Orchestrator:
    settings = settings_for("toy", instruments, profiles=(), api={"enabled": True, "address": "127.0.0.1:0", **api})
    return Orchestrator(settings, toy_registry(), ["toy"], endpoint_overrides={"toy": sim.endpoints}, sinks=sinks)


async def scrape(http: httpx.AsyncClient) -> Scrape:
    r = await http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE_LATEST
    return Scrape(r.text)


def instrument_total(runtime, counter: str, symbols: list[str]) -> int:
    return sum(runtime.metrics.by_instrument.get(s, {}).get(counter, 0) for s in symbols)


# -- without a pipeline ---------------------------------------------------------------
def test_every_runtime_counter_has_a_metric():
    assert set(VENUE_COUNTERS) == set(COUNTERS)
    assert set(INSTRUMENT_COUNTERS) <= set(COUNTERS)


def test_the_latency_histogram_counts_a_sample_equal_to_a_bound_in_that_bucket():
    h = LatencyHistogram((0.001, 0.01))
    for ns in (0, 1_000_000, 1_000_001, 10_000_000, 10_000_001, 5 * 10**9):
        h.add(ns)
    assert h.cumulative() == [2, 4, 6]
    assert h.sum_ns == 5_022_000_002


def test_samples_added_in_runs_leave_the_window_and_histogram_as_added_one_by_one():
    rng = random.Random(7)
    runs = [(rng.randrange(10**7), rng.randrange(1, 9)) for _ in range(60)]
    by_run, one_by_one = LatencyWindow(size=16), LatencyWindow(size=16)
    h_run, h_one = LatencyHistogram(), LatencyHistogram()
    for ns, n in runs:
        by_run.add(ns, n)
        h_run.add(ns, n)
        for _ in range(n):
            one_by_one.add(ns)
            h_one.add(ns)
    assert by_run.samples == one_by_one.samples and by_run._next == one_by_one._next
    every = [ns for ns, n in runs for _ in range(n)]
    assert sorted(by_run.samples) == sorted(every[-16:])  # the window holds the latest 16
    assert h_run.counts == h_one.counts and h_run.sum_ns == h_one.sum_ns


def test_each_endpoint_has_a_registry_of_its_own():
    # the process-wide default registry would refuse the second set of the same names
    metrics_endpoint(object())  # type: ignore[arg-type]
    metrics_endpoint(object())  # type: ignore[arg-type]


# -- against a running pipeline --------------------------------------------------------
async def test_scrapes_follow_the_runtime_counters_states_connections_and_latency():
    sim = ToySimulator(symbols=["AAA", "BBB"], rate=200)
    sink = StuckSink("stuck", capacity=5)
    async with sim.running(), running(orchestrator(sim, ["AAA", "BBB"], sinks=[sink])) as orc:
        runtime = orc.runtimes["toy"]
        async with httpx.AsyncClient(base_url=f"http://{orc.api_address}") as http:
            await wait_for(lambda: all(runtime.books.state_of(s) == "synced" for s in ("AAA", "BBB")))
            await wait_for(lambda: sink.stats.dropped > 0)

            frames = [runtime.metrics.totals["frames_in"]]
            updates = [runtime.metrics.totals["book_updates"]]
            aaa = [instrument_total(runtime, "book_updates", ["AAA"])]
            observed = [sum(runtime.metrics.latency_histogram.counts)]
            dropped = [sink.stats.dropped]
            first = await scrape(http)
            frames.append(runtime.metrics.totals["frames_in"])
            updates.append(runtime.metrics.totals["book_updates"])
            aaa.append(instrument_total(runtime, "book_updates", ["AAA"]))
            observed.append(sum(runtime.metrics.latency_histogram.counts))
            dropped.append(sink.stats.dropped)

            toy = {"venue": "toy"}
            assert frames[0] <= first.value("spiceflow_frames_received_total", **toy) <= frames[1]
            assert updates[0] <= first.value("spiceflow_book_updates_total", **toy) <= updates[1]
            assert aaa[0] <= first.value("spiceflow_instrument_book_updates_total", venue="toy", symbol="AAA") <= aaa[1]
            assert dropped[0] <= first.value("spiceflow_sink_dropped_total", sink="stuck") <= dropped[1]
            assert first.types["spiceflow_frames_received"] == "counter"

            # book states: a state set per book, synced
            for symbol in ("AAA", "BBB"):
                states = {
                    s: first.value("spiceflow_book_state", venue="toy", symbol=symbol, state=s) for s in FEED_STATES
                }
                assert states == {s: (1.0 if s == "synced" else 0.0) for s in FEED_STATES}
            assert first.value("spiceflow_subscriptions", venue="toy", feed="book", state="synced") == 2
            assert len(first.samples["spiceflow_subscriptions"]) == len(FEEDS) * len(FEED_STATES)
            assert first.value("spiceflow_connections_up", **toy) == 1
            assert first.value("spiceflow_connections", **toy) == 1
            assert first.value("spiceflow_metrics_aggregated_instruments", **toy) == 0

            # instrument series: the subscribed instruments only (no "*" of the stats messages)
            for counter in INSTRUMENT_COUNTERS:
                name = "spiceflow_instrument_" + VENUE_COUNTERS[counter][0].removeprefix("spiceflow_")
                assert first.label_values(name, "symbol") == {"AAA", "BBB"}, name

            # the latency histogram: cumulative buckets, +Inf = count, observations made
            assert first.types["spiceflow_publish_latency_seconds"] == "histogram"
            buckets = sorted(
                (float(dict(k)["le"]), v) for k, v in first.samples["spiceflow_publish_latency_seconds_bucket"].items()
            )
            counts = [v for _, v in buckets]
            assert counts == sorted(counts) and buckets[-1][0] == float("inf")
            count = first.value("spiceflow_publish_latency_seconds_count", **toy)
            assert counts[-1] == count and observed[0] <= count <= observed[1] and count > 0
            assert first.value("spiceflow_publish_latency_seconds_sum", **toy) > 0

            # the counters grow between two scrapes
            await wait_for(lambda: runtime.metrics.totals["book_updates"] > updates[1] + 20)
            second = await scrape(http)
            for name in ("spiceflow_frames_received_total", "spiceflow_book_updates_total"):
                assert second.value(name, **toy) > first.value(name, **toy), name
            assert second.value("spiceflow_publish_latency_seconds_count", **toy) > count


async def test_instruments_beyond_the_cap_are_summed_into_other_which_never_goes_down():
    sim = ToySimulator(symbols=["AAA", "BBB", "CCC"], rate=200)
    async with sim.running(), running(orchestrator(sim, ["AAA", "BBB", "CCC"], metrics_max_instruments=1)) as orc:
        runtime = orc.runtimes["toy"]
        async with httpx.AsyncClient(base_url=f"http://{orc.api_address}") as http:
            await wait_for(lambda: all(runtime.books.state_of(s) == "synced" for s in ("AAA", "BBB", "CCC")))
            name = "spiceflow_instrument_book_updates_total"

            def other(s: Scrape) -> float:
                return s.value(name, venue="toy", symbol=OTHER)

            before = instrument_total(runtime, "book_updates", ["BBB", "CCC"])
            first = await scrape(http)
            after = instrument_total(runtime, "book_updates", ["BBB", "CCC"])
            assert first.label_values(name, "symbol") == {"AAA", OTHER}
            assert first.label_values("spiceflow_book_state", "symbol") == {"AAA", OTHER}
            assert first.value("spiceflow_metrics_aggregated_instruments", venue="toy") == 2
            assert first.value("spiceflow_book_state", venue="toy", symbol=OTHER, state="synced") == 2
            assert first.value("spiceflow_book_state", venue="toy", symbol="AAA", state="synced") == 1

            # _other counts what its members counted since they joined
            await wait_for(lambda: instrument_total(runtime, "book_updates", ["BBB", "CCC"]) > after + 20)
            before2 = instrument_total(runtime, "book_updates", ["BBB", "CCC"])
            second = await scrape(http)
            after2 = instrument_total(runtime, "book_updates", ["BBB", "CCC"])
            assert before2 - after <= other(second) - other(first) <= after2 - before
            assert other(second) > other(first)

            # a member leaves: the sum does not go down
            assert (await http.post("/unsubscribe", json={"venue": "toy", "instrument": "BBB"})).status_code == 200
            third = await scrape(http)
            assert third.value("spiceflow_metrics_aggregated_instruments", venue="toy") == 1
            assert third.value("spiceflow_book_state", venue="toy", symbol=OTHER, state="synced") == 1
            assert other(third) >= other(second)

            # it comes back (its runtime counters kept their old values): only what it counts
            # from now on is added, the sum does not jump by its past
            ccc_before = instrument_total(runtime, "book_updates", ["CCC"])
            assert (await http.post("/subscribe", json={"venue": "toy", "instrument": "BBB"})).status_code == 200
            fourth = await scrape(http)
            ccc_after = instrument_total(runtime, "book_updates", ["CCC"])
            assert fourth.value("spiceflow_metrics_aggregated_instruments", venue="toy") == 2
            assert fourth.label_values(name, "symbol") == {"AAA", OTHER}
            assert other(third) <= other(fourth) <= other(third) + (ccc_after - ccc_before)
            assert instrument_total(runtime, "book_updates", ["BBB"]) > other(fourth) - other(third)


async def test_every_dashboard_expression_names_an_exposed_metric():
    dashboard = json.loads(DASHBOARD.read_text())
    expressions: list[str] = []  # the panels' queries
    texts: list[str] = []  # every string (template variables and descriptions name metrics too)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    expressions.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str):
            texts.append(node)

    walk(dashboard)
    metric = re.compile(r"\bspiceflow_[a-z0-9_]+")
    assert len(expressions) >= 10 and all(metric.search(e) for e in expressions)
    named = {m for text in texts for m in metric.findall(text)}

    sim = ToySimulator(symbols=["AAA"], rate=100)
    async with sim.running(), running(orchestrator(sim, ["AAA"], sinks=[StuckSink("stuck", capacity=5)])) as orc:
        async with httpx.AsyncClient(base_url=f"http://{orc.api_address}") as http:
            exposed = set((await scrape(http)).samples)
    assert named <= exposed, sorted(named - exposed)
