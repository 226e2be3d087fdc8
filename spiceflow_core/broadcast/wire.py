"""The broadcast wire schema (version 1).

Every ZeroMQ message is two frames: ``topic`` (UTF-8, ``{channel}.{venue}.{symbol}``,
e.g. ``book.binance.BTCUSDT``) and a msgpack body that decodes to one of the tagged
structs below (tag field ``type``). Consumers filter by topic prefix. ``topic_seq``
counts messages per topic from 1, so a consumer that sees a jump knows it missed some.
Prices and sizes are decimal strings exactly as the exchange sent them.

Batches: a ZeroMQ message may also be ``[topic, body, body, ...]`` -- several bodies
of that same topic in ``topic_seq`` order (``Publisher.publish_many``). Consumers
decode every frame after the topic; ``spiceflow_core.broadcast.subscriber`` does.
"""

from __future__ import annotations

from typing import Literal

import msgspec

SCHEMA_VERSION = 1


class BookLevel(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One price level as decoded by consumers: on the wire it is the array
    ``[price, size]`` (publishers send plain tuples). It unpacks and indexes like a
    tuple (``price, size = level``, ``level[0]``). Decoding levels into these untracked
    structs instead of tuples keeps the garbage collector out of the consumer's hot
    path: about 4x faster decoding of a 25-level book (see benchmarks/bench_publish.py)."""

    price: str
    size: str

    def __iter__(self):
        return iter((self.price, self.size))

    def __getitem__(self, index):
        return (self.price, self.size)[index]

    def __len__(self) -> int:
        return 2


class _Wire(msgspec.Struct, kw_only=True, tag_field="type"):
    v: int = SCHEMA_VERSION
    venue: str
    symbol: str
    instrument: str = ""  # normalized id, e.g. binance.spot.BTC.USDT
    topic_seq: int = 0
    publish_ts_ns: int = 0


class BookMessage(_Wire, tag="book", gc=False):
    sequence: int
    bids: list[BookLevel]  # best first, at most the configured depth; publishers may pass tuples
    asks: list[BookLevel]
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
