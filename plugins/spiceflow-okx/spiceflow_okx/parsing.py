"""OKX frames -> spiceflow events. Pure functions: the session adds the per-connection
bookkeeping (matching acknowledgements with requests, numbering old book messages
that carry no ``seqId``).

- ``pong`` (text) -> ``Heartbeat`` (the answer to our ``ping``);
- ``books`` ``snapshot`` -> ``BookSnapshot`` (``reset``: it restarts the chain),
  ``update`` -> ``BookDelta`` (``prev_sequence`` = ``prevSeqId``); a checksum of 0 is
  absent (None);
- ``bbo-tbt`` -> ``TopOfBook``; ``trades`` -> ``Trade`` per trade;
- ``subscribe`` / ``unsubscribe`` / ``error`` events -> :class:`ArgEvent` (the session
  turns them into ``SubscribeAck``); ``notice`` -> nothing (logged by the session);
- anything else -> ``ProtocolError``.
"""

from __future__ import annotations

import msgspec

from spiceflow_core.model import BookDelta, BookSnapshot, Event, Heartbeat, Level, TopOfBook, Trade
from spiceflow_core.plugin.contract import ProtocolError

from . import config, schemas

VENUE = config.VENUE


class ArgEvent(msgspec.Struct, frozen=True):
    """A ``subscribe``/``unsubscribe`` confirmation of one channel, or an ``error``."""

    event: str  # subscribe | unsubscribe | error
    channel: str | None  # ``books:BTC-USDT``; None for errors (OKX echoes no arg there)
    error: str | None = None


def channel_name(channel: str, inst_id: str) -> str:
    return f"{channel}{config.CHANNEL_SEPARATOR}{inst_id}"


def split_channel(name: str) -> tuple[str, str]:
    channel, sep, inst_id = name.partition(config.CHANNEL_SEPARATOR)
    if not sep or not channel or not inst_id:
        raise ValueError(f"not an OKX channel name: {name!r}")
    return channel, inst_id


def _levels(entries: list[schemas.BookLevel]) -> list[Level]:
    out: list[Level] = []
    for entry in entries:
        if len(entry) < 2:
            raise ProtocolError(f"book level with {len(entry)} fields")
        out.append((entry[0], entry[1]))
    return out


def _ts(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _book(inst_id: str, action: str | None, raw: msgspec.Raw, recv_ts_ns: int) -> list[Event]:
    out: list[Event] = []
    for d in schemas.book_decoder.decode(raw):
        checksum = d.checksum or None  # 0: OKX sent no checksum
        seq = d.seqId if d.seqId is not None else -1  # -1: the session numbers it
        if action == "snapshot":
            out.append(
                BookSnapshot(
                    venue=VENUE,
                    symbol=inst_id,
                    sequence=seq,
                    bids=_levels(d.bids),
                    asks=_levels(d.asks),
                    exchange_ts_ms=_ts(d.ts),
                    recv_ts_ns=recv_ts_ns,
                    checksum=checksum,
                    reset=True,
                )
            )
        elif action == "update":
            out.append(
                BookDelta(
                    venue=VENUE,
                    symbol=inst_id,
                    first_sequence=seq,
                    sequence=seq,
                    prev_sequence=d.prevSeqId if d.seqId is not None else None,
                    bids=_levels(d.bids),
                    asks=_levels(d.asks),
                    exchange_ts_ms=_ts(d.ts),
                    recv_ts_ns=recv_ts_ns,
                    checksum=checksum,
                )
            )
        else:
            raise ProtocolError(f"books message with action {action!r}")
    return out


def _side(entries: list[schemas.BookLevel]) -> tuple[str | None, str | None]:
    if not entries or len(entries[0]) < 2:
        return None, None
    return entries[0][0], entries[0][1]


def _top(inst_id: str, raw: msgspec.Raw, recv_ts_ns: int) -> list[Event]:
    out: list[Event] = []
    for d in schemas.bbo_decoder.decode(raw):
        bid_price, bid_size = _side(d.bids)
        ask_price, ask_size = _side(d.asks)
        out.append(
            TopOfBook(
                venue=VENUE,
                symbol=inst_id,
                bid_price=bid_price,
                bid_size=bid_size,
                ask_price=ask_price,
                ask_size=ask_size,
                sequence=d.seqId,
                exchange_ts_ms=_ts(d.ts),
                recv_ts_ns=recv_ts_ns,
            )
        )
    return out


def _trades(raw: msgspec.Raw, recv_ts_ns: int) -> list[Event]:
    return [
        Trade(
            venue=VENUE,
            symbol=t.instId,
            trade_id=t.tradeId,
            price=t.px,
            size=t.sz,
            side=t.side if t.side in ("buy", "sell") else "",  # type: ignore[arg-type]
            exchange_ts_ms=_ts(t.ts),
            recv_ts_ns=recv_ts_ns,
        )
        for t in schemas.trades_decoder.decode(raw)
    ]


def error_text(code: str | int | None, msg: str) -> str:
    return f"{code}: {msg}" if code is not None else msg


def parse_frame(frame: str | bytes, recv_ts_ns: int = 0) -> list[Event | ArgEvent]:
    if frame == config.PONG_FRAME or frame == config.PONG_FRAME.encode():
        return [Heartbeat(venue=VENUE, recv_ts_ns=recv_ts_ns)]
    try:
        env = schemas.envelope_decoder.decode(frame)
        if env.event is not None:
            if env.event in ("subscribe", "unsubscribe"):
                if env.arg is None:
                    raise ProtocolError(f"{env.event} event without arg")
                return [ArgEvent(env.event, channel_name(env.arg.channel, env.arg.instId))]
            if env.event == "error":
                return [ArgEvent("error", None, error_text(env.code, env.msg))]
            if env.event == "notice":
                return []  # e.g. 64008 "closed soon for a service upgrade": the reconnect heals it
            raise ProtocolError(f"unknown event {env.event!r}")
        if env.arg is None or not env.data:
            raise ProtocolError("unknown frame shape (neither event nor arg + data)")
        channel = env.arg.channel
        if channel in config.BOOK_CHANNELS:
            return list(_book(env.arg.instId, env.action, env.data, recv_ts_ns))
        if channel == config.TOP_CHANNEL:
            return list(_top(env.arg.instId, env.data, recv_ts_ns))
        if channel == config.TRADES_CHANNEL:
            return list(_trades(env.data, recv_ts_ns))
        return []  # a valid channel we do not consume
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        preview = frame[:120] if isinstance(frame, str) else frame[:120].decode("utf-8", "replace")
        raise ProtocolError(f"bad OKX frame ({exc}): {preview}") from None
