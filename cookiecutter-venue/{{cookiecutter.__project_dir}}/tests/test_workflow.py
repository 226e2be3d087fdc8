"""The bring-up loop in-process: the core's orchestrator against the simulator.

1. WebSocketOnly: reference data -> connect -> subscribe -> done at the first heartbeat.
2. Full: books built from the venue's snapshots and deltas, published over ZeroMQ and
   exactly equal to the simulator's truth.
"""

import anyio
import pytest
from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.runtime.orchestrator import Orchestrator

from {{ cookiecutter.__package }} import config

pytestmark = pytest.mark.anyio
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


async def test_ws_only_completes_at_the_first_heartbeat(venue, registry, settings_for, capsys):
    async with venue.simulator(symbols=SYMBOLS) as sim:
        # live REST (the simulator's) for reference data, like `--endpoint` on the CLI
        orc = Orchestrator(settings_for(SYMBOLS, ["ws-only"]), registry, [config.VENUE],
                           endpoint_overrides={config.VENUE: sim.endpoints})
        with anyio.fail_after(20):
            code = await orc.run()
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"ws-only {config.VENUE}: connected after" in out and "first heartbeat after" in out
    assert any("{{ "SUBSCRIBE" if cookiecutter.protocol_style == "plain-json" else "public/subscribe" }}" in frame for frame in sim.client_frames)
    assert sim.violations == []  # the client kept the venue's documented limits


async def test_ws_only_with_the_packaged_fixtures(venue, registry, settings_for, capsys):
    async with venue.simulator(symbols=SYMBOLS) as sim:
        orc = Orchestrator(settings_for(["BTCUSDT"], ["fixtures", "ws-only"]), registry, [config.VENUE],
                           endpoint_overrides={config.VENUE: sim.endpoints})
        with anyio.fail_after(20):
            assert await orc.run() == 0


async def test_ws_only_fails_when_the_venue_stays_silent(venue, registry, settings_for, capsys):
    """The first-heartbeat check is real: nothing comes back, the workflow fails."""
    async with venue.simulator(symbols=SYMBOLS) as sim:
        sim.silent = True
        orc = Orchestrator(settings_for(SYMBOLS, ["ws-only"], first_heartbeat_timeout=1.0), registry, [config.VENUE],
                           endpoint_overrides={config.VENUE: sim.endpoints})
        with anyio.fail_after(20):
            code = await orc.run()
    assert code == 1
    assert "FAILED, no heartbeat within 1s" in capsys.readouterr().out


async def test_full_workflow_publishes_exact_books(venue, registry, settings_for):
    async with venue.simulator(symbols=SYMBOLS, rate=100) as sim:
        orc = Orchestrator(settings_for(SYMBOLS, []), registry, [config.VENUE],
                           endpoint_overrides={config.VENUE: sim.endpoints})
        async with anyio.create_task_group() as tg:
            tg.start_soon(orc.run)
            with anyio.fail_after(15):
                await orc.ready.wait()
            books: dict = {}
            async with Subscriber(orc.broadcaster.address, [f"book.{config.VENUE}."]) as sub:

                async def read() -> None:
                    async for received in sub:
                        books[received.message.symbol] = received.message

                tg.start_soon(read)
                with anyio.fail_after(15):
                    while set(books) != set(SYMBOLS):
                        await anyio.sleep(0.05)
                # freeze the market (keep-alives go on), then the last published book must
                # equal its truth
                sim.paused = True
                for symbol in SYMBOLS:
                    seq, bids, asks = sim.truth(symbol)
                    with anyio.fail_after(10):
                        while books[symbol].sequence != seq:
                            await anyio.sleep(0.02)
                    depth = 25
                    assert [tuple(level) for level in books[symbol].bids] == bids[:depth]
                    assert [tuple(level) for level in books[symbol].asks] == asks[:depth]
                assert orc.runtimes[config.VENUE].metrics.totals.get("parse_errors", 0) == 0
                assert sim.violations == []
            tg.cancel_scope.cancel()
