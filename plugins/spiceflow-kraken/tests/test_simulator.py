"""The simulator speaks Kraken v2 and enforces its client-message limit."""

from __future__ import annotations

import json

import anyio
import pytest
import websockets.asyncio.client as ws_client
from spiceflow_kraken import config
from spiceflow_kraken.checksum import KrakenChecksum
from spiceflow_kraken.plugin import Kraken
from spiceflow_kraken.sync import timestamp_us
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.anyio


async def test_subscribe_answers_per_symbol_then_snapshot_with_a_valid_checksum():
    async with Kraken().simulator(symbols=["BTC/USD", "ETH/USD"], rate=20) as sim:
        sim.paused = True
        async with ws_client.connect(sim.endpoints.ws_url) as ws:
            await ws.send(
                json.dumps(
                    {
                        "method": "subscribe",
                        "params": {"channel": "book", "symbol": ["BTC/USD", "NOPE/USD"]},
                        "req_id": 9,
                    }
                )
            )
            frames = [json.loads(await ws.recv()) for _ in range(3)]
    ok, snap, refused = frames[0], frames[1], frames[2]
    assert ok["method"] == "subscribe" and ok["success"] and ok["req_id"] == 9
    assert ok["result"] == {"channel": "book", "symbol": "BTC/USD", "depth": 10, "snapshot": True}
    assert snap["channel"] == "book" and snap["type"] == "snapshot"
    assert refused["success"] is False and refused["symbol"] == "NOPE/USD" and "not supported" in refused["error"]
    seq, bids, asks = sim.truth_top("BTC/USD", 10)
    data = snap["data"][0]
    assert len(data["bids"]) == len(data["asks"]) == 10  # the default depth
    assert data["checksum"] == KrakenChecksum().compute(bids, asks)
    assert timestamp_us(data["timestamp"]) == seq  # the id the plugin gives this state


async def test_a_client_over_the_message_limit_is_disconnected_and_recorded():
    async with Kraken().simulator(symbols=["BTC/USD"]) as sim:
        async with ws_client.connect(sim.endpoints.ws_url) as ws:
            with pytest.raises(ConnectionClosed):
                for _ in range(int(config.MAX_MESSAGES_PER_SECOND) + 2):
                    await ws.send(config.PING_FRAME)
                with anyio.fail_after(5):
                    while True:
                        await ws.recv()
        assert len(sim.violations) == 1 and sim.violations[0].disconnected
