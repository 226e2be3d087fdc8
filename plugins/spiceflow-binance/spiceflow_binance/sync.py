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

from spiceflow_core.book.policy import PrevIdPolicy, StraddlePolicy

#: spot: contiguous ids, first event straddles lastUpdateId + 1
SPOT_POLICY = StraddlePolicy()
#: futures: ``pu`` chains events, first event straddles lastUpdateId inclusively
FUTURES_POLICY = PrevIdPolicy(straddle_inclusive=True)
