"""Instrument selection and resolution: config patterns and rules, exchange symbols or
normalized ids, and clear errors listing close matches."""

from __future__ import annotations

import difflib
import fnmatch
import time
from collections.abc import Iterable

from spiceflow_core.config import Selection
from spiceflow_core.model import Instrument


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


def matches(instrument: Instrument, rule: Selection, now_ms: int | None = None) -> bool:
    if rule.kind is not None and instrument.kind != rule.kind:
        return False
    if rule.base is not None and instrument.base.upper() != rule.base.upper():
        return False
    if rule.quote is not None and instrument.quote.upper() != rule.quote.upper():
        return False
    if rule.inverse is not None and instrument.inverse != rule.inverse:
        return False
    if rule.symbol is not None and not fnmatch.fnmatchcase(instrument.symbol, rule.symbol):
        return False
    if rule.expires_within_days is not None:
        if instrument.expiry_ms is None:
            return False
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        if not (now_ms <= instrument.expiry_ms <= now_ms + rule.expires_within_days * 86_400_000):
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
        hits = [i for s, i in sorted(instruments.items()) if i.active and matches(i, rule)]
        if rule.limit is not None:
            hits = hits[: rule.limit]
        chosen.update((i.symbol, i) for i in hits)
    return list(chosen.values())
