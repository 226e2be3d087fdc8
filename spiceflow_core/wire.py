"""The broadcast wire schema (version 1).

Every ZeroMQ message is two frames: ``topic`` (UTF-8, ``{channel}.{venue}.{symbol}``,
e.g. ``book.binance.BTCUSDT``) and a msgpack body that decodes to one of the tagged
structs below (tag field ``type``). Consumers filter by topic prefix. ``topic_seq``
counts messages per topic from 1, so a consumer that sees a jump knows it missed some.
Prices and sizes are decimal strings exactly as the exchange sent them.

Batches: a ZeroMQ message may also be ``[topic, body, body, ...]`` -- several bodies
of that same topic in ``topic_seq`` order (``Publisher.publish_many``). Consumers
decode every frame after the topic; ``spiceflow_core.client`` does.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .model import Level

SCHEMA_VERSION = 1


class _Wire(msgspec.Struct, kw_only=True, tag_field="type"):
    v: int = SCHEMA_VERSION
    venue: str
    symbol: str
    instrument: str = ""  # normalized id, e.g. binance.spot.BTC.USDT
    topic_seq: int = 0
    publish_ts_ns: int = 0


class BookMessage(_Wire, tag="book"):
    sequence: int
    bids: list[Level]  # best first, at most the configured depth
    asks: list[Level]
    exchange_ts_ms: int | None = None
    recv_ts_ns: int = 0


class TradeMessage(_Wire, tag="trade"):
    trade_id: str
    price: str
    size: str
    side: str = ""
    exchange_ts_ms: int | None = None
    recv_ts_ns: int = 0


class TopMessage(_Wire, tag="top"):
    bid_price: str | None
    bid_size: str | None
    ask_price: str | None
    ask_size: str | None
    sequence: int | None = None
    exchange_ts_ms: int | None = None
    recv_ts_ns: int = 0


class StatusMessage(_Wire, tag="status"):
    state: Literal["pending", "synced", "stale", "resyncing", "unsubscribed", "stats"]
    reason: str = ""
    counters: dict[str, int] = {}


WireMessage = BookMessage | TradeMessage | TopMessage | StatusMessage

CHANNEL_OF = {BookMessage: "book", TradeMessage: "trade", TopMessage: "top", StatusMessage: "status"}


def topic_for(channel: str, venue: str, symbol: str) -> str:
    return f"{channel}.{venue}.{symbol}"


encoder = msgspec.msgpack.Encoder()
decoder = msgspec.msgpack.Decoder(WireMessage)
