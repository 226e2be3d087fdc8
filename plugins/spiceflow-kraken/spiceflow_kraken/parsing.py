"""Kraken v2 frames -> spiceflow events. Pure functions: the session keeps the
per-connection state (request ids, acknowledgements) and passes the venue's
``Sequencer``.

- ``book`` snapshot -> ``BookSnapshot`` (``reset=True``: a snapshot on the stream
  replaces the book at once), update -> ``BookDelta``; both carry Kraken's ``checksum``;
- ``ticker`` -> ``TopOfBook``; ``trade`` -> one ``Trade`` per entry;
- ``heartbeat`` channel and the ``pong`` answer -> ``Heartbeat``; ``status`` -> nothing;
- a subscribe / unsubscribe answer -> ``Answer`` (one per symbol; the session turns them
  into one ``SubscribeAck`` per request);
- anything else (invalid JSON, unknown shape, a missing field, a number that is not a
  number) -> ``ProtocolError``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from spiceflow_core.plugin import (
    BookDelta,
    BookSnapshot,
    Event,
    Heartbeat,
    Level,
    ProtocolError,
    TopOfBook,
    Trade,
)

from . import schemas
from .config import VENUE
from .sync import Sequencer, timestamp_us


class Answer(msgspec.Struct, kw_only=True):
    """Kraken's answer to one symbol of a subscribe / unsubscribe request."""

    method: str
    req_id: int | None
    channel: str | None
    symbol: str | None
    error: str | None = None


def number(value: Any) -> str:
    """A price or quantity as its exact decimal text (see schemas: never a float)."""
    cls = value.__class__
    if cls is str:
        return value
    if cls is int:
        return str(value)
    raise ProtocolError(f"not a number: {value!r}")


def _levels(entries: list[schemas.PriceLevel]) -> list[Level]:
    out: list[Level] = []
    for entry in entries:
        out.append((number(entry.price), number(entry.qty)))
    return out


def _book(frame: schemas.BookFrame, recv_ts_ns: int, sequencer: Sequencer) -> list[Event]:
    out: list[Event] = []
    snapshot = frame.type == "snapshot"
    if not snapshot and frame.type != "update":
        raise ProtocolError(f"book frame of unknown type {frame.type!r}")
    for book in frame.data:
        ts_us = timestamp_us(book.timestamp) if book.timestamp else None
        ts_ms = ts_us // 1000 if ts_us is not None else None
        if snapshot:
            out.append(
                BookSnapshot(
                    venue=VENUE,
                    symbol=book.symbol,
                    sequence=sequencer.snapshot(book.symbol, ts_us),
                    bids=_levels(book.bids),
                    asks=_levels(book.asks),
                    exchange_ts_ms=ts_ms,
                    recv_ts_ns=recv_ts_ns,
                    checksum=book.checksum,
                    reset=True,
                )
            )
        else:
            seq = sequencer.update(book.symbol, ts_us)
            out.append(
                BookDelta(
                    venue=VENUE,
                    symbol=book.symbol,
                    first_sequence=seq,
                    sequence=seq,
                    bids=_levels(book.bids),
                    asks=_levels(book.asks),
                    exchange_ts_ms=ts_ms,
                    recv_ts_ns=recv_ts_ns,
                    checksum=book.checksum,
                )
            )
    return out


def _side(price: Any, qty: Any) -> tuple[str | None, str | None]:
    if price is None or qty is None:
        return None, None
    return number(price), number(qty)


def _channel(env: schemas.Envelope, recv_ts_ns: int) -> list[Event]:
    channel = env.channel
    if channel == "heartbeat":
        return [Heartbeat(venue=VENUE, recv_ts_ns=recv_ts_ns)]
    if channel == "ticker":
        out: list[Event] = []
        for t in schemas.ticker_decoder.decode(env.data):
            bid_price, bid_size = _side(t.bid, t.bid_qty)
            ask_price, ask_size = _side(t.ask, t.ask_qty)
            out.append(
                TopOfBook(
                    venue=VENUE,
                    symbol=t.symbol,
                    bid_price=bid_price,
                    bid_size=bid_size,
                    ask_price=ask_price,
                    ask_size=ask_size,
                    recv_ts_ns=recv_ts_ns,
                )
            )
        return out
    if channel == "trade":
        trades: list[Event] = []
        for tr in schemas.trades_decoder.decode(env.data):
            if tr.side not in ("buy", "sell"):
                raise ProtocolError(f"trade with side {tr.side!r}")
            trades.append(
                Trade(
                    venue=VENUE,
                    symbol=tr.symbol,
                    trade_id=str(tr.trade_id),
                    price=number(tr.price),
                    size=number(tr.qty),
                    side=tr.side,  # type: ignore[arg-type]  # checked above
                    exchange_ts_ms=timestamp_us(tr.timestamp) // 1000,
                    recv_ts_ns=recv_ts_ns,
                )
            )
        return trades
    if channel == "status":
        return []  # system status: a valid channel we do not consume
    raise ProtocolError(f"frame on unknown channel {channel!r}")


def _answer(env: schemas.Envelope, recv_ts_ns: int) -> list[Event | Answer]:
    method = env.method
    if method == "pong":
        return [Heartbeat(venue=VENUE, recv_ts_ns=recv_ts_ns)]
    if method not in ("subscribe", "unsubscribe"):
        raise ProtocolError(f"answer to unknown method {method!r}")
    if env.success is None:
        raise ProtocolError(f"{method} answer without success")
    channel: str | None = None
    symbol = env.symbol
    if env.result:
        result = schemas.answer_decoder.decode(env.result)
        channel, symbol = result.channel, result.symbol or symbol
    error = None if env.success else (env.error or "refused without a reason")
    return [Answer(method=method, req_id=env.req_id, channel=channel, symbol=symbol, error=error)]


def parse_frame(frame: str | bytes, recv_ts_ns: int, sequencer: Sequencer) -> list[Event | Answer]:
    """Decode one frame (see the module docstring)."""
    try:
        # Hot path: book frames are most of the traffic; one decode of the whole frame.
        head = frame[:24]
        if head.startswith('{"channel":"book"') if isinstance(head, str) else head.startswith(b'{"channel":"book"'):
            return list(_book(schemas.book_decoder.decode(frame), recv_ts_ns, sequencer))
        env = schemas.envelope_decoder.decode(frame)
        if env.channel is not None:
            if env.channel == "book":
                return list(_book(schemas.book_decoder.decode(frame), recv_ts_ns, sequencer))
            return list(_channel(env, recv_ts_ns))
        if env.method is not None:
            return _answer(env, recv_ts_ns)
        raise ProtocolError("unknown frame shape (neither channel nor method)")
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:  # ValueError: a bad timestamp
        raise ProtocolError(f"bad Kraken frame: {exc}: {_preview(frame)}") from None


def _preview(frame: str | bytes, n: int = 160) -> str:
    text = frame.decode("utf-8", "replace") if isinstance(frame, (bytes, bytearray)) else frame
    return text if len(text) <= n else text[:n] + "..."
