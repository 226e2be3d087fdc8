"""The one instrument filter (config rules, control API fields, ``spiceflow
instruments``), config selection and resolution by symbol or normalized id."""

from __future__ import annotations

import datetime as dt

import pytest

from spiceflow_core.config import ConfigError, decode_settings
from spiceflow_core.instruments import (
    KIND_CODES,
    InactiveInstrument,
    InstrumentFilter,
    Selection,
    UnknownInstrument,
    matches,
    resolve,
    select,
)
from spiceflow_core.model import Instrument

NOW_MS = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
DAY_MS = 86_400_000


def expiry(days: float) -> int:
    return int(NOW_MS + days * DAY_MS)


SPOT = Instrument(
    venue="v", exchange="x", symbol="BTCUSDT", kind="spot", base="BTC", quote="USDT", tick_size="0.01", lot_size="0.001"
)
LINPERP = Instrument(
    venue="v", exchange="x", symbol="BTCUSDT-P", kind="perpetual", base="BTC", quote="USDT", settle="USDT",
    tick_size="0.1", lot_size="0.001", settlement_period="perpetual",
)  # fmt: skip
INVFUT = Instrument(
    venue="v", exchange="x", symbol="BTC-10JAN26", kind="future", base="BTC", quote="USD", settle="BTC", inverse=True,
    tick_size="0.5", lot_size="10", expiry_ms=expiry(9), settlement_period="week",
)  # fmt: skip
CALL = Instrument(
    venue="v", exchange="x", symbol="BTC-31JAN26-100000-C", kind="option", base="BTC", quote="USD", settle="BTC",
    inverse=True, tick_size="0.0005", lot_size="0.1", expiry_ms=expiry(30), strike="100000", option_type="call",
)  # fmt: skip
HALTED = Instrument(
    venue="v", exchange="x", symbol="ETHUSDT", kind="spot", base="ETH", quote="USDT", tick_size="0.01", lot_size="0.01",
    active=False,
)  # fmt: skip
ALL = [SPOT, LINPERP, INVFUT, CALL, HALTED]


def hits(**fields) -> list[str]:
    rule = InstrumentFilter(**fields)
    return [i.symbol for i in ALL if matches(i, rule, NOW_MS)]


def test_an_empty_filter_matches_everything():
    assert hits() == [i.symbol for i in ALL]


def test_kind_accepts_model_kinds_and_normalized_kind_codes():
    assert hits(kind="perpetual") == hits(kind="linperp") == ["BTCUSDT-P"]
    assert hits(kind="invfut") == hits(kind="future") == ["BTC-10JAN26"]
    assert hits(kind="invperp") == hits(kind="linfut") == []
    assert {i.kind_code for i in ALL} <= KIND_CODES
    assert LINPERP.normalized.split(".")[1] == LINPERP.kind_code == "linperp"


def test_currencies_compare_without_case():
    assert hits(base="btc", quote="usdt") == ["BTCUSDT", "BTCUSDT-P"]
    assert hits(settle="btc") == ["BTC-10JAN26", "BTC-31JAN26-100000-C"]


def test_inverse_symbol_glob_and_settlement_period():
    assert hits(inverse=True) == ["BTC-10JAN26", "BTC-31JAN26-100000-C"]
    assert hits(inverse=False, symbol="*USDT*") == ["BTCUSDT", "BTCUSDT-P", "ETHUSDT"]
    assert hits(symbol="btc*") == []  # globs are case-sensitive, like exchange symbols
    assert hits(settlement_period="week") == ["BTC-10JAN26"]


def test_expiry_day_and_expiring_within():
    assert hits(expiry="20260131") == ["BTC-31JAN26-100000-C"]
    assert hits(expiry="20260130") == []
    assert hits(expires_within_days=10) == ["BTC-10JAN26"]
    assert hits(expires_within_days=30) == ["BTC-10JAN26", "BTC-31JAN26-100000-C"]
    # expired (expiry not after now) never matches; perpetuals never expire
    gone = InstrumentFilter(expires_within_days=365)
    assert not matches(INVFUT, gone, now_ms=INVFUT.expiry_ms)
    assert not matches(LINPERP, gone, NOW_MS)


def test_strike_is_a_number_and_option_type_a_letter_or_word():
    assert hits(strike="100000.0") == hits(strike="1E+5") == ["BTC-31JAN26-100000-C"]
    assert hits(strike="99999") == hits(strike="not a number") == []
    assert hits(option_type="C") == hits(option_type="call") == ["BTC-31JAN26-100000-C"]
    assert hits(option_type="P") == []


def test_config_rules_take_every_filter_field_and_refuse_unknown_ones():
    raw = {"select": [{"kind": "linperp", "quote": "USDT", "option_type": "C", "strike": "1", "limit": 2}]}
    settings = decode_settings({"venues": {"v": raw}}, "spiceflow.toml")
    (rule,) = settings.venues["v"].select
    assert isinstance(rule, Selection) and isinstance(rule, InstrumentFilter)
    assert (rule.kind, rule.quote, rule.option_type, rule.strike, rule.limit) == ("linperp", "USDT", "C", "1", 2)
    with pytest.raises(ConfigError, match=r"spiceflow.toml: venues.v.select\[0\].expiry_days: unknown key"):
        decode_settings({"venues": {"v": {"select": [{"expiry_days": 3}]}}}, "spiceflow.toml")
    with pytest.raises(ConfigError, match=r"venues.v.select\[0\].kind: Invalid enum value 'swap'"):
        decode_settings({"venues": {"v": {"select": [{"kind": "swap"}]}}}, "spiceflow.toml")


def test_select_combines_names_globs_and_rules_over_active_instruments():
    by_symbol = {i.symbol: i for i in ALL}
    chosen = select(
        by_symbol,
        ["btcusdt", "BTC-*"],
        [Selection(quote="USDT", limit=5), Selection(kind="option")],
        "v",
        now_ms=NOW_MS,
    )
    # ETHUSDT is halted: the USDT rule skips it
    assert [i.symbol for i in chosen] == ["BTCUSDT", "BTC-10JAN26", "BTC-31JAN26-100000-C", "BTCUSDT-P"]
    limited = select(by_symbol, [], [Selection(base="BTC", limit=2)], "v", now_ms=NOW_MS)
    assert [i.symbol for i in limited] == ["BTC-10JAN26", "BTC-31JAN26-100000-C"]  # symbol order


def test_resolve_by_symbol_or_normalized_id_with_clear_errors():
    by_symbol = {i.symbol: i for i in ALL}
    assert resolve(by_symbol, "btcusdt-p") is LINPERP
    assert resolve(by_symbol, LINPERP.normalized.lower()) is LINPERP
    with pytest.raises(UnknownInstrument, match="close matches: BTCUSDT"):
        resolve(by_symbol, "BTCUSDX", "v")
    with pytest.raises(InactiveInstrument):
        resolve(by_symbol, "ETHUSDT", "v")
