"""``[sinks.nats]`` through the core's own path: the installed entry point is found,
the table decoded into NatsOptions (unknown keys and bad values refused, naming them)."""

from __future__ import annotations

import pytest
from spiceflow_nats.config import NatsOptions
from spiceflow_nats.jetstream import stream_configs
from spiceflow_nats.plugin import NatsSinkPlugin
from spiceflow_nats.sink import NatsSink

from spiceflow_core.config import ConfigError, decode_settings
from spiceflow_core.sinks.registry import build_sinks, discover_sinks
from spiceflow_core.testkit.sinks import loaded_by_discovery


def _build(table: dict[str, object]) -> list:
    settings = decode_settings({"sinks": {"nats": table}}, "spiceflow.toml")
    return build_sinks(discover_sinks(), settings, "spiceflow.toml")


def test_the_installed_entry_point_provides_the_nats_sink():
    registry = discover_sinks()
    assert "nats" in registry.names(), registry.failures
    assert registry.plugins["nats"].distribution == "spiceflow-nats"
    assert isinstance(registry.plugins["nats"].plugin, NatsSinkPlugin)


def test_a_table_builds_a_sink_with_typed_options():
    (sink,) = _build({"servers": ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"], "capacity": 500, "jetstream": True})
    assert isinstance(sink, NatsSink) and sink.capacity == 500
    assert sink.options.servers == ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"] and sink.options.jetstream


def test_defaults():
    options = NatsOptions()
    assert options.servers == ["nats://127.0.0.1:4222"] and options.subject_prefix == ""
    assert (options.capacity, options.jetstream) == (100_000, False)
    assert NatsOptions(subject_prefix="md.eu").prefix == NatsOptions(subject_prefix="md.eu.").prefix == "md.eu."


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"server": ["nats://x:4222"]}, "sinks.nats.server"),  # unknown key, named
        ({"servers": []}, "at least one server"),
        ({"servers": ["http://x:4222"]}, "not a NATS URL"),
        ({"subject_prefix": "md.*"}, "subject_prefix"),
        ({"subject_prefix": "a..b"}, "subject_prefix"),
        ({"capacity": 0}, "capacity"),
        ({"books_stream": "my.books"}, "books_stream"),
        ({"books_stream": "X", "trades_stream": "X"}, "must differ"),
        ({"trades_max_bytes": 0}, "trades_max_bytes"),
        ({"books_storage": "disk"}, "books_storage"),
        ({"capacity": "many"}, "capacity"),
    ],
)
def test_bad_tables_are_refused_naming_the_problem(table, message):
    with pytest.raises(ConfigError, match=r"spiceflow\.toml") as caught:
        _build(table)
    assert message in str(caught.value)


def test_stream_configs_follow_the_options():
    books, trades = stream_configs(
        NatsOptions(subject_prefix="md", books_stream="B", trades_stream="T", trades_max_age=60, trades_max_bytes=1024)
    )
    assert (books.name, books.subjects, books.max_msgs_per_subject) == ("B", ["md.book.>"], 1)
    assert (trades.name, trades.subjects, trades.max_age, trades.max_bytes) == ("T", ["md.trade.>"], 60, 1024)


def test_discovering_the_sink_plugins_loads_no_nats_client():
    # nats-py is loaded only by a run that configures [sinks.nats] (or a nats:// consumer)
    assert loaded_by_discovery("nats", ["nats"]) == []
