"""The exact L2 order book engine, venue-independent.

``OrderBook`` holds one book exactly as the exchange sent it; ``BookSync`` keeps it in
sync from snapshots and deltas under a venue's ``SequencePolicy`` and reports typed
events (``Synced``, ``BookUpdated``, ``GapDetected``).
"""

from spiceflow_core.book.orderbook import OrderBook
from spiceflow_core.book.policy import ChainPolicy, PrevIdPolicy, SequencePolicy, StraddlePolicy, Verdict
from spiceflow_core.book.sync import BookSync, BookUpdated, GapDetected, SyncCounters, Synced, SyncEvent, SyncState

__all__ = [
    "BookSync",
    "BookUpdated",
    "ChainPolicy",
    "GapDetected",
    "OrderBook",
    "PrevIdPolicy",
    "SequencePolicy",
    "StraddlePolicy",
    "SyncCounters",
    "SyncEvent",
    "SyncState",
    "Synced",
    "Verdict",
]
