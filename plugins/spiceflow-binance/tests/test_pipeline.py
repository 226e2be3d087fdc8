"""The full pipeline against the Binance simulator over real sockets:
simulator WebSocket + REST -> WebSocketActor -> router -> books -> ZeroMQ -> subscriber.

- the recorded spot and USD-M sessions replayed: every published book whose sequence is
  a ``bookTicker`` update id has exactly that ticker's best bid/ask;
- each fault switch is detected (counters), logged, resynced, and afterwards the
  published book equals the simulator's truth.
"""

from __future__ import annotations

import collections
import json

import anyio
import pytest
from runtime_helpers import assert_exact, captured_logs, collecting, heal_fault, levels, running, settings_for, wait_for

from spiceflow_core.plugin.registry import discover
from spiceflow_core.recording.capture import read_capture
from spiceflow_core.runtime.orchestrator import Orchestrator

pytestmark = pytest.mark.anyio

DEPTH = 25  # published levels per side (settings.book.depth default)


@pytest.fixture
def logs():
    """Every log line (message text) during the test."""
    with captured_logs() as lines:
        yield lines


def recorded_tickers(prefix: str) -> dict[tuple[str, int], tuple[tuple[str, str], tuple[str, str]]]:
    """``bookTicker`` best bid/ask from the recording file, keyed by (symbol, u)."""
    out = {}
    for rec in read_capture(prefix):
        if rec.kind != "recv" or "@bookTicker" not in rec.body[:80]:
            continue
        data = json.loads(rec.body)["data"]
        out[(data["s"], data["u"])] = ((data["b"], data["B"]), (data["a"], data["A"]))
    return out


# -- recorded sessions -----------------------------------------------------------------------


@pytest.mark.parametrize(("venue_name", "file"), [("binance", "BINANCE"), ("binance-usdm", "BINANCE_FUTURES")])
async def test_recorded_session_books_match_book_tickers(recorded, venue_name, file):
    prefix = str(recorded / file)
    tickers = recorded_tickers(prefix)
    registry = discover()
    venue = registry.get(venue_name)
    async with venue.simulator(recording=prefix) as sim:
        sim.paused = True  # hold the replay until the subscriber listens
        symbols = sim.symbols()
        # live profile: exchangeInfo and the depth snapshots come from the simulator
        settings = settings_for(venue_name, symbols, profiles=())
        orc = Orchestrator(settings, registry, [venue_name], endpoint_overrides={venue_name: sim.endpoints})
        async with running(orc):
            runtime = orc.runtimes[venue_name]
            async with collecting(orc, f"book.{venue_name}.", f"status.{venue_name}.") as got:
                await wait_for(lambda: got.status)  # the ZeroMQ subscription is live
                sim.paused = False
                with anyio.fail_after(20):
                    await sim.finished.wait()
                # everything sent has been published: each book reached its truth
                for symbol in symbols:
                    truth = sim.truth(symbol)
                    assert truth is not None, symbol
                    await wait_for(lambda: symbol in got.latest and got.latest[symbol].sequence >= truth[0], timeout=10)
                    last = got.latest[symbol]
                    assert last.sequence == truth[0]
                    assert levels(last.bids) == truth[1][:DEPTH] and levels(last.asks) == truth[2][:DEPTH], symbol
            # one SUBSCRIBE per depth stream: the first connection must not subscribe a
            # channel twice (its own request plus the on-connect resubscribe)
            subscribed = [c for f in sim.client_frames if '"SUBSCRIBE"' in f for c in json.loads(f)["params"]]
            assert sorted(subscribed) == sorted(f"{s.lower()}@depth@100ms" for s in symbols)
            totals = runtime.metrics.totals
            assert totals["gaps"] == 0 and totals["resyncs"] == 0 and totals["parse_errors"] == 0
    matched = mismatched = 0
    per_symbol: collections.Counter[str] = collections.Counter()
    for msg in got.books:
        expected = tickers.get((msg.symbol, msg.sequence))
        if expected is None:
            continue
        actual = (tuple(msg.bids[0]) if msg.bids else None, tuple(msg.asks[0]) if msg.asks else None)
        if actual == expected:
            matched += 1
            per_symbol[msg.symbol] += 1
        else:
            mismatched += 1
            print(f"MISMATCH {msg.symbol} u={msg.sequence}: published {actual}, bookTicker {expected}")
    print(f"{venue_name}: {len(got.books)} book messages, {matched} matched bookTicker ids {dict(per_symbol)}")
    assert mismatched == 0
    assert matched > 20


# -- fault switches ------------------------------------------------------------------------------

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def pipeline(sim, venue_name: str, registry, **runtime_settings) -> Orchestrator:
    settings = settings_for(venue_name, SYMBOLS, profiles=(), runtime=runtime_settings or None)
    return Orchestrator(settings, registry, [venue_name], endpoint_overrides={venue_name: sim.endpoints})


