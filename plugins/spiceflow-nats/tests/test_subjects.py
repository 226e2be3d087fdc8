"""Topics <-> subjects, and ZeroMQ-style topic prefixes -> NATS subscriptions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from spiceflow_nats.subjects import escape_token, subject_for, subject_of_prefix, topic_for_subject, widest
from spiceflow_nats.subscriber import plan

from spiceflow_core.broadcast.sources import SourceError

_symbol = st.text(min_size=1, max_size=20)


@given(symbol=_symbol, prefix=st.sampled_from(["", "md.", "a.b."]))
def test_a_subject_maps_back_to_its_topic(symbol: str, prefix: str):
    topic = f"book.binance.{symbol}"
    subject = subject_for(topic, prefix)
    assert subject.startswith(prefix)
    tokens = subject[len(prefix) :].split(".")
    assert len(tokens) == 3 and all(tokens) and not any(t in ("*", ">") for t in tokens)
    assert not any(c.isspace() for c in subject)
    assert topic_for_subject(subject, prefix) == topic


def test_special_characters_are_escaped():
    assert subject_for("status.binance.*") == "status.binance.%2A"
    assert escape_token("BTC.USD 50%>") == "BTC%2EUSD%2050%25%3E"
    assert escape_token("BTC-27DEC24-100000-C") == "BTC-27DEC24-100000-C"


@pytest.mark.parametrize(
    ("topic_prefix", "subject", "exact"),
    [
        ("", ">", True),
        ("book.", "book.>", True),
        ("book.binance.", "book.binance.>", True),
        ("book", ">", False),
        ("book.bin", "book.>", False),
        ("book.binance.BTC", "book.binance.>", False),
        ("book.binance.BTC.USD", "book.binance.>", False),
    ],
)
def test_a_topic_prefix_becomes_the_narrowest_subject_covering_it(topic_prefix, subject, exact):
    assert subject_of_prefix(topic_prefix) == (subject, exact)


def test_overlapping_subjects_are_merged():
    assert widest(["book.binance.>", "book.>", "trade.x.>", "book.>"]) == ["book.>", "trade.x.>"]
    assert widest(["book.>", ">"]) == [">"]


def test_plans():
    p = plan("nats://a:4222,b:4223?prefix=md", ["book.binance.", "trade."])
    assert p.servers == ("nats://a:4222", "nats://b:4223")
    assert (p.prefix, p.core, p.stream, p.check) == ("md.", ("md.book.binance.>", "md.trade.>"), (), None)
    p = plan("nats://a:4222?deliver=last", ["book.binance.BTC", "status."])
    assert (p.core, p.stream, p.check) == (("status.>",), ("book.binance.>",), ("book.binance.BTC", "status."))
    p = plan("nats://a:4222?deliver=last", [""])
    assert (p.core, p.stream, p.skip_core_books) == ((">",), ("book.>",), True)


@pytest.mark.parametrize(
    "address", ["nats://", "nats://a:1?deliver=all", "nats://a:1?prefix=x.*", "nats://a:1?timeout=3"]
)
def test_bad_addresses(address):
    with pytest.raises(SourceError):
        plan(address, [""])
