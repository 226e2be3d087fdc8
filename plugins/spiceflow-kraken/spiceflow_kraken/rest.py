"""Kraken reference data: ``GET /0/public/AssetPairs`` -> spot instruments.

The WebSocket v2 symbol of a pair is its ``wsname`` with the v2 asset names
(``XBT/USD`` -> ``BTC/USD``, ``XDG/USD`` -> ``DOGE/USD``, ``config.V2_ASSET_NAMES``);
base and quote come from that symbol, so normalized ids read ``kraken.spot.BTC.USD``.
Pairs without a ``wsname`` are not on the WebSocket API and are skipped. Prices and
sizes: ``tick_size`` (or ``10^-pair_decimals``), lot ``10^-lot_decimals``, minimum
order ``ordermin``; a pair is active when its ``status`` is ``online``.
``parse_instruments`` serves both the live path and the packaged fixture.
"""

from __future__ import annotations

import msgspec

from spiceflow_core.plugin import Instrument, RestApi

from . import config, schemas


def v2_symbol(wsname: str) -> tuple[str, str, str]:
    """``"XBT/USD"`` -> ``("BTC/USD", "BTC", "USD")``."""
    base, sep, quote = wsname.partition("/")
    if not sep or not base or not quote:
        raise ValueError(f"not a pair name: {wsname!r}")
    base = config.V2_ASSET_NAMES.get(base, base)
    quote = config.V2_ASSET_NAMES.get(quote, quote)
    return f"{base}/{quote}", base, quote


def step(decimals: int) -> str:
    """``10^-decimals`` as a plain decimal string: 2 -> ``"0.01"``, 0 -> ``"1"``."""
    return "1" if decimals <= 0 else "0." + "0" * (decimals - 1) + "1"


def parse_instruments(body: bytes, venue: str = config.VENUE) -> list[Instrument]:
    try:
        answer = schemas.asset_pairs_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{venue}: bad AssetPairs answer: {exc}") from None
    if answer.error:
        raise ValueError(f"{venue}: AssetPairs answered errors: {', '.join(answer.error)}")
    out: list[Instrument] = []
    for pair in answer.result.values():
        if not pair.wsname or pair.aclass_base != "currency":
            continue
        symbol, base, quote = v2_symbol(pair.wsname)
        out.append(
            Instrument(
                venue=venue,
                exchange=config.EXCHANGE,
                market="spot",
                symbol=symbol,
                kind="spot",
                base=base,
                quote=quote,
                tick_size=pair.tick_size or step(pair.pair_decimals),
                lot_size=step(pair.lot_decimals),
                min_size=pair.ordermin or "",
                active=pair.status == config.ONLINE,
            )
        )
    return out


async def fetch_instruments(rest: RestApi, venue: str = config.VENUE) -> list[Instrument]:
    return parse_instruments(await rest.get_bytes(config.INSTRUMENTS_PATH), venue)
