"""Bybit book sequencing as a SequencePolicy.

Each ``orderbook`` message carries ``u``, the update id of its topic, "continuous in
general" (Orderbook docs); a snapshot carries the ``u`` it is as of. A delta is
``BookDelta(first_sequence=u, sequence=u)``, so the core's StraddlePolicy is exactly
the rule:

- first delta after a snapshot ``S``: DROP if ``u <= S``; APPLY if ``u == S + 1``; else GAP
- next: DROP if ``u <= last``; APPLY if ``u == last + 1``; else GAP (resync by
  resubscribing, which brings a fresh snapshot)

A snapshot on the stream (a re-sent one, or ``u = 1`` after a service restart) is not a
sequence question: it replaces the book at once (``BookSnapshot.reset``).
"""

from __future__ import annotations

from spiceflow_core.plugin import StraddlePolicy

POLICY = StraddlePolicy()
