"""The plugin contract: one import for plugin authors, feeds and channels declared once,
the wire schema unchanged, and venues that break the contract refused at load with a
line naming the plugin while correct venues load."""

from __future__ import annotations

import types
from typing import Any, ClassVar, get_args

import msgspec
import pytest

import spiceflow_core.plugin as plugin_api
from spiceflow_core.broadcast.wire import CHANNEL_OF, BookMessage, StatusMessage, TopMessage, TradeMessage, encoder
from spiceflow_core.cli.main import build_parser
from spiceflow_core.config import ConfigError, VenueSettings, decode_settings
from spiceflow_core.plugin import contract
from spiceflow_core.plugin.registry import VenueRegistry, register_venues
from spiceflow_core.recording.replay import ReplayError, open_source

# -- one import ------------------------------------------------------------------------


def test_the_package_exports_the_whole_contract():
    assert set(plugin_api.__all__) == set(contract.__all__)
    for name in contract.__all__:
        assert getattr(plugin_api, name) is getattr(contract, name), name
    for needed in ("Venue", "WsSession", "RestApi", "Simulator", "SequencePolicy", "hookimpl", "FEEDS", "Trade"):
        assert needed in plugin_api.__all__


def test_the_contract_documents_every_plugin_file():
    doc = contract.__doc__ or ""
    for file in ("plugin.py", "config.py", "rest.py", "session.py", "parsing.py", "schemas.py", "sync.py"):
        assert f"``{file}``" in doc, file


# -- feeds and channels declared once -------------------------------------------------


def test_feeds_are_the_literal_and_channels_are_the_message_tags():
    assert plugin_api.FEEDS == get_args(plugin_api.Feed) == ("book", "trades", "top")
    assert set(plugin_api.FEED_CHANNEL) == set(plugin_api.FEEDS)
    by_tag = {channel: cls for cls, channel in CHANNEL_OF.items()}
    assert by_tag[plugin_api.FEED_CHANNEL["book"]] is BookMessage
    assert by_tag[plugin_api.FEED_CHANNEL["trades"]] is TradeMessage is plugin_api.Trade
    assert by_tag[plugin_api.FEED_CHANNEL["top"]] is TopMessage is plugin_api.TopOfBook
    assert CHANNEL_OF[StatusMessage] == "status"


def test_config_and_cli_accept_exactly_the_feeds():
    settings = decode_settings({"venues": {"x": {"feeds": list(plugin_api.FEEDS)}}}, "t.toml")
    assert settings.venues["x"].feeds == list(plugin_api.FEEDS)
    with pytest.raises(ConfigError, match=r"venues\.x\.feeds"):
        decode_settings({"venues": {"x": {"feeds": ["candles"]}}}, "t.toml")
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    feed = next(a for a in run._actions if a.dest == "feed")
    assert tuple(feed.choices) == plugin_api.FEEDS


# -- the wire schema v1, byte for byte --------------------------------------------------

GOLDEN = {
    # schema v1 plus its additive optional fields (``checksum_verified`` on books, the
    # ownership ``epoch`` on every message): consumers that do not know a field skip it
    # (map-encoded structs ignore unknown keys)
    "trade": (
        "8ea474797065a57472616465a874726164655f6964a137a57072696365a3312e35a473697a65a132a473696465a3627579ae"
        "65786368616e67655f74735f6d730baa726563765f74735f6e730da17601a576656e7565a762696e616e6365a673796d626f"
        "6ca742544355534454aa696e737472756d656e74b562696e616e63652e73706f742e4254432e55534454a9746f7069635f73"
        "657103ad7075626c6973685f74735f6e7305a565706f636800"
    ),
    "top": (
        "8fa474797065a3746f70a96269645f7072696365a131a86269645f73697a65a132a961736b5f7072696365c0a861736b5f73"
        "697a65c0a873657175656e636509ae65786368616e67655f74735f6d7303aa726563765f74735f6e7304a17601a576656e75"
        "65a764657269626974a673796d626f6cad4254432d50455250455455414caa696e737472756d656e74a178a9746f7069635f"
        "73657101ad7075626c6973685f74735f6e7302a565706f636800"
    ),
    "book": (
        "8ea474797065a4626f6f6ba873657175656e636504a4626964739192a131a132a461736b7390ae65786368616e67655f7473"
        "5f6d73c0aa726563765f74735f6e7300b1636865636b73756d5f7665726966696564c2a17601a576656e7565a162a673796d"
        "626f6ca153aa696e737472756d656e74a0a9746f7069635f73657101ad7075626c6973685f74735f6e7302a565706f636800"
    ),
    "status": (
        "8ba474797065a6737461747573a57374617465a57374617473a6726561736f6ea0a8636f756e7465727381a16101a17601a5"
        "76656e7565a162a673796d626f6ca12aaa696e737472756d656e74a0a9746f7069635f73657100ad7075626c6973685f7473"
        "5f6e7300a565706f636800"
    ),
}


