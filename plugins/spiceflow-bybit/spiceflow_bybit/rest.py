"""Reference data: ``GET /v5/market/instruments-info?category=<c>`` -> Instrument.

Pages are followed through ``nextPageCursor`` (``limit`` up to 1000) until it comes
back empty. Mapping:

- spot: ``kind="spot"``, quantity step ``lotSizeFilter.basePrecision``;
- linear / inverse: ``contractType`` ``*Perpetual`` -> ``perpetual``, ``*Futures`` ->
  ``future`` with ``expiry_ms = deliveryTime``; quantity step ``qtyStep``; inverse
  contracts are quoted in USD and settled in the coin (``inverse=True``, 1 USD per
  contract);
- option: ``kind="option"``, strike from the symbol (``BTC-6JAN23-17500-C``),
  ``optionsType`` Call/Put.

``active`` is ``status == "Trading"``; other statuses (PreLaunch, Delivering, Closed)
are kept but inactive so the instrument filter can decide.
"""

from __future__ import annotations

import msgspec

from spiceflow_core.model import Kind
from spiceflow_core.plugin import Instrument, RestApi

from . import config, schemas


def _instrument(spec: config.CategorySpec, row: schemas.InstrumentInfo) -> Instrument:
    kind: Kind
    expiry_ms = None
    strike = None
    option_type = None
    if spec.category == "spot":
        kind = "spot"
        step = row.lotSizeFilter.basePrecision or row.lotSizeFilter.qtyStep
    else:
        step = row.lotSizeFilter.qtyStep
        if spec.category == "option":
            kind = "option"
            strike = row.symbol.split("-")[2] if row.symbol.count("-") >= 3 else None
            option_type = "call" if row.optionsType == "Call" else "put"
        else:
            kind = "perpetual" if row.contractType.endswith("Perpetual") else "future"
        if kind != "perpetual" and row.deliveryTime not in ("", "0"):
            expiry_ms = int(row.deliveryTime)
    return Instrument(
        venue=spec.venue,
        exchange=config.EXCHANGE,
        market=spec.category,
        symbol=row.symbol,
        kind=kind,
        base=row.baseCoin,
        quote=row.quoteCoin,
        settle=row.settleCoin or (row.quoteCoin if spec.category != "inverse" else row.baseCoin),
        inverse=spec.category == "inverse",
        tick_size=row.priceFilter.tickSize,
        lot_size=step,
        min_size=row.lotSizeFilter.minOrderQty or step,
        contract_size="1",
        expiry_ms=expiry_ms,
        strike=strike,
        option_type=option_type,  # type: ignore[arg-type]
        active=row.status == "Trading",
    )


def parse_page(spec: config.CategorySpec, body: bytes) -> tuple[list[Instrument], str]:
    """One instruments-info answer: its instruments and the next page's cursor ("" at
    the end). A ``retCode`` other than 0 is an error."""
    try:
        # an error answer carries ``"result": {}``: read its code before the result
        status = schemas.error_decoder.decode(body)
        if status.retCode != 0:
            raise ValueError(f"{spec.venue}: instruments-info refused: retCode {status.retCode} {status.retMsg!r}")
        answer = schemas.instruments_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{spec.venue}: not an instruments-info answer: {exc}") from None
    if answer.result is None:
        raise ValueError(f"{spec.venue}: instruments-info answer without result")
    if answer.result.category != spec.category:
        raise ValueError(f"{spec.venue}: instruments-info of category {answer.result.category!r}")
    return [_instrument(spec, row) for row in answer.result.rows], answer.result.nextPageCursor


def parse_files(spec: config.CategorySpec, files: dict[str, bytes]) -> list[Instrument]:
    body = files.get(spec.fixture_file)
    if body is None:
        names = ", ".join(sorted(files)) or "no files"
        raise FileNotFoundError(f"{spec.venue}: fixture {spec.fixture_file} missing (found: {names})")
    return parse_page(spec, body)[0]


#: pages at most (1000 instruments each): a cursor that never ends is a venue bug
MAX_PAGES = 50


async def fetch_instruments(spec: config.CategorySpec, rest: RestApi) -> list[Instrument]:
    seen: dict[str, Instrument] = {}
    cursor = ""
    for _ in range(MAX_PAGES):
        params: dict[str, str | int] = {"category": spec.category, "limit": config.INSTRUMENTS_PAGE_LIMIT}
        if cursor:
            params["cursor"] = cursor
        instruments, cursor = parse_page(spec, await rest.get_bytes(config.INSTRUMENTS_PATH, params))
        for inst in instruments:
            seen.setdefault(inst.symbol, inst)
        if not cursor:
            break
    else:
        raise ValueError(f"{spec.venue}: instruments-info still paging after {MAX_PAGES} pages")
    return list(seen.values())
