"""{{ cookiecutter.venue_name }} reference data over REST (and from fixture files).

``parse_instruments`` maps one body of the instrument list to ``Instrument`` objects;
the live path (``fetch_instruments``) and the ``fixtures`` profile (a saved copy of the
same body in ``fixtures/``) share it, so fixtures exercise the real parsing code.
"""

from __future__ import annotations

import msgspec

from spiceflow_core.plugin import Instrument, RestApi

from . import config, schemas


def parse_instruments(body: bytes, venue: str = config.VENUE) -> list[Instrument]:
    try:
        rows = schemas.instruments_decoder.decode(body).instruments
    except msgspec.DecodeError as exc:
        raise ValueError(f"{venue}: bad instrument list: {exc}") from None
    return [
        Instrument(
            venue=venue,
            exchange=config.EXCHANGE,
            symbol=row.symbol,
            kind=row.kind,
            base=row.base,
            quote=row.quote,
            tick_size=row.tick_size,
            lot_size=row.lot_size,
            min_size=row.min_size,
            # FILL IN: settle / inverse / contract_size / expiry_ms / strike for derivatives
            active=row.status == "trading",  # FILL IN: the venue's word for "open for trading"
        )
        for row in rows
    ]


async def fetch_instruments(rest: RestApi, venue: str = config.VENUE) -> list[Instrument]:
    return parse_instruments(await rest.get_bytes(config.INSTRUMENTS_PATH), venue)
