"""Reference data: ``public/get_instruments`` -> core ``Instrument`` (selecting among
them is the core's ``spiceflow_core.instruments.InstrumentFilter``).

Deribit answers one currency per call (``currency=any`` for all). We call without a
``kind`` filter so futures, options, spot and combos come in one answer; combos are
skipped because the core model has no combo kind. ``expired=false`` asks the exchange
for live instruments only, and a clock you can inject drops anything that expired
since; fixtures (recorded in 2021) are loaded without that filter.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable

import msgspec
from loguru import logger

from spiceflow_core.model import Instrument, Kind
from spiceflow_core.plugin import RestApi

from . import config, schemas
from .parsing import format_decimal

#: Deribit's "never expires" expiration_timestamp of perpetuals (year 3000)
_PERPETUAL_FAR_FUTURE_MS = 32503708800000


def map_instrument(info: schemas.InstrumentInfo, currency: str = "") -> Instrument | None:
    """One ``get_instruments`` entry as a core Instrument, or None for combos."""
    if info.kind == "future":
        kind: Kind = "perpetual" if info.settlement_period == "perpetual" else "future"
    elif info.kind in ("option", "spot"):
        kind = "option" if info.kind == "option" else "spot"
    else:
        return None
    base = info.base_currency
    # Older answers (the 2021 recording) have no settlement_currency: BTC/ETH
    # futures are quoted in USD and settle in the coin, options are priced in the coin.
    settle = info.settlement_currency or (base if info.quote_currency in (base, "USD") else info.quote_currency)
    if kind == "option":
        # premium in the settlement coin, strike in the counter currency (USD for
        # coin-settled options): the option is "on BASE/USD"
        quote = info.counter_currency or ("USD" if info.quote_currency == base else info.quote_currency)
    else:
        quote = info.quote_currency
    inverse = kind != "spot" and settle == base and quote != base
    linear_type = (info.instrument_type or info.future_type or "") == "linear"
    if linear_type:
        inverse = False
    expiry = None
    if kind in ("future", "option") and info.expiration_timestamp < _PERPETUAL_FAR_FUTURE_MS:
        expiry = info.expiration_timestamp
    return Instrument(
        venue=config.VENUE,
        exchange=config.EXCHANGE,
        market=currency or settle,
        symbol=info.instrument_name,
        kind=kind,
        base=base,
        quote=quote,
        settle=settle,
        inverse=inverse,
        tick_size=format_decimal(info.tick_size, normalize=True),
        lot_size=format_decimal(info.min_trade_amount, normalize=True),
        min_size=format_decimal(info.min_trade_amount, normalize=True),
        contract_size=format_decimal(info.contract_size, normalize=True),
        expiry_ms=expiry,
        strike=format_decimal(info.strike, normalize=True) if info.strike is not None and kind == "option" else None,
        option_type=info.option_type if kind == "option" else None,
        settlement_period=info.settlement_period,
        active=info.is_active,
    )


def map_response(body: bytes, currency: str = "", *, now_ms: int | None = None) -> list[Instrument]:
    """A ``get_instruments`` body -> instruments; ``now_ms`` drops expired ones."""
    response = schemas.instruments_decoder.decode(body)
    out = []
    for info in response.result:
        inst = map_instrument(info, currency)
        if inst is None:
            continue
        if now_ms is not None and inst.expiry_ms is not None and inst.expiry_ms <= now_ms:
            continue
        out.append(inst)
    return out


_CURRENCY_FROM_NAME = re.compile(r"get_instruments[._-](?P<cur>[A-Za-z]+)")


def parse_files(files: dict[str, bytes], *, now_ms: int | None = None) -> list[Instrument]:
    """Fixture files ``get_instruments.<CURRENCY>.json`` (raw REST bodies)."""
    seen: dict[str, Instrument] = {}
    for name in sorted(files):
        if not name.endswith(".json"):
            continue
        match = _CURRENCY_FROM_NAME.search(name)
        currency = match["cur"].upper() if match else ""
        try:
            for inst in map_response(files[name], currency, now_ms=now_ms):
                seen.setdefault(inst.symbol, inst)
        except msgspec.DecodeError as exc:
            raise ValueError(f"fixture {name}: not a get_instruments answer: {exc}") from None
    return list(seen.values())


async def fetch_instruments(
    rest: RestApi,
    currencies: Iterable[str] = config.DEFAULT_CURRENCIES,
    *,
    clock: Callable[[], float] = time.time,
) -> list[Instrument]:
    now_ms = int(clock() * 1000)
    seen: dict[str, Instrument] = {}
    for currency in currencies:
        body = await rest.get_bytes("/public/get_instruments", {"currency": currency, "expired": "false"})
        instruments = map_response(body, currency, now_ms=now_ms)
        logger.bind(venue=config.VENUE).debug("{} instruments for {}", len(instruments), currency)
        for inst in instruments:
            seen.setdefault(inst.symbol, inst)
    return list(seen.values())


def instrument_name_date(day: dt.date) -> str:
    """Deribit's expiry code in names: 2021-09-24 -> ``24SEP21``."""
    return f"{day.day}{day.strftime('%b').upper()}{day.strftime('%y')}"
