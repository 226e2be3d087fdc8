"""Reference data (fixtures and REST), channel names and the plugin hook.

FILL IN: when fixtures/instruments.json holds the real exchange's answer, update the
expected symbols and fields here.
"""

import pytest
from {{ cookiecutter.__package }} import config

from spiceflow_core.plugin.rest import RestClient

pytestmark = pytest.mark.anyio


def test_the_hook_registers_the_venue(registry):
    venue = registry.get(config.VENUE)
    assert venue.name == "{{ cookiecutter.venue_slug }}"
    assert (venue.display_name, venue.default_endpoints) == (config.DISPLAY_NAME, config.ENDPOINTS)
    assert venue.capture_prefixes == (config.CAPTURE_PREFIX,)


def test_packaged_fixtures_parse_into_instruments(venue):
    directory = venue.fixtures_dir()
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    instruments = {i.symbol: i for i in venue.parse_instruments(files)}
    assert {"BTCUSDT", "ETHUSDT", "OLDUSDT"} <= set(instruments)
    btc = instruments["BTCUSDT"]
    assert (btc.venue, btc.base, btc.quote, btc.kind) == (config.VENUE, "BTC", "USDT", "spot")
    assert (btc.tick_size, btc.lot_size) == ("0.01", "0.00001")  # exact strings
    assert btc.active and not instruments["OLDUSDT"].active
    assert btc.normalized == f"{config.EXCHANGE}.spot.BTC.USDT"


def test_missing_fixture_file_is_named(venue):
    with pytest.raises(FileNotFoundError, match=config.INSTRUMENTS_FIXTURE):
        venue.parse_instruments({"other.json": b"{}"})


def test_book_channel_names(venue):
    fixture = (venue.fixtures_dir() / config.INSTRUMENTS_FIXTURE).read_bytes()
    [btc] = [i for i in venue.parse_instruments({config.INSTRUMENTS_FIXTURE: fixture}) if i.symbol == "BTCUSDT"]
    assert venue.channels(btc, "book") == ["{{ "btcusdt@book" if cookiecutter.protocol_style == "plain-json" else "book.BTCUSDT" }}"]
    with pytest.raises(ValueError, match="not implemented"):
        venue.channels(btc, "trades")


async def test_instruments_over_rest_from_the_simulator(venue):
    async with (
        venue.simulator(symbols=["BTCUSDT", "NEWUSD"]) as sim,
        RestClient(sim.endpoints.rest_url, retries=0) as rest,
    ):
        instruments = {i.symbol: i for i in await venue.fetch_instruments(rest)}
    assert set(instruments) == {"BTCUSDT", "NEWUSD"}
    assert instruments["BTCUSDT"].tick_size == "0.01"
