"""Deribit book sequencing: each ``change`` names the ``change_id`` it follows
(``prev_change_id``); a snapshot carries the ``change_id`` it is as of."""

from __future__ import annotations

from spiceflow_core.book.policy import Verdict
from spiceflow_core.model import BookDelta


class DeribitSequencePolicy:
    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        if delta.prev_sequence == snapshot_sequence:
            return Verdict.APPLY
        if delta.sequence <= snapshot_sequence:
            return Verdict.DROP  # a change the snapshot already contains
        return Verdict.GAP

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        if delta.prev_sequence == last_sequence:
            return Verdict.APPLY
        if delta.sequence <= last_sequence:
            return Verdict.DROP  # duplicate or stale
        return Verdict.GAP


POLICY = DeribitSequencePolicy()
