"""The full pipeline against the Deribit simulator over real sockets:
simulator JSON-RPC WebSocket (+ REST) -> WebSocketActor -> router -> books -> ZeroMQ ->
subscriber.

- the recorded session replayed: every published book whose exchange timestamp equals a
  ``ticker`` notification's timestamp for the same instrument has that ticker's best
  bid/ask;
- heartbeats: every test_request answered within 1 s (the simulator records each);
  an unanswered one closes the connection and the pipeline reconnects;
- fault switches heal with an exact book afterwards;
- ``too_many_requests`` (10028) on subscribe is retried after a backoff.
"""

from __future__ import annotations

import collections
import time

import anyio
import pytest
from runtime_helpers import assert_exact, captured_logs, collecting, heal_fault, levels, running, settings_for, wait_for
from spiceflow_deribit.parsing import parse_frame

from spiceflow_core.model import Heartbeat, TopOfBook
from spiceflow_core.plugin.registry import discover
from spiceflow_core.recording.capture import read_capture
from spiceflow_core.runtime.orchestrator import Orchestrator

pytestmark = pytest.mark.anyio

DEPTH = 25
VENUE = "deribit"


@pytest.fixture(autouse=True)
def public_channels(monkeypatch):
    """No API credentials: the pipeline uses the public ``100ms`` channels."""
    monkeypatch.delenv("DERIBIT_CLIENT_ID", raising=False)
    monkeypatch.delenv("DERIBIT_CLIENT_SECRET", raising=False)


@pytest.fixture
def logs():
    """Every log line (message text) during the test."""
    with captured_logs() as lines:
        yield lines


def orchestrator(sim, symbols: list[str], registry=None, *, profiles=("fixtures",), **runtime) -> Orchestrator:
    settings = settings_for(VENUE, symbols, profiles=profiles, runtime=runtime or None)
    return Orchestrator(settings, registry or discover(), [VENUE], endpoint_overrides={VENUE: sim.endpoints})


# -- the recorded session -------------------------------------------------------------------------


def recorded_tickers(prefix: str) -> dict[tuple[str, int], list[tuple]]:
    """Ticker best bid/ask from the recording file, keyed by (instrument, timestamp)."""
    out: dict[tuple[str, int], list[tuple]] = collections.defaultdict(list)
    for rec in read_capture(prefix):
        if rec.kind != "recv":
            continue
        for event in parse_frame(rec.body, 0):
            if isinstance(event, TopOfBook):
                bid = (event.bid_price, event.bid_size) if event.bid_price is not None else None
                ask = (event.ask_price, event.ask_size) if event.ask_price is not None else None
                out[(event.symbol, event.exchange_ts_ms)].append((bid, ask))
    return out


async def test_recorded_session_books_match_tickers(recording):
    tickers = recorded_tickers(recording)
    registry = discover()
    venue = registry.get(VENUE)
    async with venue.simulator(recording=recording, speed=20) as sim:
        sim.paused = True  # hold the replay until every book is subscribed and we listen
        symbols = sim.symbols()
        # the recorded instruments expired in 2021: the fixtures profile (a frozen
        # moment, no expiry filter) knows them; live REST would filter them out
        orc = orchestrator(sim, symbols, registry)
        async with running(orc):
            runtime = orc.runtimes[VENUE]
            # the pipeline's channel names are the public 100ms ones; the simulator maps
            # the recorded .raw notifications onto them
            assert all(c.endswith(".100ms") for sub in runtime.list_subscriptions() for c in sub.channels)
            async with collecting(orc, f"book.{VENUE}.", f"status.{VENUE}.") as got:
                await wait_for(lambda: got.status)  # the ZeroMQ subscription is live
                sim.paused = False
                with anyio.fail_after(20):
                    await sim.replay_done.wait()
                for symbol in symbols:
                    truth = sim.truth(symbol)
                    if truth is None:
                        continue
                    await wait_for(lambda: symbol in got.latest and got.latest[symbol].sequence == truth[0], timeout=10)
                    last = got.latest[symbol]
                    assert levels(last.bids) == truth[1][:DEPTH] and levels(last.asks) == truth[2][:DEPTH], symbol
            assert runtime.metrics.totals["gaps"] == 0 and runtime.metrics.totals["parse_errors"] == 0
    compared = mismatched = 0
    for msg in got.books:
        for bid, ask in tickers.get((msg.symbol, msg.exchange_ts_ms), []):
            compared += 1
            actual = (tuple(msg.bids[0]) if msg.bids else None, tuple(msg.asks[0]) if msg.asks else None)
            if actual != (bid, ask):
                mismatched += 1
                print(f"MISMATCH {msg.symbol} ts={msg.exchange_ts_ms}: published {actual}, ticker {(bid, ask)}")
    print(f"deribit: {len(got.books)} book messages, {compared} compared with tickers, {mismatched} mismatched")
    assert mismatched == 0
    assert compared > 30


