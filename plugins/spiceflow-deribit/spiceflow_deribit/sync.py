"""Deribit book sequencing: each ``change`` names the ``change_id`` it follows
(``prev_change_id``), also the first one after a snapshot, which carries the
``change_id`` it is as of. That is the core's generic chain policy."""

from __future__ import annotations

from spiceflow_core.book.policy import ChainPolicy

POLICY = ChainPolicy()
