"""Sinks as plugins: every published message reaches every sink with the exact bytes
ZeroMQ consumers get; a slow sink drops (counted) without slowing anything else; a
failing sink is reported by name while the pipeline and the other sinks go on."""

from __future__ import annotations

import types

import anyio
import msgspec
import pytest
from runtime_helpers import Collector, captured_logs, running, settings_for, toy_registry, wait_for

from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.broadcast.wire import BookMessage, decoder
from spiceflow_core.config import ConfigError, decode_settings
from spiceflow_core.runtime.orchestrator import Orchestrator
from spiceflow_core.sinks import BufferedSink, SinkPlugin, hookimpl
from spiceflow_core.sinks.registry import SinkRegistry, build_sinks, register_sinks
from spiceflow_core.testkit.toy import ToySimulator

pytestmark = pytest.mark.anyio


class MemoryOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    capacity: int = 100_000
    delay: float = 0.0  # seconds each write takes (a slow sink)
    fail: bool = False  # the sink's task dies at once


class MemorySink(BufferedSink):
    def __init__(self, options: MemoryOptions) -> None:
        super().__init__("memory", options.capacity)
        self.options = options
        self.received: list[tuple[str, bytes]] = []

    async def run(self) -> None:
        if self.options.fail:
            raise RuntimeError("cannot reach the store")
        await super().run()

    async def write(self, batch):
        if self.options.delay:
            await anyio.sleep(self.options.delay)
        self.received.extend((topic, body) for topic, body, _ in batch)


class MemoryPlugin(SinkPlugin):
    name = "memory"
    options_type = MemoryOptions

    def create(self, options):
        return MemorySink(options)


def _plugin_module(*plugins):
    module = types.ModuleType("memory_sink_plugin")

    @hookimpl
    def spiceflow_sinks():
        return list(plugins)

    module.spiceflow_sinks = spiceflow_sinks  # type: ignore[attr-defined]
    return module


def _registry(*plugins) -> SinkRegistry:
    registry = SinkRegistry()
    register_sinks(registry, _plugin_module(*plugins), "spiceflow-memory", "0.1", "memory")
    return registry


def _settings(sinks: dict):
    return decode_settings({"sinks": sinks}, "spiceflow.toml")


def test_a_sinks_table_builds_the_named_plugin_with_typed_options():
    (sink,) = build_sinks(_registry(MemoryPlugin()), _settings({"memory": {"capacity": 5}}), "spiceflow.toml")
    assert isinstance(sink, MemorySink) and sink.capacity == 5


@pytest.mark.parametrize(
    "table,message",
    [
        ({"nowhere": {}}, "spiceflow.toml: sinks.nowhere: no installed sink plugin named 'nowhere' (installed: memory"),
        ({"memory": {"colour": 1}}, "spiceflow.toml: sinks.memory.colour: unknown key"),
        ({"memory": {"capacity": "many"}}, "spiceflow.toml: sinks.memory.capacity: Expected `int`, got `str`"),
    ],
)
def test_sink_config_errors_name_the_key_and_the_file(table, message):
    with pytest.raises(ConfigError) as info:
        build_sinks(_registry(MemoryPlugin()), _settings(table), "spiceflow.toml")
    assert message in str(info.value)


def test_a_broken_sink_plugin_is_reported_by_distribution_while_the_others_load():
    class Nameless(MemoryPlugin):
        name = "not a name"

    registry = SinkRegistry()
    register_sinks(registry, _plugin_module(Nameless()), "spiceflow-broken", "9.9", "broken")
    register_sinks(registry, _plugin_module(MemoryPlugin()), "spiceflow-memory", "0.1", "memory")
    assert registry.names() == ["memory"]
    (failure,) = registry.failures
    assert failure.line().startswith("plugin spiceflow-broken 9.9 (broken) failed: sink name 'not a name'")


def test_a_full_buffer_counts_drops_and_never_blocks():
    sink = MemorySink(MemoryOptions(capacity=3))
    for i in range(10):
        sink.offer("book.v.S", b"%d" % i, None)  # type: ignore[arg-type]
    stats = sink.current_stats()
    assert (stats.offered, stats.dropped, stats.buffered) == (10, 7, 3)


async def test_every_sink_gets_the_exact_bytes_zeromq_consumers_get_and_a_slow_or_dead_one_harms_nothing():
    sim = ToySimulator(symbols=["AAA", "BBB"], rate=300)
    fast = MemorySink(MemoryOptions())
    slow = MemorySink(MemoryOptions(capacity=20, delay=0.5))
    dead = MemorySink(MemoryOptions(fail=True))
    settings = settings_for("toy", ["AAA", "BBB"], profiles=())
    orc = Orchestrator(
        settings, toy_registry(), ["toy"], endpoint_overrides={"toy": sim.endpoints}, sinks=[fast, slow, dead]
    )
    with captured_logs() as logs:
        await _run_with_sinks(sim, orc, fast, slow, dead)
    assert any("sink memory stopped: RuntimeError: cannot reach the store" in line for line in logs)


async def _run_with_sinks(sim, orc, fast, slow, dead) -> None:
    async with sim.running():
        orc.endpoint_overrides["toy"] = sim.endpoints
        async with running(orc), Subscriber(orc.broadcaster.address, ["book.toy."]) as sub:
            async with anyio.create_task_group() as tg:
                got = Collector(sub)
                tg.start_soon(got.run)
                await wait_for(lambda: len(got.books) > 300 and slow.stats.dropped > 0, timeout=15)
                tg.cancel_scope.cancel()
            runtime = orc.runtimes["toy"]
            assert runtime.metrics.totals["gaps"] == 0
            # the fast sink holds, for every book message ZeroMQ delivered, the same bytes
            by_key = {}
            for topic, body in fast.received:
                msg = decoder.decode(body)
                if isinstance(msg, BookMessage):
                    assert topic == f"book.toy.{msg.symbol}"
                    by_key[(msg.symbol, msg.topic_seq)] = msg
            for msg in got.books:
                assert by_key[(msg.symbol, msg.topic_seq)] == msg
            # the slow one dropped (counted) instead of slowing the pipeline; the dead one is reported
            assert slow.stats.dropped > 0 and fast.stats.dropped == 0
            assert dead.stats.errors == 1 and "cannot reach the store" in dead.stats.last_error
            assert [s.dropped > 0 for s in orc.broadcaster.sink_stats()] == [False, True, False]
