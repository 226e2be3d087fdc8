"""How {{ cookiecutter.venue_name }}'s book updates chain, as a SequencePolicy.

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
and tests/test_sync.py states the expected verdicts.
"""

from __future__ import annotations

from spiceflow_core.plugin import BookDelta, {{ "StraddlePolicy" if cookiecutter.protocol_style == "plain-json" else "ChainPolicy" }}, Verdict


class BookPolicy({{ "StraddlePolicy" if cookiecutter.protocol_style == "plain-json" else "ChainPolicy" }}):
    name = "{{ cookiecutter.venue_slug }}"

    def first(self, snapshot_sequence: int, delta: BookDelta) -> Verdict:
        return super().first(snapshot_sequence, delta)

    def next(self, last_sequence: int, delta: BookDelta) -> Verdict:
        return super().next(last_sequence, delta)


POLICY = BookPolicy()
