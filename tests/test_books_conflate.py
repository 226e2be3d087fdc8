"""``book.publish = "conflate"``: the order book actor publishes each changed book once
per batch of received frames, at its latest state (real actor, real ZeroMQ publisher)."""

from __future__ import annotations

import pytest

from spiceflow_core.broadcast.actor import BroadcastActor
from spiceflow_core.model import BookDelta, BookSnapshot, Instrument
from spiceflow_core.plugin.registry import discover
from spiceflow_core.runtime.books import OrderBookActor
from spiceflow_core.runtime.metrics import Metrics
from spiceflow_core.runtime.subscriptions import Entry, SubscriptionTable


def _delta(seq: int, price: str, size: str) -> BookDelta:
    return BookDelta(
        venue="binance",
        symbol="BTCUSDT",
        first_sequence=seq,
        sequence=seq,
        bids=[(price, size)],
        asks=[],
        exchange_ts_ms=seq,
        recv_ts_ns=seq,
    )


@pytest.mark.parametrize("mode,expected_messages", [("conflate", 2), ("every", 51)])
def test_conflate_publishes_once_per_received_batch(mode, expected_messages):
    venue = discover().get("binance")
    broadcaster = BroadcastActor("tcp://127.0.0.1:*", hwm=10_000, status_interval=60)
    try:
        table = SubscriptionTable("binance")
        actor = OrderBookActor(
            venue,
            table,
            Metrics("binance"),
            broadcaster,
            depth=5,
            max_buffer=100,
            snapshot_depth=100,
            rest=None,
            publish_mode=mode,
        )
        instrument = Instrument(
            venue="binance",
            symbol="BTCUSDT",
            kind="spot",
            base="BTC",
            quote="USDT",
            tick_size="0.01",
            lot_size="0.00001",
        )
        feed = actor.new_feed(instrument)
        table.add(Entry(instrument=instrument, feed="book", channels=("btcusdt@depth",), topic="t", book=feed))
        # one batch of frames as the reader hands them on: a snapshot and 50 deltas
        actor.on_event(
            feed,
            BookSnapshot(
                venue="binance", symbol="BTCUSDT", sequence=100, bids=[("100.00", "1")], asks=[("101.00", "1")]
            ),
        )
        for i in range(50):
            actor.on_event(feed, _delta(101 + i, "99.50", f"{i + 1}"))
        actor.flush()
        assert feed.sync.last_sequence == 150
        counts = broadcaster.publisher.topic_counts
        assert counts["book.binance.BTCUSDT"].seq == expected_messages
        assert feed.sync.book.top(5)[0] == [("100.00", "1"), ("99.50", "50")]
        assert actor.state_of("BTCUSDT") == "synced"
    finally:
        broadcaster.close()
