"""Deribit frames -> core events. Pure functions, no state: the session adds the
request bookkeeping. Prices are Decimals decoded from the JSON text and formatted
back as plain decimal strings, never floats."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec

from spiceflow_core.model import BookSnapshot, Event, Heartbeat, Level, SubscribeAck, TopOfBook, Trade
from spiceflow_core.plugin.contract import ProtocolError

from . import schemas
from .config import VENUE


def format_decimal(value: Decimal, *, normalize: bool = False) -> str:
    """A plain decimal string: ``Decimal('1E-5')`` -> ``'0.00001'`` (never an exponent).
    ``normalize`` drops trailing zeros (``40000.0`` -> ``'40000'``) for identifiers."""
    if not value.is_finite():
        raise ProtocolError(f"non-finite number {value}")
    if normalize:
        value = value.normalize()
        if value == 0:
            return "0"
    text = format(value, "f")
    return "0" if text in ("-0", "-0.0") else text


def levels(entries: list[schemas.BookEntry]) -> list[Level]:
    """``[action, price, amount]`` -> (price, size); ``delete`` becomes size ``"0"``."""
    out: list[Level] = []
    for action, price, amount in entries:
        out.append((format_decimal(price), "0" if action == "delete" else format_decimal(amount)))
    return out


def text_levels(entries: list[schemas.BookEntryText]) -> list[Level]:
    """Like :func:`levels` for entries decoded by ``schemas.book_text_decoder``: numbers
    are their exact JSON text (or an ``int``, exact too); the book validates each one
    strictly, so anything else in a number slot is a malformed delta (resync)."""
    out: list[Level] = []  # (a loop: cheaper than a comprehension for a few entries on 3.11)
    for action, price, amount in entries:
        out.append((price, "0") if action == "delete" else (price, amount))
    return out


def _book_events(channel: str, book: schemas.BookChange, recv_ts_ns: int) -> list[Event]:
    if book.type == "snapshot":
        return [
            BookSnapshot(
                venue=VENUE,
                symbol=book.symbol,
                sequence=book.sequence,
                bids=text_levels(book.bids),
                asks=text_levels(book.asks),
                exchange_ts_ms=book.exchange_ts_ms,
                recv_ts_ns=recv_ts_ns,
                depth_limit=None,
            )
        ]
    if book.prev_sequence is None:
        raise ProtocolError(f"book change without prev_change_id on {channel}")
    book.first_sequence = book.sequence
    # the entries become the pairs of the core's BookDelta (see schemas.BookChange)
    book.bids = text_levels(book.bids)  # type: ignore[assignment]
    book.asks = text_levels(book.asks)  # type: ignore[assignment]
    book.recv_ts_ns = recv_ts_ns
    return [book]


def _side(price: Decimal | None, amount: Decimal | None) -> tuple[str | None, str | None]:
    # Deribit reports an empty side as price 0 / amount 0 (older API) or null (newer)
    if price is None or amount is None or amount == 0:
        return None, None
    return format_decimal(price), format_decimal(amount)


def error_text(error: schemas.RpcError) -> str:
    text = f"{error.code}: {error.message}"
    if error.data is not None:
        text += f" ({msgspec.json.encode(error.data).decode()})"
    return text


def parse_notification(channel: str, data: msgspec.Raw, recv_ts_ns: int) -> list[Event]:
    kind = channel.split(".", 1)[0]
    if kind == "book":
        return _book_events(channel, schemas.book_text_decoder.decode(data), recv_ts_ns)
    if kind == "ticker":
        t = schemas.ticker_decoder.decode(data)
        bid_price, bid_size = _side(t.best_bid_price, t.best_bid_amount)
        ask_price, ask_size = _side(t.best_ask_price, t.best_ask_amount)
        return [
            TopOfBook(
                venue=VENUE,
                symbol=t.instrument_name,
                bid_price=bid_price,
                bid_size=bid_size,
                ask_price=ask_price,
                ask_size=ask_size,
                exchange_ts_ms=t.timestamp,
                recv_ts_ns=recv_ts_ns,
            )
        ]
    if kind == "trades":
        return [
            Trade(
                venue=VENUE,
                symbol=tr.instrument_name,
                trade_id=tr.trade_id,
                price=format_decimal(tr.price),
                size=format_decimal(tr.amount),
                side=tr.direction,
                exchange_ts_ms=tr.timestamp,
                recv_ts_ns=recv_ts_ns,
            )
            for tr in schemas.trades_decoder.decode(data)
        ]
    raise ProtocolError(f"notification on unexpected channel {channel!r}")


_book_notification_decode = schemas.book_notification_decoder.decode


def parse_frame(frame: str | bytes, recv_ts_ns: int, *, test_reply: Callable[[], str] | None = None) -> list[Event]:
    """Decode one frame. ``test_reply`` builds the ``public/test`` frame put in the
    Heartbeat of a ``test_request`` (the session supplies it, with a fresh id)."""
    # Hot path: book notifications are most of the traffic. One decode of the whole frame
    # (instead of envelope -> params -> data, three decoders and two copies); anything
    # else, or a frame this strict shape rejects, takes the general path, which reports it.
    if frame.__class__ is str and frame.find('"channel":"book.', 0, 128) >= 0:
        try:
            note = _book_notification_decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            if note.method == "subscription":
                return _book_events(note.params.channel, note.params.data, recv_ts_ns)
    try:
        env = schemas.envelope_decoder.decode(frame)
        if env.method == "subscription":
            if not env.params:
                raise ProtocolError("subscription notification without params")
            params = schemas.subscription_decoder.decode(env.params)
            return parse_notification(params.channel, params.data, recv_ts_ns)
        if env.method == "heartbeat":
            hb = schemas.heartbeat_decoder.decode(env.params) if env.params else None
            if hb is None:
                raise ProtocolError("heartbeat without params")
            if hb.type == "test_request":
                reply = test_reply() if test_reply is not None else None
                return [Heartbeat(venue=VENUE, reply=reply, recv_ts_ns=recv_ts_ns)]
            return [Heartbeat(venue=VENUE, reply=None, recv_ts_ns=recv_ts_ns)]
        if env.id is not None and env.method is None:
            if env.error is not None:
                return [SubscribeAck(venue=VENUE, request_id=env.id, error=error_text(env.error))]
            if not env.result:
                raise ProtocolError(f"response {env.id} with neither result nor error")
            try:
                channels = schemas.channels_decoder.decode(env.result)
            except msgspec.ValidationError:
                channels = []  # "ok", {"version": ...}, auth tokens: not a channel list
            return [SubscribeAck(venue=VENUE, request_id=env.id, channels=channels)]
        if env.error is not None:  # an error to a request Deribit could not even read
            raise ProtocolError(f"JSON-RPC error without request id: {error_text(env.error)}")
        raise ProtocolError(f"unknown frame shape (method={env.method!r}, id={env.id!r})")
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(f"bad Deribit frame: {exc}") from None
