"""Instrument selection and resolution: one filter over reference-data fields
(:class:`InstrumentFilter`, used by config rules, the control API and ``spiceflow
instruments``), config patterns, exchange symbols or normalized ids, and clear errors
listing close matches."""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import time
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Literal, get_args

import msgspec

from spiceflow_core.model import Instrument

#: an instrument kind as the model names it, or as normalized ids write it
KindCode = Literal["spot", "perpetual", "future", "option", "linperp", "invperp", "linfut", "invfut"]
KIND_CODES: frozenset[str] = frozenset(get_args(KindCode))
_DAY_MS = 86_400_000


class UnknownInstrument(LookupError):
    """No such instrument; the message lists close matches."""


class InactiveInstrument(LookupError):
    """The instrument exists but is not trading (halted, expired...)."""


class AmbiguousInstrument(LookupError):
    """The request matches several instruments; the message lists them."""


def normalized_or_symbol(instrument: Instrument | None, symbol: str) -> str:
    return instrument.normalized if instrument is not None else symbol


def _is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


class InstrumentFilter(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Instruments whose reference data has every given field (None = any).

    ``InstrumentFilter(kind="option", base="BTC", expires_within_days=30)`` = BTC options
    expiring within 30 days; ``InstrumentFilter(kind="linperp", quote="USDT")`` = linear
    perpetuals quoted in USDT. Currency and option-type comparisons ignore case.
    """

    kind: KindCode | None = None
    base: str | None = None
    quote: str | None = None
    settle: str | None = None
    inverse: bool | None = None
    symbol: str | None = None  # glob over the exchange symbol, e.g. "BTC-*-C"
    expiry: str | None = None  # expiry day, YYYYMMDD (UTC)
    expires_within_days: float | None = None  # not expired yet, and expiring within this many days
    strike: str | None = None  # compared as a number: "100000" matches a strike of "100000.0"
    option_type: Literal["call", "put", "C", "P"] | None = None
    settlement_period: str | None = None  # the venue's own word, e.g. "perpetual", "month"


class Selection(InstrumentFilter, frozen=True):
    """A config rule (``[[venues.<name>.select]]``): a filter over the venue's active
    instruments, at most ``limit`` of them (in symbol order)."""

    limit: int | None = None


def _same(a: str, b: str) -> bool:
    return a.upper() == b.upper()


def _number(text: str | None) -> Decimal | None:
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        return None


def matches(instrument: Instrument, rule: InstrumentFilter, now_ms: int | None = None) -> bool:
    """Whether ``instrument`` passes ``rule``; ``now_ms`` (default: the clock) anchors
    ``expires_within_days``."""
    if rule.kind is not None and rule.kind not in (instrument.kind, instrument.kind_code):
        return False
    if rule.base is not None and not _same(instrument.base, rule.base):
        return False
    if rule.quote is not None and not _same(instrument.quote, rule.quote):
        return False
    if rule.settle is not None and not _same(instrument.settle, rule.settle):
        return False
    if rule.inverse is not None and instrument.inverse != rule.inverse:
        return False
    if rule.symbol is not None and not fnmatch.fnmatchcase(instrument.symbol, rule.symbol):
        return False
    if rule.settlement_period is not None and instrument.settlement_period != rule.settlement_period:
        return False
    if rule.option_type is not None and (instrument.option_type or "")[:1].upper() != rule.option_type[:1].upper():
        return False
    if rule.strike is not None:
        strike = _number(instrument.strike)
        if strike is None or strike != _number(rule.strike):
            return False
    if rule.expiry is not None or rule.expires_within_days is not None:
        if instrument.expiry_ms is None:
            return False
        if rule.expiry is not None:
            day = dt.datetime.fromtimestamp(instrument.expiry_ms / 1000, tz=dt.UTC).strftime("%Y%m%d")
            if day != rule.expiry:
                return False
        if rule.expires_within_days is not None:
            now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
            if not (now_ms < instrument.expiry_ms <= now_ms + rule.expires_within_days * _DAY_MS):
                return False
    return True


def close_matches(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    pool = list(candidates)
    upper = {c.upper(): c for c in pool}
    found = difflib.get_close_matches(name.upper(), list(upper), n=n, cutoff=0.6)
    return [upper[f] for f in found]


def resolve(instruments: dict[str, Instrument], name: str, venue: str = "") -> Instrument:
    """Find one instrument by exchange symbol (case-insensitive) or normalized id."""
    if name in instruments:
        found = instruments[name]
    else:
        by_upper = [i for s, i in instruments.items() if s.upper() == name.upper()]
        by_norm = [i for i in instruments.values() if i.normalized.upper() == name.upper()]
        candidates = by_upper or by_norm
        if len(candidates) > 1:
            listed = ", ".join(sorted(i.symbol for i in candidates)[:10])
            raise AmbiguousInstrument(f"{name!r} matches several {venue} instruments: {listed}")
        if not candidates:
            near = close_matches(name, [*instruments, *(i.normalized for i in instruments.values())])
            hint = f"; close matches: {', '.join(near)}" if near else ""
            raise UnknownInstrument(f"unknown {venue} instrument {name!r}{hint}".replace("  ", " "))
        found = candidates[0]
    if not found.active:
        raise InactiveInstrument(f"{venue} instrument {found.symbol!r} is not trading (inactive or halted)")
    return found


def select(
    instruments: dict[str, Instrument],
    names: list[str],
    rules: list[Selection],
    venue: str = "",
    now_ms: int | None = None,
) -> list[Instrument]:
    """Config selection: exact names (errors when unknown or halted), globs over the
    active symbols, and rules; deduplicated, in a stable order."""
    chosen: dict[str, Instrument] = {}
    for name in names:
        if _is_pattern(name):
            hits = [i for s, i in sorted(instruments.items()) if i.active and fnmatch.fnmatchcase(s, name)]
            if not hits:
                raise UnknownInstrument(f"pattern {name!r} matches no active {venue} instrument")
            chosen.update((i.symbol, i) for i in hits)
        else:
            instrument = resolve(instruments, name, venue)
            chosen[instrument.symbol] = instrument
    for rule in rules:
        hits = [i for s, i in sorted(instruments.items()) if i.active and matches(i, rule, now_ms)]
        if rule.limit is not None:
            hits = hits[: rule.limit]
        chosen.update((i.symbol, i) for i in hits)
    return list(chosen.values())
