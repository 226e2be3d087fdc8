"""Binance frames -> spiceflow events.

Valid streams we do not consume (``kline_1m``, ``markPrice``, ``24hrTicker`` ...) decode
to no events: they are not errors. Invalid JSON, a shape Binance never sends, or a known
stream whose payload misses required fields raise :class:`ProtocolError`.
"""

from __future__ import annotations

import msgspec

from spiceflow_core.model import BookDelta, Event, SubscribeAck, TopOfBook, Trade
from spiceflow_core.plugin.contract import ProtocolError

from . import schemas

#: request id used for error answers Binance sends without an id (e.g. invalid JSON)
NO_REQUEST_ID = -1


def channel_of(stream: str) -> str:
    """``btcusdt@depth@100ms`` -> ``depth@100ms``; ``btcusdt@kline_1m`` -> ``kline_1m``."""
    _, _, channel = stream.partition("@")
    return channel


_depth_frame_decode = schemas.depth_frame_decoder.decode


def parse_frame(venue: str, frame: str | bytes, recv_ts_ns: int = 0) -> list[Event]:
    # Hot path: diff-depth frames are most of the traffic. One decode straight into
    # the typed struct (instead of frame -> Raw -> payload) saves a decoder call and a
    # copy per frame. Anything unexpected (partial depth ``depth5``, a malformed or
    # truncated frame) fails here and takes the general path, which reports it.
    if frame.__class__ is str and "@depth@" in frame[:64]:
        try:
            depth = _depth_frame_decode(frame)
        except msgspec.DecodeError:
            pass
        else:
            return [_stamped(depth.data, venue, recv_ts_ns)]
    try:
        top = schemas.frame_decoder.decode(frame)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"{venue}: undecodable frame ({exc}): {_preview(frame)}") from None

    if top.stream is not None:
        if top.data is msgspec.UNSET:
            raise ProtocolError(f"{venue}: stream frame without data: {_preview(frame)}")
        return _payload(venue, channel_of(top.stream), None, top.data, recv_ts_ns, frame)

    if top.error is not None or top.code is not None:
        code = top.error.code if top.error is not None else top.code
        msg = top.error.msg if top.error is not None else (top.msg or "")
        request_id = top.id if isinstance(top.id, int) else NO_REQUEST_ID
        return [SubscribeAck(venue=venue, request_id=request_id, error=f"code {code}: {msg}")]

    if top.result is not msgspec.UNSET:
        if not isinstance(top.id, int):
            raise ProtocolError(f"{venue}: answer with non-integer id: {_preview(frame)}")
        value = msgspec.json.decode(top.result)  # already validated JSON
        # null for SUBSCRIBE/UNSUBSCRIBE, the stream list for LIST_SUBSCRIPTIONS
        channels = [str(v) for v in value] if isinstance(value, list) else []
        return [SubscribeAck(venue=venue, request_id=top.id, channels=channels)]

    if top.e is not None:  # a raw (non-combined) stream payload
        return _payload(venue, None, top.e, msgspec.Raw(_as_bytes(frame)), recv_ts_ns, frame)

    raise ProtocolError(f"{venue}: unknown frame shape: {_preview(frame)}")


def _payload(
    venue: str, channel: str | None, event: str | None, data: msgspec.Raw, recv_ts_ns: int, frame: str | bytes
) -> list[Event]:
    try:
        if channel is not None:
            if channel.startswith("depth"):
                if channel[5:6].isdigit():  # partial book depth5/10/20: not consumed
                    return []
                return [_stamped(schemas.depth_decoder.decode(data), venue, recv_ts_ns)]
            if channel == "bookTicker":
                return [_top(venue, schemas.book_ticker_decoder.decode(data), recv_ts_ns)]
            if channel == "trade":
                return [_trade(venue, schemas.trade_decoder.decode(data), recv_ts_ns)]
            if channel == "aggTrade":
                return [_agg_trade(venue, schemas.agg_trade_decoder.decode(data), recv_ts_ns)]
            return []  # a valid stream we do not consume (kline_1m, markPrice, ...)
        if event == "depthUpdate":
            return [_stamped(schemas.depth_decoder.decode(data), venue, recv_ts_ns)]
        if event == "bookTicker":
            return [_top(venue, schemas.book_ticker_decoder.decode(data), recv_ts_ns)]
        if event == "trade":
            return [_trade(venue, schemas.trade_decoder.decode(data), recv_ts_ns)]
        if event == "aggTrade":
            return [_agg_trade(venue, schemas.agg_trade_decoder.decode(data), recv_ts_ns)]
        return []
    except msgspec.DecodeError as exc:  # includes ValidationError (missing/mistyped field)
        raise ProtocolError(f"{venue}: bad {channel or event} payload ({exc}): {_preview(frame)}") from None


def _stamped(delta: schemas.DepthDelta, venue: str, recv_ts_ns: int) -> BookDelta:
    delta.venue = venue
    delta.recv_ts_ns = recv_ts_ns
    return delta


def _top(venue: str, t: schemas.BookTicker, recv_ts_ns: int) -> TopOfBook:
    return TopOfBook(
        venue=venue,
        symbol=t.s,
        bid_price=t.b,
        bid_size=t.B,
        ask_price=t.a,
        ask_size=t.A,
        sequence=t.u,
        exchange_ts_ms=t.E,
        recv_ts_ns=recv_ts_ns,
    )


def _trade(venue: str, t: schemas.TradeEvent, recv_ts_ns: int) -> Trade:
    return Trade(
        venue=venue,
        symbol=t.s,
        trade_id=str(t.t),
        price=t.p,
        size=t.q,
        side="sell" if t.m else "buy",
        exchange_ts_ms=t.T,
        recv_ts_ns=recv_ts_ns,
    )


def _agg_trade(venue: str, t: schemas.AggTradeEvent, recv_ts_ns: int) -> Trade:
    return Trade(
        venue=venue,
        symbol=t.s,
        trade_id=str(t.a),
        price=t.p,
        size=t.q,
        side="sell" if t.m else "buy",
        exchange_ts_ms=t.T,
        recv_ts_ns=recv_ts_ns,
    )


def _as_bytes(frame: str | bytes) -> bytes:
    return frame.encode() if isinstance(frame, str) else frame


def _preview(frame: str | bytes, n: int = 160) -> str:
    text = frame.decode("utf-8", "replace") if isinstance(frame, (bytes, bytearray)) else frame
    return text if len(text) <= n else text[:n] + "..."
