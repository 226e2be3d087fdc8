"""The simulator keeps the venue's documented limits (config.py): a client crossing one
is recorded in ``sim.violations`` -- which every pipeline test asserts empty -- and
disconnected or refused as the venue does.

FILL IN: a limit of the venue's own (requests per hour, bytes per request, ...) gets a
test here when the simulator enforces it.
"""

import anyio
import pytest
from {{ cookiecutter.__package }} import config
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.anyio


async def test_a_client_over_the_message_limit_is_disconnected_and_recorded(venue):
    async with venue.simulator(symbols=["BTCUSDT"]) as sim, connect(sim.endpoints.ws_url) as ws:
        with pytest.raises(ConnectionClosed):
            for _ in range(int(config.MAX_MESSAGES_PER_SECOND) + 2):
                await ws.send('{"method":"not a request"}')  # any client message counts
            with anyio.fail_after(5):
                while True:
                    await ws.recv()
    assert [v.limit for v in sim.violations] == ["messages_per_second"]
    assert sim.violations[0].disconnected


async def test_a_request_over_the_channels_per_request_limit_is_refused_and_recorded(venue, monkeypatch):
    n = config.CHANNELS_PER_REQUEST + 1
    async with venue.simulator(symbols=n) as sim:
        with monkeypatch.context() as patched:  # the session itself never sends such a request
            patched.setattr(config, "CHANNELS_PER_REQUEST", n)
            [request] = venue.new_session().subscribe([sim.channel(s) for s in sim.symbols()])
        async with connect(sim.endpoints.ws_url) as ws:
            await ws.send(request.frame)
            with anyio.fail_after(5):
                answer = await ws.recv()
    assert [v.limit for v in sim.violations] == ["channels_per_request"]
    assert "error" in answer  # refused, nothing subscribed
