"""The two JetStream streams the sink keeps (``jetstream = true``).

* books: ``{prefix}book.>``, ``max_msgs_per_subject = 1`` -- the stream holds the last
  book of every instrument, so a consumer created with "deliver last per subject" gets
  the current book of each at once, then the live updates.
* trades: ``{prefix}trade.>``, kept by ``max_age`` and ``max_bytes`` (oldest dropped).

The sink publishes with core NATS publish; the streams capture the subjects on the
server. There is no per-message acknowledgement round trip: what the stream stored
shows in its own counters, and a consumer detects a loss by ``topic_seq``.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from .config import NatsOptions
from .subjects import BOOK_CHANNEL, TRADE_CHANNEL

__all__ = ["books_subject", "ensure_streams", "stream_configs"]

# JetStream's error code for "stream name already in use with a different configuration"
_STREAM_EXISTS = 10058


def books_subject(prefix: str) -> str:
    return f"{prefix}{BOOK_CHANNEL}.>"


def stream_configs(options: NatsOptions) -> list[StreamConfig]:
    prefix = options.prefix
    books = StreamConfig(
        name=options.books_stream,
        description="SpiceFlow: the last book of every instrument",
        subjects=[books_subject(prefix)],
        retention=RetentionPolicy.LIMITS,
        max_msgs_per_subject=1,
        discard=DiscardPolicy.OLD,
        storage=StorageType(options.books_storage),
        num_replicas=options.replicas,
    )
    trades = StreamConfig(
        name=options.trades_stream,
        description="SpiceFlow: trades, kept by age and size",
        subjects=[f"{prefix}{TRADE_CHANNEL}.>"],
        retention=RetentionPolicy.LIMITS,
        max_age=options.trades_max_age,
        max_bytes=options.trades_max_bytes,
        discard=DiscardPolicy.OLD,
        storage=StorageType(options.trades_storage),
        num_replicas=options.replicas,
    )
    return [books, trades]


async def ensure_streams(js: JetStreamContext, options: NatsOptions) -> None:
    """Create each stream, or update it when it exists with another configuration
    (limits and subjects can change in place; a storage change is refused by the server
    and raised here). ``js`` carries the request timeout (``nc.jetstream(timeout=...)``)."""
    for config in stream_configs(options):
        try:
            await js.add_stream(config)
        except BadRequestError as exc:
            if exc.err_code != _STREAM_EXISTS:
                raise
            await js.update_stream(config)
