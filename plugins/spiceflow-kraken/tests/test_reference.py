"""Reference data: AssetPairs (the packaged fixture, the simulator's REST) -> instruments."""

from __future__ import annotations

import pytest
from spiceflow_kraken import config, rest
from spiceflow_kraken.plugin import FIXTURES, Kraken

from spiceflow_core.plugin.rest import RestClient


def instruments():
    return {i.symbol: i for i in Kraken().parse_instruments({p.name: p.read_bytes() for p in FIXTURES.glob("*.json")})}


def test_fixture_pairs_become_v2_symbols_and_normalized_ids():
    by_symbol = instruments()
    btc = by_symbol["BTC/USD"]  # wsname XBT/USD
    assert btc.normalized == "kraken.spot.BTC.USD"
    assert (btc.base, btc.quote, btc.kind, btc.tick_size, btc.lot_size, btc.min_size) == (
        "BTC",
        "USD",
        "spot",
        "0.1",
        "0.00000001",
        "0.00005",
    )
    assert by_symbol["ETH/BTC"].normalized == "kraken.spot.ETH.BTC"  # XBT as quote
    assert "DOGE/USD" in by_symbol  # XDG
    assert by_symbol["MATIC/USD"].active is False  # cancel_only
    assert not any(s.endswith(".d") or "XBTUSD" in s for s in by_symbol)  # no wsname: not on the WebSocket
    assert set(config.DEFAULT_INSTRUMENTS) <= set(by_symbol)


def test_checksum_precision_comes_from_reference_data():
    venue = Kraken()
    checksum = venue.book_checksum(instruments()["ETH/USD"])
    assert (checksum.price_decimals, checksum.qty_decimals) == (2, 8)
    assert venue.maintained_depth(instruments()["ETH/USD"]) == config.DEFAULT_BOOK_DEPTH
    assert Kraken(config.Options(book_depth=100)).maintained_depth(instruments()["ETH/USD"]) == 100


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"error":["EGeneral:Internal error"],"result":{}}', "EGeneral:Internal error"),
        (b"not json", "bad AssetPairs"),
        (b'{"error":[],"result":{"X":{"altname":"X"}}}', "bad AssetPairs"),
    ],
)
def test_bad_answers_are_errors(body, error):
    with pytest.raises(ValueError, match=error):
        rest.parse_instruments(body)


@pytest.mark.anyio
async def test_fetch_instruments_from_the_simulators_rest():
    venue = Kraken()
    async with venue.simulator(symbols=["BTC/USD", "S01/USD"]) as sim:
        async with RestClient(sim.endpoints.rest_url) as client:
            got = {i.symbol: i for i in await venue.fetch_instruments(client)}
    assert set(got) == {"BTC/USD", "S01/USD"}
    assert got["BTC/USD"].tick_size == "0.1" and got["S01/USD"].tick_size == "0.01"
