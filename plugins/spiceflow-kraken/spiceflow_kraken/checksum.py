"""Kraken's book checksum (Book checksum v2 guide): CRC32 of the top 10 asks (low to
high) then the top 10 bids (high to low), each level written as its price then its
quantity with the ``.`` removed and leading zeros stripped, on the exact text of the
numbers as sent (Kraken sends them with the pair's full precision, trailing zeros
included). The result is compared as an unsigned 32-bit integer.

Levels shorter than the pair's precision (a number whose trailing zeros were lost
somewhere, as in the documentation's rendered examples) are padded with zeros up to the
pair's ``pair_decimals`` / ``lot_decimals``: padding a decimal string is exact, and it is
never cut, so text already at full precision is used as is.
"""

from __future__ import annotations

import zlib

from spiceflow_core.plugin import Level

from .config import CHECKSUM_DEPTH


def decimals_of(step: str) -> int:
    """Decimals of a tick or lot size string: ``"0.01"`` -> 2, ``"1"`` -> 0."""
    _, _, fraction = step.partition(".")
    return len(fraction.rstrip("0")) if fraction else 0


def _digits(text: str, decimals: int) -> str:
    whole, _, fraction = text.partition(".")
    if len(fraction) < decimals:
        fraction += "0" * (decimals - len(fraction))
    return (whole + fraction).lstrip("0")


class KrakenChecksum:
    """The ``BookChecksum`` of one pair (``price_decimals`` / ``qty_decimals``: the pair's
    precision from reference data, 0 to use the text exactly as received)."""

    depth = CHECKSUM_DEPTH

    def __init__(self, price_decimals: int = 0, qty_decimals: int = 0) -> None:
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals

    def text(self, bids: list[Level], asks: list[Level]) -> str:
        pd, qd = self.price_decimals, self.qty_decimals
        parts = [_digits(p, pd) + _digits(q, qd) for p, q in asks[: self.depth]]
        parts += [_digits(p, pd) + _digits(q, qd) for p, q in bids[: self.depth]]
        return "".join(parts)

    def compute(self, bids: list[Level], asks: list[Level]) -> int:
        return zlib.crc32(self.text(bids, asks).encode("ascii"))

    def __repr__(self) -> str:
        return f"KrakenChecksum(price_decimals={self.price_decimals}, qty_decimals={self.qty_decimals})"