# -- heartbeats ---------------------------------------------------------------------------------------


async def test_every_test_request_is_answered_within_a_second():
    registry = discover()
    async with registry.get(VENUE).simulator(symbols=["BTC-PERPETUAL"], heartbeat_interval=0.25) as sim:
        async with running(orchestrator(sim, ["BTC-PERPETUAL"], registry)) as orc:
            runtime = orc.runtimes[VENUE]
            await wait_for(lambda: len(sim.heartbeats) >= 10, timeout=10)
            await anyio.sleep(0.3)
            assert runtime.first_heartbeat.is_set()
            assert sim.closed_for_heartbeat == []
            assert runtime.metrics.totals["reconnects"] == 0
            now = time.monotonic()
            for record in sim.heartbeats:
                if record.answered_at is None:  # only the one sent just now may be open
                    assert now - record.sent_at < 1.0, record
                else:
                    assert record.delay < 1.0, record
            assert sum(r.answered_at is not None for r in sim.heartbeats) >= 10
            assert sim.requests("public/set_heartbeat")[0]["params"]["interval"] >= 10


async def test_unanswered_test_request_closes_the_connection_and_the_pipeline_reconnects(logs):
    registry = discover()
    venue = registry.get(VENUE)
    new_session = venue.new_session
    forget = {"n": 1}

    def forgetful_session():
        # a client fault injected on our side: the next test_request goes unanswered
        session = new_session()
        parse = session.parse

        def parse_forgetting(frame, recv_ts_ns):
            events = parse(frame, recv_ts_ns)
            if forget["n"] and any(isinstance(e, Heartbeat) and e.reply for e in events):
                forget["n"] -= 1
                return [e for e in events if not isinstance(e, Heartbeat)]
            return events

        session.parse = parse_forgetting
        return session

    venue.new_session = forgetful_session
    symbols = ["BTC-PERPETUAL"]
    async with venue.simulator(symbols=symbols, heartbeat_interval=0.3) as sim:
        async with running(orchestrator(sim, symbols, registry)) as orc:
            runtime = orc.runtimes[VENUE]
            async with collecting(orc, f"book.{VENUE}.") as got:
                await wait_for(lambda: sim.closed_for_heartbeat, timeout=10)
                await wait_for(lambda: runtime.metrics.totals["reconnects"] >= 1, timeout=10)
                await wait_for(lambda: runtime.books.state_of(symbols[0]) == "synced", timeout=10)
                assert any("connection lost" in line for line in logs)
                # on the new connection every test_request is answered again
                n = len(sim.heartbeats)
                await wait_for(lambda: len(sim.heartbeats) >= n + 3, timeout=10)
                assert len(sim.closed_for_heartbeat) == 1
                await assert_exact(sim, got, runtime, symbols, settle=0.15)


# -- fault switches -------------------------------------------------------------------------------------

SYMBOLS = ["BTC-PERPETUAL", "ETH-PERPETUAL"]