FAULTS = {
    # fault -> (arm it, counters that must move, a log fragment that must appear)
    "drop": (lambda f: setattr(f, "drop", 1), ("reconnects", "gaps"), "connection lost"),
    "reset": (lambda f: setattr(f, "reset", 1), ("reconnects", "gaps"), "connection lost"),
    "stall": (lambda f: setattr(f, "stall", 1.5), ("reconnects",), "silence timeout"),
    "gap": (lambda f: setattr(f, "gap", 1), ("gaps", "resyncs"), "gap:"),
    "malformed": (lambda f: setattr(f, "malformed", 2), ("parse_errors",), "bad frame skipped"),
}


@pytest.mark.parametrize("venue_name", ["binance", "binance-usdm"])
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_is_detected_resynced_and_book_exact_afterwards(venue_name, fault, logs):
    registry = discover()
    venue = registry.get(venue_name)
    async with venue.simulator(symbols=SYMBOLS, rate=200) as sim:
        async with running(pipeline(sim, venue_name, registry, silence_timeout=0.6)) as orc:
            runtime = orc.runtimes[venue_name]
            async with collecting(orc, f"book.{venue_name}.", f"status.{venue_name}.") as got:
                await heal_fault(sim, runtime, got, SYMBOLS, FAULTS[fault], logs)
                if fault == "malformed":
                    assert runtime.metrics.totals["reconnects"] == 0 and runtime.metrics.totals["gaps"] == 0
                if fault == "gap":
                    assert runtime.metrics.totals["reconnects"] == 0
                    # only the symbol that missed an update was resynced
                    assert sum(1 for s in SYMBOLS if runtime.metrics.by_instrument[s]["gaps"]) == 1
                await assert_exact(sim, got, runtime, SYMBOLS)


@pytest.mark.parametrize("venue_name", ["binance", "binance-usdm"])
async def test_rest_429_and_500_during_a_resync_are_retried(venue_name, logs):
    registry = discover()
    venue = registry.get(venue_name)
    async with venue.simulator(symbols=SYMBOLS, rate=200) as sim:
        async with running(pipeline(sim, venue_name, registry)) as orc:
            runtime = orc.runtimes[venue_name]
            async with collecting(orc, f"book.{venue_name}.", f"status.{venue_name}.") as got:
                await wait_for(lambda: set(SYMBOLS) <= set(got.latest))
                depth_calls = sum("/depth" in r for r in sim.rest_requests)
                sim.faults.rest_errors = [429, 500]
                sim.faults.gap = 1
                await wait_for(lambda: runtime.metrics.totals["resyncs"] >= 1)
                await wait_for(lambda: not sim.faults.rest_errors, timeout=10)  # both errors answered
                await wait_for(lambda: all(runtime.books.state_of(s) == "synced" for s in SYMBOLS), timeout=15)
                assert sum("/depth" in r for r in sim.rest_requests) >= depth_calls + 3  # 429, 500, then 200
                # Retry-After: 1 is honoured, the 500 retried with a backoff; both logged
                assert any("rate limited" in line and "(429), pausing 1.00s" in line for line in logs), (
                    "the 429 was not logged with its Retry-After pause"
                )
                assert any("HTTP 500" in line and "retry" in line for line in logs), "the 500 was not logged"
                assert runtime.rest.rate_limited == 1 and runtime.rest.failures == 1
                await assert_exact(sim, got, runtime, SYMBOLS)


async def test_a_book_thinned_by_price_moves_is_refreshed_without_a_gap():
    """With a 30-level REST snapshot the vouched range shrinks as prices move; once a
    side can no longer fill the published depth, a fresh snapshot is synced in a shadow
    book while the live one keeps publishing: no gap, no stale state, full depth again."""
    import msgspec

    registry = discover()
    async with registry.get("binance").simulator(symbols=SYMBOLS[:1], rate=400) as sim:
        settings = settings_for("binance", SYMBOLS[:1], profiles=())
        settings.venues["binance"] = msgspec.structs.replace(settings.venues["binance"], snapshot_depth=30)
        orc = Orchestrator(settings, registry, ["binance"], endpoint_overrides={"binance": sim.endpoints})
        async with running(orc):
            runtime = orc.runtimes["binance"]
            async with collecting(orc, "book.binance.", "status.binance.") as got:
                await wait_for(lambda: runtime.metrics.totals["refreshes"] >= 1, timeout=20)
                thin_at = len(got.books)
                await wait_for(
                    lambda: any(len(m.bids) == len(m.asks) == DEPTH for m in got.books[thin_at:]), timeout=10
                )
                assert runtime.metrics.totals["gaps"] == 0 and runtime.metrics.totals["resyncs"] == 0
                assert not [s for s in got.status if s.symbol == "BTCUSDT" and s.state in ("stale", "resyncing")]
                await assert_exact(sim, got, runtime, SYMBOLS[:1])
