"""Exact decimal parsing for order book prices and sizes.

The book keys levels by *scaled integers*: ``key = price * 10**scale`` where ``scale``
is a per-book number of decimals that only grows (see ``OrderBook._rescale``). This
module is the slow, strict path behind the book's string->key cache: it validates a
value and splits it into an exact ``(coefficient, exponent)`` pair without floats and
without the 28-digit precision of the default ``decimal`` context (``scaleb`` would
round long values silently).

Accepted: plain decimal strings (``"43250.10"``, ``"0.35130000"``, ``".5"``, ``"5."``),
exponent forms as ``str(Decimal)`` produces them (``"1E-8"``, ``"0E-8"``,
``"4.3E+4"``), ``Decimal`` and ``int`` values. Rejected with ``ValueError``: negative
values (including ``"-0"``), a leading ``+``, NaN/Infinity, underscores, whitespace,
non-ASCII digits, floats (not exact), booleans and anything else.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Unsigned decimal with optional exponent. Python's Decimal()/int() would also take
# "1_000", " 5", "+5", "NaN", "Infinity" and non-ASCII digits: none is an exchange value.
_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

#: Largest number of decimals and of integer digits a value may have. Real markets use
#: at most ~18 decimals; the bound keeps a hostile "1E+999999" from building huge ints.
MAX_DECIMALS = 40
MAX_INTEGER_DIGITS = 40


def parse_decimal(value: object) -> Decimal:
    """The exact non-negative ``Decimal`` of an exchange value, or ``ValueError``."""
    if isinstance(value, str):
        if not value.isascii() or _NUMBER.fullmatch(value) is None:
            raise ValueError(f"not a non-negative decimal number: {value!r}")
        try:
            return Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the regex already vetted it
            raise ValueError(f"not a decimal number: {value!r}") from exc
    if isinstance(value, Decimal):
        if not value.is_finite() or value.is_signed():
            raise ValueError(f"not a finite non-negative decimal: {value!r}")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"negative value: {value!r}")
        return Decimal(value)
    raise ValueError(f"not an exact decimal (str, Decimal or int): {value!r} ({type(value).__name__})")


def decimal_parts(value: object) -> tuple[int, int]:
    """``(coefficient, exponent)`` with ``value == coefficient * 10**exponent`` exactly and
    no trailing zeros in the coefficient (``(0, 0)`` for zero). Raises ``ValueError``."""
    _, coefficient, exponent = _parse(value)
    return coefficient, exponent


def parts_and_text(value: object) -> tuple[int, int, str]:
    """``decimal_parts`` plus the value's exact plain decimal text, from one parse:
    ``"1E-8"`` -> ``(1, -8, "0.00000001")``, ``Decimal("4.3E+4")`` -> ``(43, 3, "43000")``."""
    dec, coefficient, exponent = _parse(value)  # range-checked: bounds what format() writes
    return coefficient, exponent, format(dec, "f")  # exact: formatting never rounds


def _parse(value: object) -> tuple[Decimal, int, int]:
    dec = parse_decimal(value)
    _sign, digits, exponent = dec.as_tuple()
    assert isinstance(exponent, int)  # finite: checked by parse_decimal
    coefficient = int("".join(map(str, digits)) or "0")
    if coefficient == 0:
        return dec, 0, 0
    while coefficient % 10 == 0:
        coefficient //= 10
        exponent += 1
    if -exponent > MAX_DECIMALS or len(str(coefficient)) + exponent > MAX_INTEGER_DIGITS:
        raise ValueError(f"value out of range: {value!r}")
    return dec, coefficient, exponent


def decimals_of(value: object) -> int:
    """Significant decimals of a value: ``"0.35130000"`` -> 4, ``"1E-8"`` -> 8, ``"100"`` -> 0."""
    return max(0, -decimal_parts(value)[1])


def is_zero(value: object) -> bool:
    """True when a (valid) size is zero, whatever its format: ``"0"``, ``"0.000"``, ``"0E-8"``."""
    return decimal_parts(value)[0] == 0


def canonical_size(value: object) -> tuple[str, bool]:
    """Validate a size that missed the book's fast path (a plain ASCII decimal string):
    ``(string to keep, is zero)``. The kept string is the value's plain decimal text
    (``"1E-8"`` -> ``"0.00000001"``), so every level the book holds is a plain decimal."""
    coefficient, _, text = parts_and_text(value)
    return text, coefficient == 0
