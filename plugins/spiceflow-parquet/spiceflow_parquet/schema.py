"""The files' schema (version 1): one Arrow schema per stored feed, its version and the
feed in every file's key-value metadata.

Prices and sizes are ``decimal128(38, 18)`` in every file, for every instrument: the
exact value the exchange sent (its decimal string, cast without rounding; a value that
does not fit -- more than 18 decimals or 20 integer digits -- is refused, never rounded).
One fixed type rather than a scale per instrument because a dataset is read as one
table: polars refuses files whose column types differ, and DuckDB casts every file to the
first one's type, which would round a finer-scaled instrument. DuckDB, polars and
pyarrow read it as an exact decimal; pandas (through pyarrow) as ``decimal.Decimal``.

Timestamps are UTC ``timestamp`` columns: the exchange's (ms, null when the venue sends
none), the gateway's receive time and the publish time (ns; null when unknown, e.g.
``publish_ts`` in an export). ``venue``, ``date`` and ``hour`` are not columns: they are
the Hive partitions of the path (``venue=binance/date=2026-12-01/hour=13``), which
readers turn into columns (``hive_partitioning``).
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "CHANNELS",
    "DECIMAL",
    "FEED_CHANNEL",
    "FEED_DIRS",
    "LEVEL",
    "LEVELS",
    "METADATA_DEPTH",
    "METADATA_FEED",
    "METADATA_VERSION",
    "SCHEMA_VERSION",
    "schema_for",
]

#: bumped on any change a reader could notice (a column added, removed or retyped)
SCHEMA_VERSION = 1
METADATA_VERSION = b"spiceflow.schema_version"
METADATA_FEED = b"spiceflow.feed"
METADATA_DEPTH = b"spiceflow.depth"

DECIMAL = pa.decimal128(38, 18)
LEVEL = pa.struct([pa.field("price", DECIMAL, nullable=False), pa.field("size", DECIMAL, nullable=False)])
#: one side of a book: its levels, best first
LEVELS = pa.list_(pa.field("element", LEVEL, nullable=False))
_MS = pa.timestamp("ms", tz="UTC")
_NS = pa.timestamp("ns", tz="UTC")

#: stored feed (``--feed`` name) -> the wire channel of its messages (their ``type`` tag)
FEED_CHANNEL: dict[str, str] = {"book": "book", "trades": "trade", "top": "top"}
#: wire channel -> the dataset's top directory
FEED_DIRS: dict[str, str] = {"book": "books", "trade": "trades", "top": "tops"}
CHANNELS = tuple(FEED_DIRS)

# columns every feed has, first
_ENVELOPE = [
    pa.field("symbol", pa.string(), nullable=False),  # the exchange's symbol
    pa.field("instrument", pa.string(), nullable=False),  # normalized id, e.g. binance.spot.BTC.USDT
    pa.field("topic_seq", pa.int64(), nullable=False),  # per topic from 1, as on the wire
]
_TIMES = [
    pa.field("exchange_ts", _MS),
    pa.field("recv_ts", _NS),
    pa.field("publish_ts", _NS),
    pa.field("epoch", pa.int64(), nullable=False),
]
_TOP = [
    pa.field("bid_price", DECIMAL),
    pa.field("bid_size", DECIMAL),
    pa.field("ask_price", DECIMAL),
    pa.field("ask_size", DECIMAL),
]

_FIELDS: dict[str, list[pa.Field]] = {
    "book": [
        *_ENVELOPE,
        pa.field("sequence", pa.int64(), nullable=False),  # the venue's update id
        *_TOP,  # the best level of each side (bids[1], asks[1]); null for an empty side
        pa.field("bids", LEVELS, nullable=False),  # best first, at most ``depth`` levels
        pa.field("asks", LEVELS, nullable=False),
        pa.field("checksum_verified", pa.bool_(), nullable=False),
        *_TIMES,
    ],
    "trade": [
        *_ENVELOPE,
        pa.field("trade_id", pa.string(), nullable=False),
        pa.field("price", DECIMAL, nullable=False),
        pa.field("size", DECIMAL, nullable=False),
        pa.field("side", pa.string(), nullable=False),  # the taker's: buy, sell, "" when unknown
        *_TIMES,
    ],
    "top": [
        *_ENVELOPE,
        pa.field("sequence", pa.int64()),
        *_TOP,
        *_TIMES,
    ],
}


def schema_for(channel: str, depth: int) -> pa.Schema:
    """The schema of ``channel``'s files, with the version (and the book depth) in the
    key-value metadata every Parquet reader shows."""
    metadata = {METADATA_VERSION: str(SCHEMA_VERSION).encode(), METADATA_FEED: channel.encode()}
    if channel == "book":
        metadata[METADATA_DEPTH] = str(depth).encode()
    return pa.schema(_FIELDS[channel], metadata=metadata)
