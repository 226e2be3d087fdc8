"""``book.publish = "conflate"``: the order book actor drains its inbox and publishes each
changed book once per drained burst, at its latest state (real actor, real ZeroMQ
publisher)."""

from __future__ import annotations

import anyio
import pytest

from spiceflow_core.broadcast.actor import BroadcastActor
from spiceflow_core.model import BookDelta, BookSnapshot, Instrument
from spiceflow_core.plugin.registry import discover
from spiceflow_core.runtime.books import OrderBookActor
from spiceflow_core.runtime.metrics import Metrics


async def _noop(symbol: str) -> None:  # resubscribe hook, never called here
    return None


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


@pytest.mark.anyio
@pytest.mark.parametrize("mode,expected_messages", [("conflate", 2), ("every", 51)])
async def test_conflate_publishes_once_per_drained_burst(mode, expected_messages):
    venue = discover().get("binance")
    broadcaster = BroadcastActor("tcp://127.0.0.1:*", hwm=10_000, status_interval=60)
    try:
        actor = OrderBookActor(
            venue,
            Metrics("binance"),
            broadcaster,
            depth=5,
            max_buffer=100,
            snapshot_depth=100,
            rest=None,
            resubscribe=_noop,
            publish_mode=mode,
        )
        actor.add(
            Instrument(
                venue="binance",
                symbol="BTCUSDT",
                kind="spot",
                base="BTC",
                quote="USDT",
                tick_size="0.01",
                lot_size="0.00001",
            )
        )
        actor.submit(
            BookSnapshot(
                venue="binance", symbol="BTCUSDT", sequence=100, bids=[("100.00", "1")], asks=[("101.00", "1")]
            )
        )
        for i in range(50):  # a burst already waiting when the actor wakes up
            actor.submit(_delta(101 + i, "99.50", f"{i + 1}"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(actor.run)
            with anyio.fail_after(5):
                while actor.books["BTCUSDT"].last_sequence != 150:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        counts = broadcaster.publisher.topic_counts
        assert counts["book.binance.BTCUSDT"].seq == expected_messages
        assert actor.books["BTCUSDT"].book.top(5)[0] == [("100.00", "1"), ("99.50", "50")]
        assert actor.state_of("BTCUSDT") == "synced"
    finally:
        broadcaster.close()
