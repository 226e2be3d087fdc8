"""How {{ cookiecutter.venue_name }}'s book updates chain, as a SequencePolicy, and the venue's
book checksum (none yet).

The core's book engine calls ``first(snapshot_sequence, delta)`` for the first update
after a snapshot and ``next(last_sequence, delta)`` after that; each answers
``Verdict.APPLY`` (continues the book), ``DROP`` (already in the book) or ``GAP``
(something is missing: the book is resynced by resubscribing, ``resync = "resubscribe"``
in plugin.py, since the venue sends a snapshot on every subscribe).

{% if cookiecutter.protocol_style == "plain-json" %}
Rule implemented (contiguous id ranges ``U``..``u``, like Binance spot):
  - first: DROP if ``u <= S``; APPLY if ``U <= S + 1 <= u``; else GAP
  - next:  DROP if ``u <= last``; APPLY if ``U == last + 1``; else GAP
{% else %}
Rule implemented (each change names its predecessor, like Deribit ``prev_change_id``):
  - first/next: APPLY if ``prev == last``; DROP if ``seq <= last``; else GAP
{% endif %}

FILL IN: check this against the exchange's "how to maintain a local order book" page;
the core ships StraddlePolicy, PrevIdPolicy and ChainPolicy (``spiceflow_core.book.policy``)
and tests/test_sync.py states the expected verdicts. A venue that numbers nothing
(Kraken) still needs increasing ids per book: make them in the session.
"""

from __future__ import annotations

from spiceflow_core.plugin import BookChecksum, BookDelta, {{ "StraddlePolicy" if cookiecutter.protocol_style == "plain-json" else "ChainPolicy" }}, Verdict


class BookPolicy({{ "StraddlePolicy" if cookiecutter.protocol_style == "plain-json" else "ChainPolicy" }}):
    name = "{{ cookiecutter.venue_slug }}"

    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        return super().first(snapshot_sequence, delta)

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        return super().next(last_sequence, delta)


POLICY = BookPolicy()

#: The venue's book checksum, or None while it sends none. FILL IN when its book
#: messages carry one (OKX, Kraken): a ``BookChecksum`` (``depth``, and
#: ``compute(bids, asks) -> int`` over the best ``depth`` levels per side, on the exact
#: strings as sent). Everything else is wired: the parser passes the frame's
#: ``checksum`` on, ``plugin.book_checksum`` hands this to the core (which verifies
#: every book message that carries one; a mismatch is a gap), the simulator sends it and
#: corrupts it on its ``corrupt_checksum`` fault, and tests/test_pipeline.py then runs
#: that fault too.
CHECKSUM: BookChecksum | None = None
