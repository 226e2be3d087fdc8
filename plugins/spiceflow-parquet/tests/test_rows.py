"""Wire messages -> rows of the versioned schema: exact decimals (never rounded, never
floats), the top N levels, nulls where the wire has none."""

from __future__ import annotations

import re
from decimal import Decimal

import pyarrow as pa
import pytest
from parquet_testing import Wire, as_rows
from spiceflow_parquet.config import ParquetOptions
from spiceflow_parquet.rows import InexactValue, book_table, top_table, trade_table
from spiceflow_parquet.schema import DECIMAL, METADATA_DEPTH, METADATA_VERSION, SCHEMA_VERSION

from spiceflow_core.config import ConfigError, convert_options


def test_book_rows_keep_the_top_n_levels_exactly(wire: Wire):
    bids = [("43250.10", "0.001"), ("43250.00000001", "12"), ("43249.9", "7.5")]
    _, _, deep = wire.book("BTCUSDT", bids=bids, asks=[("43250.2", "0.00000001")])
    _, _, empty = wire.book("BTCUSDT", bids=[], asks=[])
    table = book_table([deep, empty], depth=2)
    assert table.schema.metadata[METADATA_VERSION] == str(SCHEMA_VERSION).encode()
    assert table.schema.metadata[METADATA_DEPTH] == b"2"
    assert table.schema.field("bid_price").type == DECIMAL
    first, second = as_rows(table)
    assert [(x["price"], x["size"]) for x in first["bids"]] == [
        (Decimal("43250.10"), Decimal("0.001")),
        (Decimal("43250.00000001"), Decimal("12")),
    ]
    assert [(x["price"], x["size"]) for x in first["asks"]] == [(Decimal("43250.2"), Decimal("0.00000001"))]
    assert (first["bid_price"], first["bid_size"]) == (Decimal("43250.10"), Decimal("0.001"))
    assert (first["topic_seq"], first["sequence"], first["instrument"]) == (1, deep.sequence, "toy.spot.BTCUSDT")
    assert second["bids"] == [] and second["bid_price"] is None and second["ask_size"] is None
    assert table.column("recv_ts").cast(pa.int64()).to_pylist() == [deep.recv_ts_ns, empty.recv_ts_ns]
    assert table.column("publish_ts").cast(pa.int64()).to_pylist() == [deep.publish_ts_ns, empty.publish_ts_ns]


def test_trade_and_top_rows(wire: Wire):
    _, _, trade = wire.trade("ETHUSDT", price="0.000000000000000001")  # 18 decimals: the finest kept
    (row,) = as_rows(trade_table([trade], depth=10))
    assert (row["trade_id"], row["price"], row["size"], row["side"]) == (
        trade.trade_id,
        Decimal("1E-18"),
        Decimal("0.1"),
        "buy",
    )
    assert row["exchange_ts"] is None  # the venue sent none
    _, _, top = wire.top("ETHUSDT")
    (row,) = as_rows(top_table([top], depth=10))
    assert (row["bid_price"], row["bid_size"], row["ask_price"], row["ask_size"]) == (
        Decimal("100.5"),
        Decimal("2"),
        None,
        None,
    )


@pytest.mark.parametrize("price", ["0.0000000000000000001", "123456789012345678901", "NaN", "abc"])
def test_a_value_that_is_not_exact_in_the_decimal_type_is_refused_not_rounded(wire: Wire, price: str):
    _, _, trade = wire.trade("ETHUSDT", price=price)
    with pytest.raises(InexactValue, match="not exact in decimal"):
        trade_table([trade], depth=10)


@pytest.mark.parametrize(
    "table,message",
    [
        ({"depth": 0}, "depth: 1 to 1000"),
        ({"feeds": ["book", "candles"]}, "sinks.parquet.feeds"),
        ({"max_age": 0}, "max_age must be positive"),
        ({"compression": "brotli9"}, "sinks.parquet.compression"),
        ({"colour": 1}, "sinks.parquet.colour: unknown key"),
    ],
)
def test_options_errors_name_the_key(table: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        convert_options(table, ParquetOptions, "spiceflow.toml", "sinks.parquet")


def test_decoded_wire_levels_convert_like_the_publishers_tuples(wire: Wire):
    from spiceflow_core.broadcast.wire import decoder

    _, body, published = wire.book("BTCUSDT", bids=[("1.5", "2"), ("1.4", "3")])
    decoded = decoder.decode(body)  # levels are BookLevel structs here
    assert as_rows(book_table([decoded], depth=10)) == as_rows(book_table([published], depth=10))


def test_an_inexact_level_is_named(wire: Wire):
    _, _, book = wire.book("BTCUSDT", bids=[("1.5", "2"), ("1.4", "0.0000000000000000001")])
    with pytest.raises(InexactValue, match=re.escape("'0.0000000000000000001' is not exact")):
        book_table([book], depth=10)
