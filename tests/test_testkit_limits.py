"""The loopback server's client-message limit, through the toy venue's simulator and a
bare ``LoopbackServer``: real sockets, a plain ``websockets`` client."""

from __future__ import annotations

import json

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from spiceflow_core.testkit.server import LimitViolation, LoopbackServer, MessageLimit
from spiceflow_core.testkit.toy import ToySimulator, ToyVenue

pytestmark = pytest.mark.anyio


async def pings(ws, first: int, count: int) -> None:
    """``count`` pings with distinct payloads, each answered by the server."""
    waiters = [await ws.ping(str(first + i)) for i in range(count)]
    with anyio.fail_after(5):
        for waiter in waiters:
            await waiter


async def closed_by_server(ws) -> int:
    with pytest.raises(ConnectionClosed) as info:
        with anyio.fail_after(5):
            while True:
                await ws.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code


async def test_toy_limit_is_the_venues_and_counts_pings_in_a_sliding_window():
    limit = int(ToyVenue.max_messages_per_second)
    async with ToySimulator(symbols=["AAA"]).running() as sim:
        async with connect(sim.endpoints.ws_url, ping_interval=None) as ws:
            await pings(ws, 0, limit)
            await anyio.sleep(1.2)  # the first batch leaves the one-second window
            await pings(ws, limit, limit)
            assert sim.violations == []
            await ws.ping("one too many")  # the second batch was counted
            assert await closed_by_server(ws) == 1008
        (violation,) = sim.limit_disconnects
        assert violation.limit == "messages_per_second"
        assert violation.detail == f"{limit + 1} messages within one second, limit {limit} ({limit + 1} ping)"


async def test_toy_json_requests_and_pings_share_one_budget():
    async with ToySimulator(symbols=["AAA"], message_limit=3).running() as sim:
        async with connect(sim.endpoints.ws_url, ping_interval=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "id": 1, "channels": ["book.AAA"]}))
            with anyio.fail_after(5):
                assert json.loads(await ws.recv()) == {"id": 1, "result": ["book.AAA"]}
            await pings(ws, 0, 2)
            await ws.send(json.dumps({"op": "unsubscribe", "id": 2, "channels": ["book.AAA"]}))
            assert await closed_by_server(ws) == 1008
        assert [json.loads(f)["id"] for f in sim.client_frames] == [1]  # the 4th was never handled
        (violation,) = sim.violations
        assert violation.disconnected and "(2 ping, 2 text)" in violation.detail


async def test_toy_without_a_limit_lets_anything_through():
    async with ToySimulator(symbols=["AAA"], message_limit=None).running() as sim:
        async with connect(sim.endpoints.ws_url, ping_interval=None) as ws:
            await pings(ws, 0, 3 * int(ToyVenue.max_messages_per_second))
        assert sim.violations == []


async def test_control_frames_can_be_left_out_of_the_count():
    violations: list[LimitViolation] = []

    async def echo(conn) -> None:
        try:
            async for message in conn:
                await conn.send(message)
        except ConnectionClosed:
            pass

    limit = MessageLimit(2, control_frames=False, close_code=4000, close_reason="slow down")
    async with LoopbackServer(ws=echo, message_limit=limit, on_violation=violations.append) as server:
        async with connect(server.ws_url, ping_interval=None) as ws:
            await pings(ws, 0, 10)
            for text in ("a", "b"):
                await ws.send(text)
                assert await ws.recv() == text
            assert violations == []
            await ws.send("c")
            assert await closed_by_server(ws) == 4000
        assert server.client_messages == {"ping": 10, "text": 3}
        assert [v.detail for v in violations] == ["3 messages within one second, limit 2 (3 text)"]
