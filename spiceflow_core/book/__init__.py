"""The exact L2 order book engine, venue-independent.

``OrderBook`` holds one book exactly as the exchange sent it; ``BookSync`` keeps it in
sync from snapshots and deltas under a venue's ``SequencePolicy`` and reports typed
events (``Synced``, ``BookUpdated``, ``GapDetected``).
"""

from .orderbook import OrderBook
from .policy import ChainPolicy, PrevIdPolicy, SequencePolicy, StraddlePolicy, Verdict
from .sync import BookSync, BookUpdated, GapDetected, SyncCounters, SyncEvent, Synced, SyncState

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
