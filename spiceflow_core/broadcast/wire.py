"""The broadcast wire schema (version 1).

Every ZeroMQ message is two frames: ``topic`` (UTF-8, ``{channel}.{venue}.{symbol}``,
e.g. ``book.binance.BTCUSDT``) and a msgpack body that decodes to one of the tagged
structs below (tag field ``type``). Consumers filter by topic prefix. ``topic_seq``
counts messages per topic from 1, so a consumer that sees a jump knows it missed some.
Prices and sizes are decimal strings exactly as the exchange sent them.

Every message starts with the envelope ``model.Broadcast`` (``v``, ``venue``, ``symbol``,
``instrument``, ``topic_seq``, ``publish_ts_ns``). Trades and tops are the pipeline's own
events (``model.Trade``, ``model.TopOfBook``), broadcast as they are; a message's ``type``
tag is its channel (``model.FEED_CHANNEL`` names the channel of each feed).

Batches: a ZeroMQ message may also be ``[topic, body, body, ...]`` -- several bodies
of that same topic in ``topic_seq`` order (``Publisher.publish_many``). Consumers
decode every frame after the topic; ``spiceflow_core.broadcast.subscriber`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, get_args

import msgspec

from spiceflow_core.model import FEED_CHANNEL, SCHEMA_VERSION, Broadcast, FeedState, TopOfBook, Trade

__all__ = [
    "CHANNEL_OF",
    "SCHEMA_VERSION",
    "BookLevel",
    "BookMessage",
    "StatusMessage",
    "StatusState",
    "TopMessage",
    "TradeMessage",
    "WireMessage",
    "decoder",
    "encoder",
    "topic_for",
]


class BookLevel(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One price level as decoded by consumers: on the wire it is the array
    ``[price, size]`` (publishers send plain tuples). It unpacks and indexes like a
    tuple (``price, size = level``, ``level[0]``). Decoding levels into these untracked
    structs instead of tuples keeps the garbage collector out of the consumer's hot
    path: about 4x faster decoding of a 25-level book (see benchmarks/bench_publish.py)."""

    price: str
    size: str

    def __iter__(self) -> Iterator[str]:
        return iter((self.price, self.size))

    def __getitem__(self, index: int) -> str:
        return (self.price, self.size)[index]

    def __len__(self) -> int:
        return 2


class BookMessage(Broadcast, tag=FEED_CHANNEL["book"], gc=False):
    sequence: int
    bids: list[BookLevel]  # best first, at most the configured depth; publishers may pass tuples
    asks: list[BookLevel]
    exchange_ts_ms: int | None = None
    recv_ts_ns: int = 0
    #: the venue's own checksum matched this book (OKX, Kraken); False when the venue
    #: sent none for this update (Binance, Deribit never do)
    checksum_verified: bool = False


#: a trade goes on the wire as the pipeline's event, field for field
TradeMessage = Trade
#: the exchange's top of book goes on the wire as the pipeline's event, field for field
TopMessage = TopOfBook


#: a feed's state on ``status.<venue>.<symbol>``; ``"stats"`` on ``status.<venue>.*``
StatusState = Literal[FeedState, "stats"]


class StatusMessage(Broadcast, tag="status"):
    state: StatusState
    reason: str = ""
    counters: dict[str, int] = msgspec.field(default_factory=dict)


WireMessage = BookMessage | TradeMessage | TopMessage | StatusMessage

#: message type -> channel: the ``type`` tag of each message is its topic's channel
CHANNEL_OF: dict[Any, str] = {cls: cls.__struct_config__.tag for cls in get_args(WireMessage)}


def topic_for(channel: str, venue: str, symbol: str) -> str:
    return f"{channel}.{venue}.{symbol}"


encoder = msgspec.msgpack.Encoder()
decoder = msgspec.msgpack.Decoder(WireMessage)
