"""Sequencing policies: the only venue-specific part of book synchronisation."""

from __future__ import annotations

import enum
from typing import Protocol

from ..model import BookDelta


class Verdict(enum.Enum):
    DROP = "drop"  # already covered by the book (older than the snapshot, or a duplicate)
    APPLY = "apply"  # continues the book exactly
    GAP = "gap"  # something is missing: the book can no longer be trusted


class SequencePolicy(Protocol):
    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        """Verdict for a delta while looking for the first one after a snapshot."""
        ...

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        """Verdict for a delta once the book is in sync; ``last_sequence`` is the
        sequence of the last applied update."""
        ...