FAULTS = {
    # fault -> (arm, counters that must move, log fragment)
    "drop": (lambda f: setattr(f, "drop", 1), ("reconnects",), "connection lost"),
    "reset": (lambda f: setattr(f, "reset", 1), ("reconnects",), "connection lost"),
    "gap": (lambda f: setattr(f, "gap", 1), ("gaps", "resyncs"), "gap:"),
    "malformed": (lambda f: setattr(f, "malformed", 2), ("parse_errors",), "bad frame skipped"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_heals_with_an_exact_book(fault, logs):
    registry = discover()
    async with registry.get(VENUE).simulator(symbols=SYMBOLS, rate=50, heartbeat_interval=0.5) as sim:
        async with running(orchestrator(sim, SYMBOLS, registry)) as orc:
            runtime = orc.runtimes[VENUE]
            async with collecting(orc, f"book.{VENUE}.", f"status.{VENUE}.") as got:
                subscribes = len(sim.requests("public/subscribe"))
                await heal_fault(sim, runtime, got, SYMBOLS, FAULTS[fault], logs, settle=0.15)
                if fault == "gap":
                    # resubscribed that instrument only, and rebuilt it from a fresh snapshot
                    assert runtime.metrics.totals["reconnects"] == 0
                    assert sum(1 for s in SYMBOLS if runtime.metrics.by_instrument[s]["gaps"]) == 1
                    assert len(sim.requests("public/unsubscribe")) >= 1
                    assert len(sim.requests("public/subscribe")) > subscribes
                if fault in ("drop", "reset"):
                    assert len(sim.requests("public/subscribe")) > subscribes  # resubscribed
                if fault == "malformed":
                    assert runtime.metrics.totals["reconnects"] == 0 and runtime.metrics.totals["gaps"] == 0
                await assert_exact(sim, got, runtime, SYMBOLS, settle=0.15)


async def test_change_before_the_snapshot_is_dropped_on_resubscribe():
    """``reorder``: on the next (re)subscribe a stale change arrives before the snapshot;
    the book must not gap on it (it is older than the snapshot) and stays exact."""
    registry = discover()
    async with registry.get(VENUE).simulator(symbols=SYMBOLS, rate=50, heartbeat_interval=0.5) as sim:
        async with running(orchestrator(sim, SYMBOLS, registry)) as orc:
            runtime = orc.runtimes[VENUE]
            async with collecting(orc, f"book.{VENUE}.") as got:
                await wait_for(lambda: set(SYMBOLS) <= set(got.latest))
                sim.faults.reorder = 1
                sim.faults.drop = 1  # the reconnect resubscribes: the stale change comes first
                await wait_for(lambda: runtime.metrics.totals["reconnects"] >= 1, timeout=10)
                await wait_for(lambda: sim.faults.reorder == 0, timeout=10)
                await wait_for(lambda: all(runtime.books.state_of(s) == "synced" for s in SYMBOLS), timeout=10)
                await assert_exact(sim, got, runtime, SYMBOLS, settle=0.15)
                assert runtime.metrics.totals["gaps"] == 0


# -- too_many_requests -----------------------------------------------------------------------------------


async def test_too_many_requests_on_subscribe_is_retried_after_a_backoff(logs):
    registry = discover()
    symbols = ["BTC-PERPETUAL", "ETH-PERPETUAL", "BTC-FUT", "ETH-FUT"]
    # a small credit pool: one subscribe request, then one every two seconds
    async with (
        registry.get(VENUE).simulator(
            symbols=symbols, rate=20, heartbeat_interval=0.5, max_credits=3000, refill_per_second=1500
        ) as sim,
        running(orchestrator(sim, [], registry, profiles=())) as orc,  # REST from the simulator
    ):
        runtime = orc.runtimes[VENUE]
        # four Subscribe workflows one after the other (commands arriving together would
        # be batched into one request): four requests, faster than the pool refills
        for symbol in symbols:
            await runtime.subscribe(symbol)
        assert sim.rate_limited >= 1
        assert any("too_many_requests" in line and "retry" in line for line in logs)
        assert {s.symbol for s in runtime.list_subscriptions()} == set(symbols)
        await wait_for(lambda: all(runtime.books.state_of(s) == "synced" for s in symbols), timeout=10)
        # every refused request was sent again under a new id, and nothing was
        # refused for good
        ids = [r["id"] for r in sim.requests("public/subscribe")]
        assert len(ids) == len(set(ids)) == len(symbols) + sim.rate_limited


async def test_missing_heartbeats_trigger_a_reconnect_even_while_data_flows(logs):
    registry = discover()
    async with registry.get(VENUE).simulator(symbols=["BTC-PERPETUAL"], rate=50, heartbeat_interval=0.25) as sim:
        settings = settings_for(VENUE, ["BTC-PERPETUAL"], profiles=(), runtime={"heartbeat_timeout": 1.0})
        orc = Orchestrator(settings, registry, [VENUE], endpoint_overrides={VENUE: sim.endpoints})
        async with running(orc):
            runtime = orc.runtimes[VENUE]
            await wait_for(lambda: runtime.books.state_of("BTC-PERPETUAL") == "synced")
            sim.faults.skip_heartbeats = 8  # ~2 s without a test_request while books keep coming
            await wait_for(lambda: runtime.metrics.totals["reconnects"] >= 1, timeout=10)
            assert any("no heartbeat from the venue" in line for line in logs)
            await wait_for(lambda: runtime.books.state_of("BTC-PERPETUAL") == "synced", timeout=10)