def test_trades_and_tops_are_the_events_and_encode_as_schema_v1():
    trade = plugin_api.Trade(
        venue="binance",
        symbol="BTCUSDT",
        trade_id="7",
        price="1.5",
        size="2",
        side="buy",
        exchange_ts_ms=11,
        recv_ts_ns=13,
    )
    trade.instrument, trade.topic_seq, trade.publish_ts_ns = "binance.spot.BTC.USDT", 3, 5
    top = plugin_api.TopOfBook(
        venue="deribit",
        symbol="BTC-PERPETUAL",
        bid_price="1",
        bid_size="2",
        ask_price=None,
        ask_size=None,
        sequence=9,
        exchange_ts_ms=3,
        recv_ts_ns=4,
    )
    top.instrument, top.topic_seq, top.publish_ts_ns = "x", 1, 2
    book = BookMessage(venue="b", symbol="S", sequence=4, bids=[("1", "2")], asks=[], topic_seq=1, publish_ts_ns=2)
    status = StatusMessage(venue="b", symbol="*", state="stats", counters={"a": 1})
    got = {"trade": trade, "top": top, "book": book, "status": status}
    assert {k: encoder.encode(m).hex() for k, m in got.items()} == GOLDEN


# -- capture prefixes come from the plugins ----------------------------------------------


def test_capture_prefixes_are_declared_by_the_installed_plugins():
    from spiceflow_core.plugin.registry import discover

    prefixes = discover().capture_prefixes()
    assert prefixes["BINANCE"] == "binance" and prefixes["BINANCE_FUTURES"] == "binance-usdm"
    assert prefixes["DERIBIT"] == "deribit"


def test_a_capture_no_installed_venue_claims_is_refused(tmp_path):
    (tmp_path / "NOBODY.0").write_text("config line\n")
    with pytest.raises(ReplayError, match="names no installed venue"):
        open_source(tmp_path / "NOBODY", capture_prefixes={"BINANCE": "binance"})
    ((name, _),) = open_source(tmp_path / "NOBODY", capture_prefixes={"NOBODY": "toy"})
    assert name == "toy"


# -- venues refused at load ---------------------------------------------------------------


class _Session(plugin_api.WsSession):
    def subscribe(self, channels: list[str]) -> list[plugin_api.Request]:
        return []

    def unsubscribe(self, channels: list[str]) -> list[plugin_api.Request]:
        return []

    def parse(self, frame: str | bytes, recv_ts_ns: int) -> list[plugin_api.Event]:
        return []


class GoodVenue(plugin_api.Venue):
    """A venue keeping every rule (``resubscribe``: no REST snapshots needed)."""

    name: ClassVar[str] = "good"
    default_endpoints: ClassVar[plugin_api.Endpoints] = plugin_api.Endpoints(
        ws_url="ws://127.0.0.1:1", rest_url="http://127.0.0.1:1"
    )
    resync = "resubscribe"
    capture_prefixes: ClassVar[tuple[str, ...]] = ("GOOD",)

    async def fetch_instruments(self, rest: plugin_api.RestApi) -> list[plugin_api.Instrument]:
        return []

    def parse_instruments(self, files: dict[str, bytes]) -> list[plugin_api.Instrument]:
        return []

    def channels(self, instrument: plugin_api.Instrument, feed: plugin_api.Feed) -> list[str]:
        return [instrument.symbol]

    def new_session(self) -> plugin_api.WsSession:
        return _Session()

    def sequence_policy(self, instrument: plugin_api.Instrument) -> plugin_api.SequencePolicy:
        return plugin_api.ChainPolicy()


class GoodOptions(msgspec.Struct, forbid_unknown_fields=True):
    speed: int = 1


class LaxOptions(msgspec.Struct):
    speed: int = 1


