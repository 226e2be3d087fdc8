"""Chaos suite, broadcast side: a ZeroMQ consumer that stops reading must not block the
publisher, nor grow its memory without bound, nor disturb the other consumers; what it
lost is visible to it (``topic_seq`` gaps -> ``missed``)."""

from __future__ import annotations

import anyio
import psutil
import pytest
from harness import pipeline
from spiceflow_binance.config import SPOT
from spiceflow_binance.simulator import BinanceSimulator

from spiceflow_core.broadcast.subscriber import Subscriber

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(120)]


def _lift(venue) -> None:
    venue.max_messages_per_second = 500.0


async def test_stuck_consumer_does_not_block_or_grow_the_publisher():
    sim = BinanceSimulator(SPOT, symbols=50, rate=1500, levels=300, max_requests_per_second=1000)
    proc = psutil.Process()
    async with pipeline(
        "binance",
        sim,
        tweak_venue=_lift,
        settings_kw={"broadcast": {"hwm": 2000}, "venue_extra": {"snapshot_depth": 100}},
        history_keep=150,
    ) as p:  # a small truth history: its own growth would blur the RSS check
        # the stuck consumer: subscribed to everything, tiny receive buffer, never reads
        stuck = Subscriber(p.orc.broadcaster.address, [""], rcvhwm=100)
        stuck.open()
        try:
            await anyio.sleep(3.0)  # its queues fill up (hwm 2,000 + rcvhwm 100)
            rss_1 = proc.memory_info().rss
            frames = p.runtime.metrics.totals
            published_1, judged_1, received_1 = p.totals["published"], p.oracle.v.checked, frames["frames_in"]
            await anyio.sleep(6.0)
            rss_2 = proc.memory_info().rss
            published = p.totals["published"] - published_1
            judged = p.oracle.v.checked - judged_1
            received = frames["frames_in"] - received_1
            # the pipeline kept publishing at the stream's pace (one book per frame
            # received: the simulator's own pace drops on a loaded machine), the good
            # consumer kept receiving every book (exact), memory stayed put
            assert received > 2_000, received
            assert published > 0.9 * received, (published, received)
            assert judged > 0.95 * published * 0.9, (judged, published)
            assert p.oracle.v.wrong == 0 and p.oracle.v.missed == 0
            growth = (rss_2 - rss_1) / 2**20
            print(f"stuck consumer: {published} published in 6 s, RSS {rss_1 / 2**20:.0f} -> {rss_2 / 2**20:.0f} MiB")
            # A loose guard (this process also runs the simulator and the oracle, whose
            # bounded histories fill meanwhile); the flat-memory figure is the soak's.
            assert growth < 64, f"RSS grew {growth:.0f} MiB in 6 s with a stuck consumer"
            lat = p.runtime.metrics.latency.percentiles(0.5, 0.99)
            assert lat["p99"] < 200, lat  # ms, receive -> publish: the publisher never waited
            # what the stuck consumer lost, it can tell (topic_seq gaps)
            with anyio.move_on_after(5.0):
                while stuck.missed_total == 0:
                    await stuck.receive()
            assert stuck.missed_total > 0
            print(f"stuck consumer: saw {stuck.received} messages, knows it missed {stuck.missed_total}")
        finally:
            stuck.close()
