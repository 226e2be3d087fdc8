"""Plugin options: ``[venues.<name>.options]`` decoded into the venue's ``options_type``
once the plugins are loaded and handed to ``Venue.configure``; a wrong key, type or
value is a config error naming the key and the file (exit 2 from the CLI)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from spiceflow_deribit import config as deribit_config
from spiceflow_deribit.plugin import Deribit

from spiceflow_core.cli.main import main
from spiceflow_core.config import ConfigError, Settings, decode_settings
from spiceflow_core.model import Instrument
from spiceflow_core.plugin.registry import LoadedVenue, VenueRegistry, configure_venues, register_venues

BTC_PERP = Instrument(
    venue="deribit", symbol="BTC-PERPETUAL", kind="perpetual", base="BTC", quote="USD", tick_size="0.5", lot_size="10"
)
CREDENTIALS = deribit_config.Credentials("id", "secret")


def settings(toml: str) -> Settings:
    return decode_settings(tomllib.loads(toml), "spiceflow.toml")


def registry_with(venue: Deribit) -> VenueRegistry:
    import spiceflow_binance.plugin as binance_plugin

    registry = VenueRegistry()
    register_venues(registry, binance_plugin, "spiceflow-binance", "0.1.0", "binance")
    registry.venues["deribit"] = LoadedVenue(venue, "spiceflow-deribit", "0.1.0")
    return registry


def configured(toml: str, venue: Deribit | None = None) -> Deribit:
    registry = registry_with(venue or Deribit(credentials=None))
    configure_venues(registry, settings(toml), "spiceflow.toml")
    deribit = registry.get("deribit")
    assert isinstance(deribit, Deribit)
    return deribit


def test_without_a_table_the_venue_runs_with_the_options_defaults():
    venue = configured("")
    assert venue.options == deribit_config.Options()
    assert venue.options.currencies == list(deribit_config.DEFAULT_CURRENCIES)
    assert venue.channels(BTC_PERP, "book") == ["book.BTC-PERPETUAL.100ms"]


def test_options_choose_currencies_and_the_channel_interval():
    toml = '[venues.deribit.options]\ncurrencies = ["BTC"]\ninterval = "100ms"\n'
    venue = configured(toml, Deribit(credentials=CREDENTIALS))
    assert venue.options.currencies == ["BTC"]
    # credentials would choose raw; the configured interval wins
    assert venue.channels(BTC_PERP, "book") == ["book.BTC-PERPETUAL.100ms"]
    assert venue.channels(BTC_PERP, "top") == ["ticker.BTC-PERPETUAL.100ms"]
    raw = configured('[venues.deribit.options]\ninterval = "raw"\n', Deribit(credentials=CREDENTIALS))
    assert raw.channels(BTC_PERP, "trades") == ["trades.BTC-PERPETUAL.raw"]


def test_configure_returns_a_new_venue_and_keeps_the_original():
    original = Deribit(credentials=None)
    venue = configured('[venues.deribit.options]\ncurrencies = ["ETH"]\n', original)
    assert venue is not original and original.options.currencies == list(deribit_config.DEFAULT_CURRENCIES)


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[venues.deribit.options]\nfoo = 1\n", "spiceflow.toml: venues.deribit.options.foo: unknown key"),
        (
            '[venues.deribit.options]\ncurrencies = "BTC"\n',
            "spiceflow.toml: venues.deribit.options.currencies: Expected `array`, got `str`",
        ),
        (
            '[venues.deribit.options]\ninterval = "1s"\n',
            "spiceflow.toml: venues.deribit.options.interval: Invalid enum value '1s'",
        ),
        (
            "[venues.deribit.options]\ncurrencies = []\n",
            "spiceflow.toml: venues.deribit.options: currencies must name at least one currency",
        ),
        (
            '[venues.deribit.options]\ninterval = "raw"\n',
            "spiceflow.toml: venues.deribit.options: interval 'raw' needs API credentials",
        ),
        ("[venues.binance.options]\nspeed = 1\n", "spiceflow.toml: venues.binance.options: venue 'binance' takes no"),
    ],
)
def test_bad_options_are_config_errors_naming_key_and_file(toml, message):
    with pytest.raises(ConfigError) as exc:
        configured(toml)
    assert str(exc.value).startswith(message), str(exc.value)


def test_a_configured_venue_breaking_the_contract_is_refused():
    class Broken(Deribit):
        def configure(self, options: deribit_config.Options) -> Deribit:
            venue = super().configure(options)
            venue.max_messages_per_second = -1.0  # type: ignore[misc]
            return venue

    with pytest.raises(
        ConfigError,
        match=r"venues\.deribit\.options: plugin spiceflow-deribit 0\.1\.0: .*max_messages_per_second must be positive",
    ):
        configured("", Broken(credentials=None))


def test_cli_run_exits_2_with_one_line_for_a_bad_option(tmp_path: Path, capsys):
    path = tmp_path / "spiceflow.toml"
    path.write_text('[venues.deribit]\ninstruments = ["BTC-PERPETUAL"]\n[venues.deribit.options]\ncurency = ["BTC"]\n')
    code = main(["run", "--config", str(path), "--venue", "deribit", "--no-api"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines() == [f"spiceflow run: error: {path}: venues.deribit.options.curency: unknown key"]