def variant(**attrs: Any) -> GoodVenue:
    """A GoodVenue with class attributes replaced (a new class, so others are unaffected)."""
    return type("Variant", (GoodVenue,), attrs)()


def configured(self: GoodVenue, options: GoodOptions) -> GoodVenue:
    return self


def load(*venues: object, distribution: str = "spiceflow-broken") -> VenueRegistry:
    module = types.ModuleType("broken_plugin")

    @plugin_api.hookimpl
    def spiceflow_venues() -> list[object]:
        return list(venues)

    module.spiceflow_venues = spiceflow_venues  # type: ignore[attr-defined]
    registry = VenueRegistry()
    register_venues(registry, module, distribution, "6.6.6", "broken")
    return registry


def test_a_venue_keeping_the_contract_loads():
    registry = load(
        GoodVenue(), variant(name="good2", capture_prefixes=(), options_type=GoodOptions, configure=configured)
    )
    assert registry.failures == [] and registry.names() == ["good", "good2"]


@pytest.mark.parametrize(
    "attrs, reason",
    [
        ({"resync": "rest"}, 'has resync = "rest" but does not implement fetch_snapshot'),
        ({"resync": "sometimes"}, "resync is 'sometimes'"),
        ({"max_messages_per_second": 0}, "max_messages_per_second must be positive, got 0"),
        ({"max_messages_per_second": float("nan")}, "max_messages_per_second must be positive"),
        ({"max_streams_per_connection": -1}, "max_streams_per_connection must be a positive integer, got -1"),
        ({"snapshot_depth": 2.5}, "snapshot_depth must be a positive integer, got 2.5"),
        ({"heartbeat_timeout": 0.0}, "heartbeat_timeout must be positive or None, got 0.0"),
        ({"max_connection_age": -5}, "max_connection_age must be positive or None"),
        ({"rest_min_interval": -0.1}, "rest_min_interval must not be negative"),
        ({"min_silence_timeout": "10"}, "min_silence_timeout must not be negative"),
        ({"capture_prefixes": ("good",)}, "capture_prefixes must be a tuple of upper-case names"),
        ({"capture_prefixes": ["GOOD"]}, "capture_prefixes must be a tuple"),
        ({"capture_prefixes": ("GOOD", "GOOD")}, "capture_prefixes names a prefix twice"),
        ({"options_type": dict}, "options_type must be a msgspec.Struct subclass or None"),
        ({"options_type": LaxOptions}, "options_type LaxOptions must set forbid_unknown_fields=True"),
        ({"options_type": GoodOptions}, "declares options_type GoodOptions but does not implement configure"),
        ({"default_endpoints": None}, "has no default_endpoints"),
    ],
)
def test_inconsistent_venues_are_refused_with_a_line_naming_the_plugin(attrs, reason):
    registry = load(variant(**attrs), GoodVenue())
    assert registry.names() == ["good"]  # the plugin's correct venue still loads
    (failure,) = registry.failures
    line = failure.line()
    assert line.startswith("plugin spiceflow-broken 6.6.6 (broken) failed: venue 'good'"), line
    assert reason in line, line


def test_every_broken_rule_is_named_in_one_line():
    (failure,) = load(variant(resync="rest", snapshot_depth=0)).failures
    assert "fetch_snapshot" in failure.reason and "snapshot_depth" in failure.reason
    assert "\n" not in failure.line()


def test_a_capture_prefix_claimed_twice_is_refused_naming_the_owner():
    registry = load(GoodVenue())
    other = types.ModuleType("other_plugin")

    @plugin_api.hookimpl
    def spiceflow_venues() -> list[object]:
        return [variant(name="copycat")]

    other.spiceflow_venues = spiceflow_venues  # type: ignore[attr-defined]
    register_venues(registry, other, "spiceflow-copycat", "1.0", "copycat")
    assert registry.names() == ["good"]
    (failure,) = registry.failures
    assert failure.line() == (
        "plugin spiceflow-copycat 1.0 (copycat) failed: venue 'copycat': capture prefix 'GOOD' is already "
        "claimed by venue 'good' (spiceflow-broken)"
    )


def test_venue_settings_keep_the_options_table_raw():
    settings = decode_settings({"venues": {"x": {"options": {"nested": {"a": [1, 2]}, "flag": True}}}}, "t.toml")
    assert settings.venues["x"].options == {"nested": {"a": [1, 2]}, "flag": True}
    assert VenueSettings().options == {}
