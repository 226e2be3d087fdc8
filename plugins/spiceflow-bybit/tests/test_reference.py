"""Reference data: the packaged fixtures and instruments-info over REST (with
pagination through ``nextPageCursor``) against the simulator."""

from __future__ import annotations

import pytest
from spiceflow_bybit import config, rest
from spiceflow_bybit.plugin import BybitInverse, BybitLinear, BybitSpot
from spiceflow_bybit.simulator import BybitSimulator

from spiceflow_core.plugin.registry import discover
from spiceflow_core.plugin.rest import RestClient

pytestmark = pytest.mark.anyio


def fixture(venue) -> dict[str, bytes]:
    name = venue.spec.fixture_file
    return {name: (venue.fixtures_dir() / name).read_bytes()}


def test_linear_fixture():
    venue = BybitLinear()
    by_symbol = {i.symbol: i for i in venue.parse_instruments(fixture(venue))}
    btc = by_symbol["BTCUSDT"]
    assert (btc.venue, btc.exchange, btc.market, btc.kind) == ("bybit-linear", "bybit", "linear", "perpetual")
    assert (btc.base, btc.quote, btc.settle, btc.inverse) == ("BTC", "USDT", "USDT", False)
    assert (btc.tick_size, btc.lot_size, btc.min_size, btc.expiry_ms) == ("0.10", "0.001", "0.001", None)
    fut = by_symbol["BTC-26DEC25"]
    assert fut.kind == "future" and fut.expiry_ms == 1766736000000


def test_spot_and_inverse_fixtures():
    spot = {i.symbol: i for i in BybitSpot().parse_instruments(fixture(BybitSpot()))}
    assert spot["BTCUSDT"].kind == "spot" and spot["BTCUSDT"].lot_size == "0.000001"
    inverse = {i.symbol: i for i in BybitInverse().parse_instruments(fixture(BybitInverse()))}
    btc = inverse["BTCUSD"]
    assert btc.inverse and btc.settle == "BTC" and btc.quote == "USD" and btc.kind == "perpetual"


def test_an_error_answer_or_a_wrong_category_is_refused():
    with pytest.raises(ValueError, match="10001"):
        rest.parse_page(config.LINEAR, b'{"retCode":10001,"retMsg":"params error","result":{}}')
    body = fixture(BybitSpot())[config.SPOT.fixture_file]
    with pytest.raises(ValueError, match="category"):
        rest.parse_page(config.LINEAR, body)


def test_every_venue_loads_through_the_registry():
    registry = discover()
    for spec in config.CATEGORIES:
        venue = registry.get(spec.venue)
        assert venue.capture_prefixes == (spec.capture_prefix,)
        assert venue.maintained_depth(None) == 50  # type: ignore[arg-type]
        assert venue.book_checksum(None) is None  # type: ignore[arg-type]


def test_depth_option():
    venue = BybitLinear().configure(config.Options(depth=200))
    assert venue.depth == 200
    with pytest.raises(ValueError, match="depth"):
        BybitLinear(options=config.Options(depth=1))  # level 1 is the top-of-book feed


async def test_fetch_follows_the_cursor():
    symbols = ["BTCUSDT", "ETHUSDT", "SIM3USDT"]
    async with BybitSimulator(config.LINEAR, symbols=symbols) as sim:
        async with RestClient(sim.endpoints.rest_url) as client:
            instruments = await BybitLinear().fetch_instruments(client)
    assert sorted(i.symbol for i in instruments) == sorted(symbols)
    cursors = [path for path in sim._server.http_requests if "cursor=" in path]
    assert len(cursors) == 1  # the second page was asked for
