"""Reference data: the packaged fixtures (OKX answers), REST from the simulator,
channel names and the hook."""

from __future__ import annotations

import pytest
from spiceflow_okx import config, rest

from spiceflow_core.plugin.rest import RestClient

pytestmark = pytest.mark.anyio


def _fixtures(venue):
    return {p.name: p.read_bytes() for p in venue.fixtures_dir().iterdir() if p.is_file()}


def test_the_hook_registers_the_venue(registry):
    venue = registry.get("okx")
    assert venue.default_endpoints.ws_url == "wss://ws.okx.com:8443/ws/v5/public"
    assert venue.capture_prefixes == ("OKX",) and venue.resync == "resubscribe"


def test_fixtures_map_to_normalized_ids(venue):
    by_symbol = {i.symbol: i for i in venue.parse_instruments(_fixtures(venue))}
    expected = {
        "BTC-USDT": "okx.spot.BTC.USDT",
        "BTC-USDT-SWAP": "okx.linperp.BTC.USDT",
        "BTC-USD-SWAP": "okx.invperp.BTC.USD",
        "BTC-USD-240628": "okx.invfut.BTC.USD.20240628",
        "BTC-USDT-240628": "okx.linfut.BTC.USDT.20240628",
        "BTC-USD-240628-60000-C": "okx.option.BTC.USD.20240628.60000.C",
        "BTC-USD-240628-60000-P": "okx.option.BTC.USD.20240628.60000.P",
    }
    assert {s: by_symbol[s].normalized for s in expected} == expected
    swap = by_symbol["BTC-USD-SWAP"]
    assert (swap.contract_size, swap.settle, swap.tick_size, swap.lot_size) == ("100", "BTC", "0.1", "1")
    assert by_symbol["BTC-USDT"].lot_size == "0.00000001"  # exact strings
    assert not by_symbol["ZEN-USDT"].active and by_symbol["BTC-USDT"].active


def test_a_refused_answer_is_an_error():
    with pytest.raises(ValueError, match="51000"):
        rest.parse_body(b'{"code":"51000","msg":"Parameter instType error","data":[]}')


def test_options_need_one_request_per_family():
    assert rest.requests_for(["SPOT", "OPTION"], ["BTC-USD", "ETH-USD"]) == [
        {"instType": "SPOT"},
        {"instType": "OPTION", "instFamily": "BTC-USD"},
        {"instType": "OPTION", "instFamily": "ETH-USD"},
    ]


def test_channel_names(venue):
    [btc] = [i for i in venue.parse_instruments(_fixtures(venue)) if i.symbol == "BTC-USDT"]
    assert [venue.channels(btc, f) for f in ("book", "top", "trades")] == [
        ["books:BTC-USDT"],
        ["bbo-tbt:BTC-USDT"],
        ["trades:BTC-USDT"],
    ]


async def test_instruments_over_rest_from_the_simulator(venue):
    symbols = ["BTC-USDT", "BTC-USDT-SWAP", "BTC-USD-250926", "BTC-USD-250926-90000-C"]
    async with venue.simulator(symbols=symbols) as sim, RestClient(sim.endpoints.rest_url, retries=0) as client:
        instruments = {i.symbol: i for i in await venue.fetch_instruments(client)}
        paths = list(sim._server.http_requests)
    assert set(instruments) == set(symbols)
    assert instruments["BTC-USD-250926-90000-C"].normalized == "okx.option.BTC.USD.20250926.90000.C"
    assert sum("instType=OPTION" in p for p in paths) == len(config.OPTION_FAMILIES)
