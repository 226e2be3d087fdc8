"""Reference data: fixtures -> core Instruments, REST fetch against the simulator,
selection by the core's instrument filter on Deribit's fields."""

from __future__ import annotations

import datetime as dt

import pytest
from spiceflow_deribit.config import Options
from spiceflow_deribit.plugin import FIXTURES, Deribit
from spiceflow_deribit.simulator import DeribitSimulator

from spiceflow_core.instruments import InstrumentFilter, matches
from spiceflow_core.plugin.rest import RestClient

RECORDED = {
    "BTC-24SEP21-8000-P",
    "BTC-30JUL21-24000-P",
    "ETH-30JUL21-2800-C",
    "BTC-31DEC21-34000-P",
    "BTC-24SEP21-34000-P",
    "BTC-24JUN22-15000-C",
    "BTC-31DEC21-300000-C",
    "ETH-27AUG21-4000-P",
    "BTC-25MAR22-30000-C",
    "ETH-23JUL21-2300-C",
}
RECORDED_AT_MS = 1626993723000  # 2021-07-22, when the fixtures were recorded


def fixture_instruments():
    files = {p.name: p.read_bytes() for p in FIXTURES.iterdir() if p.is_file()}
    return {i.symbol: i for i in Deribit().parse_instruments(files)}


def test_fixtures_keep_recorded_instruments_and_perpetuals():
    by_symbol = fixture_instruments()
    assert set(by_symbol) >= RECORDED
    perps = {s for s, i in by_symbol.items() if i.kind == "perpetual"}
    assert {"BTC-PERPETUAL", "ETH-PERPETUAL", "SOL-PERPETUAL", "UNI_USDC-PERPETUAL"} <= perps
    assert all(i.venue == "deribit" and i.exchange == "deribit" for i in by_symbol.values())


def test_inverse_perpetual_mapping():
    btc = fixture_instruments()["BTC-PERPETUAL"]
    assert (btc.kind, btc.base, btc.quote, btc.settle, btc.inverse) == ("perpetual", "BTC", "USD", "BTC", True)
    assert (btc.tick_size, btc.lot_size, btc.min_size, btc.contract_size) == ("0.5", "10", "10", "10")
    assert btc.expiry_ms is None and btc.settlement_period == "perpetual" and btc.market == "BTC"
    assert btc.normalized == "deribit.invperp.BTC.USD"


def test_linear_usdc_perpetual_mapping():
    uni = fixture_instruments()["UNI_USDC-PERPETUAL"]
    assert (uni.kind, uni.base, uni.quote, uni.settle, uni.inverse) == ("perpetual", "UNI", "USDC", "USDC", False)
    assert uni.tick_size == "0.001" and uni.market == "USDC"


def test_future_expiry_mapping():
    fut = fixture_instruments()["BTC-24SEP21"]
    assert fut.kind == "future" and fut.inverse
    assert fut.expiry_ms == 1632470400000
    assert dt.datetime.fromtimestamp(fut.expiry_ms / 1000, dt.UTC).date() == dt.date(2021, 9, 24)
    assert fut.normalized == "deribit.invfut.BTC.USD.20210924"


def test_option_strike_type_tick():
    opt = fixture_instruments()["BTC-24SEP21-8000-P"]
    assert (opt.kind, opt.strike, opt.option_type, opt.tick_size, opt.lot_size) == (
        "option",
        "8000",
        "put",
        "0.0005",
        "0.1",
    )
    assert (opt.base, opt.quote, opt.settle, opt.inverse) == ("BTC", "USD", "BTC", True)
    assert opt.normalized == "deribit.option.BTC.USD.20210924.8000.P"
    eth = fixture_instruments()["ETH-30JUL21-2800-C"]
    assert eth.option_type == "call" and eth.strike == "2800" and eth.lot_size == "1"


def select(**fields) -> list:
    rule = InstrumentFilter(**fields)
    return [i for i in fixture_instruments().values() if i.active and matches(i, rule, RECORDED_AT_MS)]


def test_select_by_filter():
    perps = select(kind="perpetual")
    assert {i.symbol for i in perps} >= {"BTC-PERPETUAL", "ETH-PERPETUAL"}
    assert all(i.kind == "perpetual" for i in perps)
    soon = select(kind="option", base="BTC", expires_within_days=30)
    assert soon and all(i.base == "BTC" and i.kind == "option" for i in soon)
    assert all(RECORDED_AT_MS < i.expiry_ms <= RECORDED_AT_MS + 30 * 86_400_000 for i in soon)
    assert "BTC-30JUL21-24000-P" in {i.symbol for i in soon}
    assert "BTC-24SEP21-8000-P" not in {i.symbol for i in soon}  # 64 days away
    puts = select(base="BTC", option_type="P", strike="8000.0", expiry="20210924")
    assert [i.symbol for i in puts] == ["BTC-24SEP21-8000-P"]
    usdc = select(settle="usdc", kind="linperp")
    assert "UNI_USDC-PERPETUAL" in {i.symbol for i in usdc} and all(not i.inverse for i in usdc)
    assert {i.symbol for i in select(settlement_period="perpetual")} == {i.symbol for i in perps}


@pytest.mark.anyio
async def test_fetch_instruments_over_rest_from_recorded_answers(recording):
    async with DeribitSimulator(recording=recording) as sim:
        async with RestClient(sim.endpoints.rest_url) as client:
            # the recorded answers as of their recording time: nothing expired yet
            venue = Deribit(options=Options(currencies=["BTC", "ETH"]), clock=lambda: RECORDED_AT_MS / 1000)
            instruments = await venue.fetch_instruments(client)
            assert len(instruments) == 398 + 426
            # today every dated 2021/2022 instrument is expired; perpetuals remain
            today = await Deribit(options=Options(currencies=["BTC", "ETH"])).fetch_instruments(client)
            assert {i.symbol for i in today} == {"BTC-PERPETUAL", "ETH-PERPETUAL"}
        assert any("expired=false" in r and "currency=BTC" in r for r in sim._server.http_requests)


@pytest.mark.anyio
async def test_fetch_instruments_from_generator_are_live_today():
    async with DeribitSimulator(instruments=6) as sim, RestClient(sim.endpoints.rest_url) as client:
        instruments = await Deribit(options=Options(currencies=["BTC", "ETH"])).fetch_instruments(client)
    assert {i.symbol for i in instruments} == set(sim.symbols())
    assert {i.kind for i in instruments} == {"perpetual", "future", "option"}


@pytest.mark.anyio
async def test_rest_errors_are_retried():
    async with DeribitSimulator(instruments=2) as sim:
        sim.faults.rest_errors = [500]
        async with RestClient(sim.endpoints.rest_url, backoff=0.01) as client:
            instruments = await Deribit(options=Options(currencies=["BTC"])).fetch_instruments(client)
        assert [i.symbol for i in instruments] == ["BTC-PERPETUAL"]
        assert client.failures == 1
