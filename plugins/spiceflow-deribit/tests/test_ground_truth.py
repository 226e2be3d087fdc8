"""Replay the recorded session through parser + BookSync: every book state whose
exchange timestamp equals a ticker notification's timestamp for the same instrument
has exactly the ticker's best bid/ask (price and amount)."""

from __future__ import annotations

import collections

from spiceflow_deribit.parsing import parse_frame
from spiceflow_deribit.plugin import Deribit

from spiceflow_core.book import BookSync, GapDetected
from spiceflow_core.model import BookDelta, BookSnapshot, TopOfBook
from spiceflow_core.recording.capture import read_capture

_venue = Deribit()


def replay(recording: str):
    syncs: dict[str, BookSync] = {}
    book_tops: dict[tuple[str, int], list[tuple]] = collections.defaultdict(list)
    tickers: dict[tuple[str, int], list[tuple]] = collections.defaultdict(list)
    gaps = 0
    for rec in read_capture(recording):
        if rec.kind != "recv":
            continue
        for event in parse_frame(rec.body, 0):
            if isinstance(event, (BookSnapshot, BookDelta)):
                sync = syncs.get(event.symbol)
                if sync is None:
                    sync = syncs[event.symbol] = BookSync("deribit", event.symbol, _venue.sequence_policy(None))  # type: ignore[arg-type]
                out = sync.on_snapshot(event) if isinstance(event, BookSnapshot) else sync.on_delta(event)
                gaps += sum(isinstance(e, GapDetected) for e in out)
                book_tops[(event.symbol, event.exchange_ts_ms)].append((sync.book.best_bid(), sync.book.best_ask()))
            elif isinstance(event, TopOfBook):
                bid = (event.bid_price, event.bid_size) if event.bid_price is not None else None
                ask = (event.ask_price, event.ask_size) if event.ask_price is not None else None
                tickers[(event.symbol, event.exchange_ts_ms)].append((bid, ask))
    return book_tops, tickers, gaps


def test_books_equal_tickers_at_equal_timestamps(recording):
    book_tops, tickers, gaps = replay(recording)
    assert gaps == 0
    compared = mismatched = 0
    for key, states in book_tops.items():
        for expected in tickers.get(key, []):
            # every book message of that exchange timestamp (a ticker can arrive
            # before the book notification of the same timestamp)
            for state in states:
                compared += 1
                if state != expected:
                    mismatched += 1
    book_messages_compared = sum(len(states) for key, states in book_tops.items() if key in tickers)
    print(
        f"ticker comparisons {compared}, book messages at ticker timestamps {book_messages_compared}, mismatched {mismatched}"
    )
    assert mismatched == 0
    assert compared > 30
