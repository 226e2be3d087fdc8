"""Bybit v5 public frames -> spiceflow events. Pure functions; the session matches
answers with its requests.

- ``orderbook.{depth}.{symbol}`` (depth > 1): ``snapshot`` -> ``BookSnapshot`` with
  ``reset=True`` (Bybit: "If you receive a new snapshot message, you will have to reset
  your local orderbook"; after a service restart it comes with ``u = 1``), ``delta`` ->
  ``BookDelta`` whose id range is just ``u`` (``u`` is continuous per topic);
- ``orderbook.1.{symbol}``: the top of book (level-1 pushes are snapshots only);
- ``publicTrade.{symbol}``: one ``Trade`` per entry;
- ``{"success", "ret_msg", "op", "req_id"}``: a :class:`Reply` (the session turns it
  into a ``SubscribeAck`` or, for ``op: ping``, a ``Heartbeat``); ``{"op": "pong"}``
  (option/spread dialect) is a ``Heartbeat`` too;
- anything else raises ``ProtocolError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from spiceflow_core.plugin import BookDelta, BookSnapshot, Event, Heartbeat, ProtocolError, TopOfBook, Trade

from . import config, schemas

_BOOK_PREFIX = '"topic":"orderbook.'


@dataclass(frozen=True)
class Reply:
    """The answer to one of our requests (``op`` is the request's: subscribe,
    unsubscribe, ping); ``req_id`` as echoed ("" or None when Bybit echoes none)."""

    op: str
    req_id: str | None
    success: bool
    ret_msg: str


def _book(venue: str, frame: schemas.BookFrame, recv_ts_ns: int) -> Event:
    depth_text = frame.topic.split(".", 2)[1]
    data = frame.data
    if depth_text == "1":
        bid = data.b[0] if data.b else (None, None)
        ask = data.a[0] if data.a else (None, None)
        return TopOfBook(
            venue=venue,
            symbol=data.s,
            bid_price=bid[0],
            bid_size=bid[1],
            ask_price=ask[0],
            ask_size=ask[1],
            sequence=data.u,
            exchange_ts_ms=frame.ts,
            recv_ts_ns=recv_ts_ns,
        )
    if frame.type == "snapshot":
        return BookSnapshot(
            venue=venue,
            symbol=data.s,
            sequence=data.u,
            bids=data.b,
            asks=data.a,
            exchange_ts_ms=frame.ts,
            recv_ts_ns=recv_ts_ns,
            # complete at the subscribed depth: the venue keeps that many levels and so
            # does the local book (Venue.maintained_depth), no truncation boundary
            depth_limit=None,
            reset=True,
        )
    return BookDelta(
        venue=venue,
        symbol=data.s,
        first_sequence=data.u,
        sequence=data.u,
        bids=data.b,
        asks=data.a,
        exchange_ts_ms=frame.ts,
        recv_ts_ns=recv_ts_ns,
    )


def _trades(venue: str, raw: str | bytes, recv_ts_ns: int) -> list[Event]:
    frame = schemas.trade_frame_decoder.decode(raw)
    return [
        Trade(
            venue=venue,
            symbol=t.s,
            trade_id=t.i,
            price=t.p,
            size=t.v,
            side="buy" if t.S == "Buy" else "sell",
            exchange_ts_ms=t.T,
            recv_ts_ns=recv_ts_ns,
        )
        for t in frame.data
    ]


def parse_frame(venue: str, frame: str | bytes, recv_ts_ns: int = 0) -> list[Event] | Reply:
    """Decode one frame: events, or the :class:`Reply` to a request."""
    try:
        # hot path: book frames are most of the traffic; one decode of the whole frame
        text = frame if isinstance(frame, str) else None
        if text is not None and _BOOK_PREFIX in text[:24]:
            return [_book(venue, schemas.book_frame_decoder.decode(text), recv_ts_ns)]
        top = schemas.frame_decoder.decode(frame)
        if top.topic is not None:
            kind = top.topic.split(".", 1)[0]
            if kind == config.BOOK_TOPIC:
                return [_book(venue, schemas.book_frame_decoder.decode(frame), recv_ts_ns)]
            if kind == config.TRADE_TOPIC:
                return _trades(venue, frame, recv_ts_ns)
            return []  # a valid topic we do not consume
        if top.success is not None and top.op is not None:
            return Reply(op=top.op, req_id=top.req_id, success=top.success, ret_msg=top.ret_msg)
        if top.op == "pong":
            return [Heartbeat(venue=venue, recv_ts_ns=recv_ts_ns)]
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(f"{venue}: bad frame ({exc}): {_preview(frame)}") from None
    except IndexError:
        raise ProtocolError(f"{venue}: bad topic: {_preview(frame)}") from None
    raise ProtocolError(f"{venue}: unknown frame shape: {_preview(frame)}")


def _preview(frame: str | bytes, n: int = 160) -> str:
    text = frame.decode("utf-8", "replace") if isinstance(frame, (bytes, bytearray)) else frame
    return text if len(text) <= n else text[:n] + "..."
