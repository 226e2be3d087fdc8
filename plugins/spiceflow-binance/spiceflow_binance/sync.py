"""Binance's documented local-order-book procedures as SequencePolicies.

``U``/``u`` are the first/final update ids of a diff event (``BookDelta.first_sequence``
/ ``sequence``), ``pu`` the final id of the previous event (futures only,
``BookDelta.prev_sequence``), ``lastUpdateId`` the snapshot's sequence.

Spot ("How to manage a local order book correctly", spot docs):
  - drop events with ``u <= lastUpdateId``
  - the first applied event has ``U <= lastUpdateId + 1 <= u`` (``U > lastUpdateId + 1``
    means the snapshot is older than the buffered events: refetch it -> GAP)
  - every next event has ``U == previous u + 1``

USD-M / COIN-M futures (same page of the derivatives docs):
  - drop events with ``u < lastUpdateId``
  - the first applied event has ``U <= lastUpdateId <= u``
  - every next event has ``pu == previous u`` (futures ids are not contiguous, so
    ``U == previous u + 1`` does not hold there)
"""

from __future__ import annotations

from spiceflow_core.book.policy import Verdict
from spiceflow_core.model import BookDelta


class SpotPolicy:
    name = "binance-spot"

    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        if delta.sequence <= snapshot_sequence:
            return Verdict.DROP
        if delta.first_sequence <= snapshot_sequence + 1 <= delta.sequence:
            return Verdict.APPLY
        return Verdict.GAP  # U > lastUpdateId + 1: events between snapshot and U are missing

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        if delta.first_sequence == last_sequence + 1:
            return Verdict.APPLY
        if delta.sequence <= last_sequence:
            return Verdict.DROP  # a duplicate or stale event, already in the book
        return Verdict.GAP  # skipped ids, or an event overlapping the applied range


class FuturesPolicy:
    name = "binance-futures"

    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        if delta.sequence < snapshot_sequence:
            return Verdict.DROP
        if delta.first_sequence <= snapshot_sequence <= delta.sequence:
            return Verdict.APPLY
        return Verdict.GAP  # U > lastUpdateId: the snapshot is older than the stream

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        if delta.prev_sequence is not None and delta.prev_sequence == last_sequence:
            return Verdict.APPLY
        if delta.sequence <= last_sequence:
            return Verdict.DROP  # a duplicate or stale event, already in the book
        # pu != previous u (or a futures event without pu): something was missed
        return Verdict.GAP


SPOT_POLICY = SpotPolicy()
FUTURES_POLICY = FuturesPolicy()
