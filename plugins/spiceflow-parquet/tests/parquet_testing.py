"""Helpers of the Parquet plugin's tests: the files read back with pyarrow, the CLI; the
sink test kit of the core (wire messages stamped by the real Publisher, the sink's task
run as the broadcast actor runs it, polling) re-exported."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from spiceflow_core.testkit.processes import SPICEFLOW
from spiceflow_core.testkit.sinks import Offered, Wire, offer, running, wait_for

__all__ = [
    "RECORDED",
    "SPICEFLOW",
    "Offered",
    "Wire",
    "as_rows",
    "levels",
    "offer",
    "read_feed",
    "running",
    "stored_levels",
    "wait_for",
]


REPO = Path(__file__).resolve().parents[3]
RECORDED = REPO.parent / "shared" / "recorded"
if not RECORDED.is_dir():  # a checkout elsewhere on this machine
    RECORDED = Path("/work/shared/recorded")


def read_feed(root: Path, directory: str) -> list[dict[str, Any]]:
    """Every row of one feed's files (a pyarrow dataset: Hive partitions as columns,
    hidden temporary files ignored), timestamps as integers, ordered by symbol and
    topic_seq."""
    path = root / directory
    if not path.exists():
        return []
    table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    return sorted(as_rows(table), key=lambda row: (row["symbol"], row["topic_seq"]))


def as_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows as dicts, timestamps as integers (ms or ns since the epoch: Python's
    datetime has no nanoseconds)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(index, field.name, table.column(index).cast(pa.int64()))
    return list(table.to_pylist())


def levels(raw: list[Any]) -> list[tuple[Decimal, Decimal]]:
    """Wire levels (``[price, size]`` strings) as exact decimals."""
    return [(Decimal(price), Decimal(size)) for price, size in raw]


def stored_levels(raw: list[dict[str, Decimal]]) -> list[tuple[Decimal, Decimal]]:
    return [(level["price"], level["size"]) for level in raw]
