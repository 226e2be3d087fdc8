"""Wire messages -> Arrow tables of the schema (``schema``): one function per feed,
each taking the messages of one file's partition in publish order.

Prices and sizes go from the exchange's decimal strings to ``decimal128(38, 18)`` by
Arrow's cast, which refuses (never rounds) a value it cannot hold exactly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from spiceflow_core.broadcast.wire import BookMessage, TopMessage, TradeMessage, WireMessage

from .schema import DECIMAL, LEVELS, schema_for

__all__ = ["TABLE_BUILDERS", "InexactValue", "book_table", "top_table", "trade_table"]

#: a book side as the wire has it, before the cast to decimals
_TEXT_LEVELS = pa.list_(pa.struct([("price", pa.string()), ("size", pa.string())]))


class InexactValue(ValueError):
    """A price or size that decimal128(38, 18) cannot hold exactly."""


def _first_inexact(values: Sequence[str | None]) -> str:
    for value in values:
        if value is None:
            continue
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value
        exponent = number.as_tuple().exponent
        if not number.is_finite() or (isinstance(exponent, int) and exponent < -18) or number.adjusted() >= 20:
            return value
    return "?"


def _decimals(values: list[str | None]) -> pa.Array:
    try:
        return pa.array(values, pa.string()).cast(DECIMAL)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InexactValue(f"{_first_inexact(values)!r} is not exact in decimal(38, 18): {exc}") from None


def _levels(sides: Sequence[Sequence[Any]], depth: int) -> pa.Array:
    """One list of (price, size) structs per book side, its first ``depth`` levels:
    converted as strings by Arrow in one call, then cast to decimals."""
    tops = [levels[:depth] for levels in sides]
    try:
        text = pa.array(tops, _TEXT_LEVELS)
    except (pa.ArrowTypeError, TypeError):
        # decoded wire levels (BookLevel structs) rather than the publisher's tuples
        tops = [[tuple(level) for level in top] for top in tops]
        text = pa.array(tops, _TEXT_LEVELS)
    try:
        return text.cast(LEVELS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        values = [value for top in tops for level in top for value in level]
        raise InexactValue(f"{_first_inexact(values)!r} is not exact in decimal(38, 18): {exc}") from None


def _times(messages: Sequence[Any], schema: pa.Schema) -> list[pa.Array]:
    # 0 means "not known" on the wire (a replay publishes nothing, so publish_ts_ns = 0)
    return [
        pa.array([m.exchange_ts_ms for m in messages], schema.field("exchange_ts").type),
        pa.array([m.recv_ts_ns or None for m in messages], schema.field("recv_ts").type),
        pa.array([m.publish_ts_ns or None for m in messages], schema.field("publish_ts").type),
        pa.array([m.epoch for m in messages], pa.int64()),
    ]


def _envelope(messages: Sequence[Any]) -> list[pa.Array]:
    return [
        pa.array([m.symbol for m in messages], pa.string()),
        pa.array([m.instrument or m.symbol for m in messages], pa.string()),
        pa.array([m.topic_seq for m in messages], pa.int64()),
    ]


def book_table(messages: Sequence[BookMessage], depth: int) -> pa.Table:
    schema = schema_for("book", depth)
    bids = [m.bids for m in messages]
    asks = [m.asks for m in messages]
    columns = [
        *_envelope(messages),
        pa.array([m.sequence for m in messages], pa.int64()),
        _decimals([b[0][0] if b else None for b in bids]),
        _decimals([b[0][1] if b else None for b in bids]),
        _decimals([a[0][0] if a else None for a in asks]),
        _decimals([a[0][1] if a else None for a in asks]),
        _levels(bids, depth),
        _levels(asks, depth),
        pa.array([m.checksum_verified for m in messages], pa.bool_()),
        *_times(messages, schema),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def trade_table(messages: Sequence[TradeMessage], depth: int) -> pa.Table:
    schema = schema_for("trade", depth)
    columns = [
        *_envelope(messages),
        pa.array([m.trade_id for m in messages], pa.string()),
        _decimals([m.price for m in messages]),
        _decimals([m.size for m in messages]),
        pa.array([m.side for m in messages], pa.string()),
        *_times(messages, schema),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def top_table(messages: Sequence[TopMessage], depth: int) -> pa.Table:
    schema = schema_for("top", depth)
    columns = [
        *_envelope(messages),
        pa.array([m.sequence for m in messages], pa.int64()),
        _decimals([m.bid_price for m in messages]),
        _decimals([m.bid_size for m in messages]),
        _decimals([m.ask_price for m in messages]),
        _decimals([m.ask_size for m in messages]),
        *_times(messages, schema),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


#: wire channel -> its table builder (messages of that channel, book depth)
TABLE_BUILDERS: dict[str, Callable[[Sequence[Any], int], pa.Table]] = {
    "book": book_table,
    "trade": trade_table,
    "top": top_table,
}


def channel_of(message: WireMessage) -> str:
    """The message's channel (its ``type`` tag)."""
    return type(message).__struct_config__.tag  # type: ignore[return-value]
