from pathlib import Path

import pytest
from spiceflow_binance.plugin import FIXTURES, BinanceCoinm, BinanceSpot, BinanceUsdm, spiceflow_venues
from spiceflow_binance.rest import InstrumentError, resolve


def _load(venue):
    files = {p.name: p.read_bytes() for p in Path(venue.fixtures_dir()).iterdir() if p.suffix == ".json"}
    return {i.symbol: i for i in venue.parse_instruments(files)}


def test_three_venues_with_live_endpoints():
    venues = {v.name: v for v in spiceflow_venues()}
    assert set(venues) == {"binance", "binance-usdm", "binance-coinm"}
    assert venues["binance"].default_endpoints.ws_url == "wss://stream.binance.com:9443/stream"
    assert venues["binance"].default_endpoints.rest_url == "https://api.binance.com"
    assert venues["binance-usdm"].default_endpoints.ws_url == "wss://fstream.binance.com/stream"
    assert venues["binance-usdm"].default_endpoints.rest_url == "https://fapi.binance.com"
    assert venues["binance-coinm"].default_endpoints.ws_url == "wss://dstream.binance.com/stream"
    assert venues["binance-coinm"].default_endpoints.rest_url == "https://dapi.binance.com"
    assert all(v.resync == "rest" and v.exchange == "binance" for v in venues.values())


def test_repo_fixtures_symlink_points_at_package_data():
    repo = Path(__file__).resolve().parents[3] / "fixtures" / "binance"
    assert repo.is_symlink() and repo.resolve() == FIXTURES.resolve()


def test_spot_mapping():
    spot = _load(BinanceSpot())
    btc = spot["BTCUSDT"]
    assert (btc.kind, btc.base, btc.quote, btc.market, btc.exchange) == ("spot", "BTC", "USDT", "spot", "binance")
    assert btc.tick_size == "0.01000000" and btc.lot_size == "0.00001000"
    assert btc.active and btc.normalized == "binance.spot.BTC.USDT"
    for symbol in ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR", "ETHUSDT"):
        assert spot[symbol].active
    halted = spot["BCCBTC"]  # status BREAK
    assert not halted.active


def test_usdm_mapping():
    usdm = _load(BinanceUsdm())
    perp = usdm["BTCUSDT"]
    assert (perp.kind, perp.settle, perp.inverse, perp.expiry_ms) == ("perpetual", "USDT", False, None)
    assert perp.tick_size == "0.01" and perp.lot_size == "0.001"
    assert perp.normalized == "binance.linperp.BTC.USDT"
    quarter = usdm["BTCUSDT_210924"]
    assert quarter.kind == "future" and quarter.expiry_ms == 1632470400000
    assert quarter.normalized == "binance.linfut.BTC.USDT.20210924"
    assert not usdm["BTCSTUSDT"].active  # PENDING_TRADING
    assert usdm["SUSHIUSDT"].tick_size == "0.0010"


def test_coinm_mapping():
    coinm = _load(BinanceCoinm())
    perp = coinm["BTCUSD_PERP"]
    assert (perp.kind, perp.inverse, perp.contract_size, perp.settle, perp.quote) == (
        "perpetual",
        True,
        "100",
        "BTC",
        "USD",
    )
    assert perp.normalized == "binance.invperp.BTC.USD"
    fut = coinm["ETHUSD_210924"]
    assert fut.kind == "future" and fut.contract_size == "10" and fut.expiry_ms == 1632470400000
    assert not coinm["ADAUSD_210625"].active and not coinm["LINKUSD_PERP"].active


def test_missing_fixture_file_is_named():
    with pytest.raises(FileNotFoundError, match=r"dapi_v1_exchangeInfo\.json"):
        BinanceCoinm().parse_instruments({"other.json": b"{}"})


def test_resolve_errors_name_the_symbol():
    spot = list(_load(BinanceSpot()).values())
    assert resolve(spot, "btcusdt").symbol == "BTCUSDT"
    with pytest.raises(InstrumentError, match="unknown symbol 'NOPEUSDT'"):
        resolve(spot, "NOPEUSDT")
    with pytest.raises(InstrumentError, match="'BCCBTC' is not trading"):
        resolve(spot, "BCCBTC")


def test_channels():
    spot, usdm = BinanceSpot(), BinanceUsdm()
    btc = _load(spot)["BTCUSDT"]
    assert spot.channels(btc, "book") == ["btcusdt@depth@100ms"]
    assert spot.channels(btc, "top") == ["btcusdt@bookTicker"]
    assert spot.channels(btc, "trades") == ["btcusdt@trade"]
    assert usdm.channels(_load(usdm)["BTCUSDT"], "trades") == ["btcusdt@aggTrade"]


def test_registers_through_the_core_plugin_manager():
    from spiceflow_binance import plugin

    from spiceflow_core.plugin.registry import VenueRegistry, register_venues

    registry = VenueRegistry()
    register_venues(registry, plugin, "spiceflow-binance", "0.1.0", "binance")
    assert registry.failures == []
    assert registry.names() == ["binance", "binance-coinm", "binance-usdm"]
