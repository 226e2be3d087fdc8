"""Kraken v2 book sequencing: the venue sends no sequence number, so the book's
integrity rests on the checksum every snapshot and update carries (verified by the core
after each message; a mismatch is a gap and the venue resyncs by resubscribing).

The core still needs an increasing id per book message (to drop updates older than a
snapshot and to name the state a published book is at). ``Sequencer`` makes one from
the message's exchange timestamp: its microseconds since the epoch, raised to the
previous id + 1 when Kraken's timestamp does not advance (timestamps are not unique).
Ids are per symbol and shared by every connection of the venue, so an update buffered
from an old connection or subscription is always older than the next snapshot.

A snapshot takes ``max(timestamp, previous id)``: it is the state as of its timestamp,
which covers every update received before it (they are dropped). An update takes
``max(timestamp, previous id + 1)``. Messages without a timestamp take previous id + 1.

``BookPolicy`` applies every update in arrival order (the WebSocket delivers them in
order and no id can reveal a missing one): first / next = DROP if ``seq <= last``,
else APPLY; never GAP.
"""

from __future__ import annotations

from datetime import UTC, datetime

from spiceflow_core.plugin import BookDelta, Verdict

_APPLY = Verdict.APPLY
_DROP = Verdict.DROP
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_us(text: str) -> int:
    """RFC 3339 ``2023-10-06T17:35:55.440295Z`` -> microseconds since the epoch."""
    delta = datetime.fromisoformat(text) - _EPOCH  # integer arithmetic: no float
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Sequencer:
    """Synthetic, strictly increasing book message ids per symbol (see module docstring)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def snapshot(self, symbol: str, ts_us: int | None) -> int:
        last = self._last.get(symbol, 0)
        seq = last + 1 if ts_us is None else max(ts_us, last)
        self._last[symbol] = seq
        return seq

    def update(self, symbol: str, ts_us: int | None) -> int:
        last = self._last.get(symbol, 0)
        seq = last + 1 if ts_us is None or ts_us <= last else ts_us
        self._last[symbol] = seq
        return seq


class BookPolicy:
    """Every update in order; updates older than the snapshot are dropped."""

    name = "kraken"

    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        return _DROP if delta.sequence <= snapshot_sequence else _APPLY

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        return _DROP if delta.sequence <= last_sequence else _APPLY

    def __repr__(self) -> str:
        return "KrakenBookPolicy()"


POLICY = BookPolicy()
