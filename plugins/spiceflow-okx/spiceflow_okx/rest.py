"""Reference data: ``GET /api/v5/public/instruments`` -> core ``Instrument``.

One request per instrument type (``SPOT``, ``SWAP``, ``FUTURES``) and, for
``OPTION``, per option family (OKX requires ``instFamily`` or ``uly`` there). The
``fixtures`` profile reads the same bodies saved as ``instruments.<INSTTYPE>.json``.

Normalized ids: spot ``okx.spot.BTC.USDT`` (``baseCcy``/``quoteCcy``); derivatives take
base and quote from ``instFamily`` (``BTC-USDT`` -> BTC, USDT) and are linear or
inverse by ``ctType`` -- ``okx.linperp.BTC.USDT``, ``okx.invperp.BTC.USD``,
``okx.invfut.BTC.USD.20240628``, ``okx.option.BTC.USD.20240628.60000.C``.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from loguru import logger

from spiceflow_core.model import Instrument, Kind
from spiceflow_core.plugin import RestApi

from . import config, schemas

_KINDS: dict[str, Kind] = {"SPOT": "spot", "SWAP": "perpetual", "FUTURES": "future", "OPTION": "option"}


def _family(row: schemas.InstrumentRow) -> tuple[str, str]:
    family = row.instFamily or row.uly
    base, _, quote = family.partition("-")
    # USD-margined families are spelled ``BTC-USD_UM``: the quote is USD
    return base, quote.split("_", 1)[0]


def map_instrument(row: schemas.InstrumentRow) -> Instrument | None:
    """One row as a core Instrument, or None for instrument types we do not map."""
    kind = _KINDS.get(row.instType)
    if kind is None:
        return None
    if kind == "spot":
        base, quote = row.baseCcy, row.quoteCcy
    else:
        base, quote = _family(row)
    if not base or not quote:
        return None
    inverse = row.ctType == "inverse" or (kind == "option" and row.settleCcy == base)
    expiry = int(row.expTime) if kind in ("future", "option") and row.expTime.isdigit() else None
    return Instrument(
        venue=config.VENUE,
        exchange=config.EXCHANGE,
        market=row.instType.lower(),
        symbol=row.instId,
        kind=kind,
        base=base,
        quote=quote,
        settle=row.settleCcy or quote,
        inverse=inverse if kind != "spot" else False,
        tick_size=row.tickSz,
        lot_size=row.lotSz,
        min_size=row.minSz or row.lotSz,
        contract_size=row.ctVal or "1",
        expiry_ms=expiry,
        strike=row.stk if kind == "option" and row.stk else None,
        option_type=({"C": "call", "P": "put"}.get(row.optType)) if kind == "option" else None,  # type: ignore[arg-type]
        settlement_period=row.alias or None,
        active=row.state == "live",
    )


def parse_body(body: bytes) -> list[Instrument]:
    try:
        response = schemas.instruments_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"okx: not an instruments answer: {exc}") from None
    if response.code != "0":
        raise ValueError(f"okx: instruments answer with code {response.code}: {response.msg}")
    return [inst for row in response.data if (inst := map_instrument(row)) is not None]


def parse_files(files: dict[str, bytes]) -> list[Instrument]:
    """Fixture files ``instruments.<INSTTYPE>[.<family>].json`` (raw REST bodies)."""
    seen: dict[str, Instrument] = {}
    for name in sorted(files):
        if not (name.startswith("instruments.") and name.endswith(".json")):
            continue
        try:
            for inst in parse_body(files[name]):
                seen.setdefault(inst.symbol, inst)
        except ValueError as exc:
            raise ValueError(f"fixture {name}: {exc}") from None
    if not seen:
        names = ", ".join(sorted(files)) or "no files"
        raise FileNotFoundError(f"okx: no instruments.<INSTTYPE>.json fixture (found: {names})")
    return list(seen.values())


def requests_for(inst_types: Iterable[str], option_families: Iterable[str]) -> list[dict[str, str]]:
    """The query of each instruments request."""
    out: list[dict[str, str]] = []
    for inst_type in inst_types:
        if inst_type == "OPTION":
            out.extend({"instType": "OPTION", "instFamily": family} for family in option_families)
        else:
            out.append({"instType": inst_type})
    return out


async def fetch_instruments(
    rest: RestApi,
    inst_types: Iterable[str] = config.INST_TYPES,
    option_families: Iterable[str] = config.OPTION_FAMILIES,
) -> list[Instrument]:
    seen: dict[str, Instrument] = {}
    for params in requests_for(inst_types, option_families):
        instruments = parse_body(await rest.get_bytes(config.INSTRUMENTS_PATH, params))
        logger.bind(venue=config.VENUE).debug("{} instruments for {}", len(instruments), params)
        for inst in instruments:
            seen.setdefault(inst.symbol, inst)
    return list(seen.values())
