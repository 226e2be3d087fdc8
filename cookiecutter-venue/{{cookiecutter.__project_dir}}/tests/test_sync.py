"""What the book engine expects from ``sync.POLICY`` (see sync.py for the rule).

FILL IN: when you change the policy to the exchange's documented procedure, restate
these expectations first: they are what keeps books exact.
"""

from {{ cookiecutter.__package }}.sync import POLICY

from spiceflow_core.plugin import BookDelta, Verdict

VENUE = "{{ cookiecutter.venue_slug }}"


{% if cookiecutter.protocol_style == "plain-json" %}
def delta(first: int, last: int) -> BookDelta:
    return BookDelta(venue=VENUE, symbol="BTCUSDT", first_sequence=first, sequence=last, bids=[], asks=[])


def test_first_delta_after_a_snapshot_must_straddle_it():
    assert POLICY.first(1000, delta(990, 1000)) is Verdict.DROP  # already in the snapshot
    assert POLICY.first(1000, delta(1001, 1001)) is Verdict.APPLY  # the very next id
    assert POLICY.first(1000, delta(995, 1005)) is Verdict.APPLY  # straddles S + 1
    assert POLICY.first(1000, delta(1003, 1004)) is Verdict.GAP  # 1001..1002 missing


def test_next_deltas_must_be_contiguous():
    assert POLICY.next(1001, delta(1002, 1002)) is Verdict.APPLY
    assert POLICY.next(1001, delta(1001, 1001)) is Verdict.DROP  # a duplicate
    assert POLICY.next(1001, delta(1003, 1003)) is Verdict.GAP  # 1002 missing
{% else %}
def change(prev: int, seq: int) -> BookDelta:
    return BookDelta(
        venue=VENUE,
        symbol="BTCUSDT",
        first_sequence=seq,
        sequence=seq,
        prev_sequence=prev,
        bids=[],
        asks=[],
    )


def test_first_change_after_a_snapshot_must_name_it():
    assert POLICY.first(1000, change(1000, 1001)) is Verdict.APPLY
    assert POLICY.first(1000, change(999, 1000)) is Verdict.DROP  # already in the snapshot
    assert POLICY.first(1000, change(1001, 1002)) is Verdict.GAP  # 1001 missing


def test_each_change_must_name_the_previous_one():
    assert POLICY.next(1001, change(1001, 1005)) is Verdict.APPLY  # ids need not be contiguous
    assert POLICY.next(1001, change(1000, 1001)) is Verdict.DROP  # a duplicate
    assert POLICY.next(1001, change(1003, 1004)) is Verdict.GAP
{% endif %}
