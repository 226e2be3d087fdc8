"""Sequencing policies: the only venue-specific part of book synchronisation."""

from __future__ import annotations

import enum
from typing import Protocol

from spiceflow_core.model import BookDelta


class Verdict(enum.Enum):
    DROP = "drop"  # already covered by the book (older than the snapshot, or a duplicate)
    APPLY = "apply"  # continues the book exactly
    GAP = "gap"  # something is missing: the book can no longer be trusted


# Module constants: on CPython 3.11 ``Verdict.APPLY`` is a ~60 ns descriptor lookup, paid
# on every delta; a global is ~6 ns.
DROP = Verdict.DROP
APPLY = Verdict.APPLY
GAP = Verdict.GAP


class SequencePolicy(Protocol):
    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        """Verdict for a delta while looking for the first one after a snapshot."""
        ...

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        """Verdict for a delta once the book is in sync; ``last_sequence`` is the
        sequence of the last applied update."""
        ...


# ---------------------------------------------------------------------------
# Reference policies. Venue plugins may use these or re-implement them in their
# ``sync.py``; the engine only ever calls ``first`` and ``next``.
# ---------------------------------------------------------------------------


class StraddlePolicy:
    """Contiguous id ranges, first delta straddles ``snapshot + 1`` (Binance spot).

    first: DROP if ``u <= S``; APPLY if ``U <= S+1 <= u``; else GAP.
    next:  DROP if ``u <= last``; APPLY if ``U == last+1``; else GAP.
    """

    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        if delta.sequence <= snapshot_sequence:
            return DROP
        if delta.first_sequence <= snapshot_sequence + 1 <= delta.sequence:
            return APPLY
        return GAP

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        if delta.sequence <= last_sequence:
            return DROP
        if delta.first_sequence == last_sequence + 1:
            return APPLY
        return GAP

    def __repr__(self) -> str:
        return "StraddlePolicy()"


class PrevIdPolicy:
    """Each delta names the id it follows (``pu``); ids are not contiguous (Binance
    USD-M/COIN-M futures).

    first (``straddle_inclusive=True``, the futures rule): DROP if ``u < S``; APPLY if
    ``U <= S <= u`` or ``pu == S`` (the event directly follows the snapshot); else GAP. With ``straddle_inclusive=False`` the spot-style straddle
    is used instead: DROP if ``u <= S``; APPLY if ``U <= S+1 <= u``; else GAP.
    next: APPLY if ``pu == last``; DROP if ``u <= last``; else GAP.
    """

    def __init__(self, straddle_inclusive: bool = True) -> None:
        self.straddle_inclusive = straddle_inclusive

    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        if self.straddle_inclusive:
            if delta.sequence < snapshot_sequence:
                return DROP
            if delta.first_sequence <= snapshot_sequence <= delta.sequence:
                return APPLY
            if delta.prev_sequence == snapshot_sequence:
                # the snapshot is exactly the state after the event this one follows
                # (lastUpdateId == pu): it continues the snapshot, no refetch needed
                return APPLY
            return GAP
        if delta.sequence <= snapshot_sequence:
            return DROP
        if delta.first_sequence <= snapshot_sequence + 1 <= delta.sequence:
            return APPLY
        return GAP

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        if delta.prev_sequence == last_sequence:
            return APPLY
        if delta.sequence <= last_sequence:
            return DROP
        return GAP

    def __repr__(self) -> str:
        return f"PrevIdPolicy(straddle_inclusive={self.straddle_inclusive})"


class ChainPolicy:
    """Each delta names its predecessor (Deribit ``prev_change_id``), also the first one
    after a snapshot.

    first: APPLY if ``prev == S``; DROP if ``seq <= S``; else GAP.
    next:  APPLY if ``prev == last``; DROP if ``seq <= last``; else GAP.
    """

    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        return self.next(snapshot_sequence, delta)

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        if delta.prev_sequence == last_sequence:
            return APPLY
        if delta.sequence <= last_sequence:
            return DROP
        return GAP

    def __repr__(self) -> str:
        return "ChainPolicy()"
