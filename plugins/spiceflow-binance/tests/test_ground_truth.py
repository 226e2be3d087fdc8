"""Replay the recorded sessions through the parser and the core BookSync (no pipeline):
every book state whose sequence equals a bookTicker ``u`` must have exactly the
bookTicker's best bid/ask (price and size).

Why the check is keyed by id and not by arrival: ``bookTicker`` is pushed in real time
while ``depth@100ms`` batches 100 ms of updates, so a ticker arrives *before* the depth
event whose final id ``u`` equals its ``u``. Only tickers whose ``u`` is the last update
of a depth batch can be compared (the others describe intermediate states the diff
stream never shows); futures ids are shared across symbols and batches skip ids, so
fewer tickers align there relative to the ticker count.
"""

import pytest
from spiceflow_binance.parsing import parse_frame
from spiceflow_binance.rest import decode_snapshot
from spiceflow_binance.sync import FUTURES_POLICY, SPOT_POLICY

from spiceflow_core.model import BookDelta, TopOfBook
from spiceflow_core.recording.capture import read_capture

book = pytest.importorskip("spiceflow_core.book")


def replay(prefix, venue, policy):
    syncs = {}
    tickers = {}
    checked = set()
    result = {"match": 0, "mismatch": [], "gaps": 0}

    def check(symbol, seq):
        key = (symbol, seq)
        t = tickers.get(key)
        if t is None or key in checked:
            return
        checked.add(key)
        b = syncs[symbol].book
        got = (b.best_bid(), b.best_ask())
        want = ((t.bid_price, t.bid_size), (t.ask_price, t.ask_size))
        if tuple(map(tuple, got)) == want:
            result["match"] += 1
        else:
            result["mismatch"].append((key, got, want))

    def sync_for(symbol):
        if symbol not in syncs:
            syncs[symbol] = book.BookSync(venue, symbol, policy)
        return syncs[symbol]

    def handle(symbol, events):
        for e in events:
            if isinstance(e, book.GapDetected):
                result["gaps"] += 1
            elif isinstance(e, (book.Synced, book.BookUpdated)):
                check(symbol, e.sequence)

    for rec in read_capture(prefix):
        if rec.kind == "rest" and "/depth" in rec.url:
            symbol = rec.url.split("symbol=")[1].split("&")[0]
            snap = decode_snapshot(venue, symbol, rec.body.encode(), 1000)
            handle(symbol, sync_for(symbol).on_snapshot(snap))
        elif rec.kind == "recv":
            for ev in parse_frame(venue, rec.body, 0):
                if isinstance(ev, BookDelta):
                    handle(ev.symbol, sync_for(ev.symbol).on_delta(ev))
                elif isinstance(ev, TopOfBook):
                    tickers[(ev.symbol, ev.sequence)] = ev
                    s = syncs.get(ev.symbol)
                    if s is not None and s.state is book.SyncState.SYNCED and s.last_sequence == ev.sequence:
                        check(ev.symbol, ev.sequence)
    return result, syncs


@pytest.mark.parametrize(
    "prefix, venue, policy, minimum",
    [("BINANCE", "binance", SPOT_POLICY, 20), ("BINANCE_FUTURES", "binance-usdm", FUTURES_POLICY, 20)],
)
def test_recorded_books_match_book_ticker(recorded, prefix, venue, policy, minimum):
    result, syncs = replay(recorded / prefix, venue, policy)
    assert result["mismatch"] == []
    assert result["gaps"] == 0
    assert all(s.state is book.SyncState.SYNCED for s in syncs.values())
    print(f"{prefix}: {result['match']} book states equal to bookTicker")
    assert result["match"] > minimum
