"""``[sinks.parquet]``: the sink's options (decoded by the core; an unknown key is an error
naming it). ``spiceflow export`` reads the same table, its ``path`` replaced by
``--parquet DIR``."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["COMPRESSIONS", "NAME", "ParquetOptions", "StoredFeed"]

#: the feeds a sink can store, named as ``spiceflow run --feed`` names them
StoredFeed = Literal["book", "trades", "top"]
Compression = Literal["zstd", "snappy", "lz4", "gzip", "none"]
COMPRESSIONS: tuple[str, ...] = ("zstd", "snappy", "lz4", "gzip", "none")


#: the sink's name: its ``[sinks.parquet]`` section and its entry point
NAME = "parquet"


class ParquetOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Where and how the sink writes. Files land in
    ``{path}/{books,trades,tops}/venue=V/date=YYYY-MM-DD/hour=HH/part-*.parquet``."""

    #: the dataset's root directory (created if missing)
    path: str = "spiceflow-data"
    #: which feeds to store; a feed the run does not subscribe simply writes nothing
    feeds: list[StoredFeed] = msgspec.field(default_factory=lambda: ["book", "trades", "top"])
    #: levels kept per side of each book (the run publishes ``book.depth``; fewer are kept
    #: when the book is shallower)
    depth: int = 10
    #: a file is completed (and a new one started) at this many rows ...
    max_rows: int = 1_000_000
    #: ... or once this many bytes are on disk ...
    max_bytes: int = 128 * 2**20
    #: ... or this many seconds after it was started: the delay before readers see data
    max_age: float = 60.0
    #: rows per Parquet row group (also the rows a file holds in memory before writing)
    row_group_rows: int = 32_768
    compression: Compression = "zstd"
    #: fsync each file before its rename, and its directory after: a complete file also
    #: survives a power loss, not only a crash of the process
    fsync: bool = True
    #: messages held while the writer thread is busy; beyond it they are dropped (counted)
    capacity: int = 200_000

    def __post_init__(self) -> None:
        # msgspec turns ValueError here into a decode error naming the table
        if not self.path:
            raise ValueError("path must not be empty")
        if not self.feeds:
            raise ValueError("feeds: at least one of book, trades, top")
        if len(set(self.feeds)) != len(self.feeds):
            raise ValueError("feeds: each feed once")
        if not 1 <= self.depth <= 1000:
            raise ValueError("depth: 1 to 1000")
        if self.max_rows < 1 or self.row_group_rows < 1 or self.capacity < 1:
            raise ValueError("max_rows, row_group_rows and capacity must be at least 1")
        if self.max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self.max_age <= 0:
            raise ValueError("max_age must be positive")
