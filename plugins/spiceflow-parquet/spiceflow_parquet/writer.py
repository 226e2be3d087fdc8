"""Partitioned, rolling, crash-safe Parquet files.

Layout (Hive-style partitions, one directory per feed)::

    ROOT/books/venue=binance/date=2026-12-01/hour=13/part-<start_ns>-<pid>-<n>.parquet
    ROOT/trades/...   ROOT/tops/...

The partition is the UTC hour of the gateway's receive time (``recv_ts``), so a live run
and an export of its recording put a row in the same place.

A file is complete or absent: it is written under a hidden temporary name in its final
directory (``.part-...parquet.tmp``), closed (the footer written), fsynced, then renamed
(``os.replace``, atomic within a filesystem) and its directory fsynced. A process killed
mid-file leaves at most a hidden temporary file, which readers' ``**/*.parquet`` globs
(DuckDB, polars) and pyarrow datasets (names starting with '.') never read, and which
the next writer on the same root removes (:func:`remove_stale_temp_files`).

A file is completed when it reaches ``max_rows`` rows or ``max_bytes`` bytes on disk,
when :meth:`PartitionedWriter.roll_expired` finds it older than ``max_age``, and at
:meth:`PartitionedWriter.close`. Rows wait in memory until a row group is full
(``row_group_rows``), then go to the temporary file.

Failures are per file: an ``OSError`` (full disk, permission, a path component that is a
file) or a value that is not an exact decimal loses the rows concerned -- those of the
failed file, counted in :class:`Outcome` -- and the writer goes on: the next rows of that
partition start a new file.

Not thread-safe: one call at a time (the sink serializes its calls into its worker
thread).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spiceflow_core.broadcast.wire import WireMessage

from .config import ParquetOptions
from .rows import TABLE_BUILDERS, InexactValue, channel_of
from .schema import FEED_CHANNEL, FEED_DIRS, schema_for

__all__ = ["TEMP_GLOB", "Outcome", "PartitionedWriter", "remove_stale_temp_files"]

HOUR_NS = 3600 * 10**9
#: the temporary files of every partition, relative to the root
TEMP_GLOB = "*/venue=*/date=*/hour=*/.part-*.parquet.tmp"
#: what a failed file operation raises (pyarrow's I/O errors are OSErrors)
_FILE_ERRORS = (OSError, pa.ArrowException)

#: (channel, venue, UTC hour since the epoch)
PartitionKey = tuple[str, str, int]


@dataclass
class Outcome:
    """What one call did, for the sink's counters."""

    committed: int = 0  # rows in files completed by this call
    files: int = 0  # files completed
    lost: int = 0  # rows that will never reach a file (failed file, inexact value)
    skipped: int = 0  # messages of feeds not stored (status, feeds left out)
    errors: list[str] = field(default_factory=list)

    def fail(self, rows: int, error: str) -> None:
        self.lost += rows
        self.errors.append(error)


class _File:
    """One file in progress: open under its temporary name from the start (so an
    unwritable directory shows at the first rows), rows kept until a row group fills."""

    def __init__(self, directory: Path, name: str, schema: pa.Schema, options: ParquetOptions) -> None:
        self.final = directory / name
        self.temp = directory / f".{name}.tmp"
        self.options = options
        directory.mkdir(parents=True, exist_ok=True)
        compression = None if options.compression == "none" else options.compression
        self.writer = pq.ParquetWriter(self.temp, schema, compression=compression)
        self.started = time.monotonic()
        self.rows = 0  # in the file: written or waiting for their row group
        self.size = 0  # bytes on disk so far
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def append(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.options.row_group_rows:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        self.writer.write_table(table, row_group_size=self.options.row_group_rows)
        self.size = self.temp.stat().st_size

    def commit(self) -> None:
        self.flush()
        self.writer.close()  # the footer: from here the file is readable
        if self.options.fsync:
            _fsync(self.temp)
        os.replace(self.temp, self.final)
        if self.options.fsync:
            _fsync(self.final.parent)  # the rename itself

    def abort(self) -> None:
        """Give the file up (after a failure): close what can be closed, remove the
        temporary file; never raises."""
        self._pending = []
        try:
            self.writer.close()
        except _FILE_ERRORS:
            pass
        try:
            self.temp.unlink(missing_ok=True)
        except OSError:
            pass


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartitionedWriter:
    """Wire messages in, complete Parquet files out (see the module's docstring)."""

    def __init__(self, options: ParquetOptions, root: str | os.PathLike[str] | None = None) -> None:
        self.options = options
        self.root = Path(root if root is not None else options.path)
        self.channels = frozenset(FEED_CHANNEL[feed] for feed in options.feeds)
        self._files: dict[PartitionKey, _File] = {}
        self._schemas = {channel: schema_for(channel, options.depth) for channel in self.channels}
        self._names = itertools.count(1)
        self._pid = os.getpid()
        self._hours: dict[int, str] = {}

    @property
    def pending_rows(self) -> int:
        """Rows in files not completed yet."""
        return sum(f.rows for f in self._files.values())

    @property
    def open_files(self) -> int:
        return len(self._files)

    # -- writing -----------------------------------------------------------------------
    def write(self, messages: Iterable[WireMessage]) -> Outcome:
        """Append messages (in publish order) to the files of their partitions."""
        outcome = Outcome()
        channels = self.channels
        groups: dict[PartitionKey, list[Any]] = {}
        for message in messages:
            channel = channel_of(message)
            if channel not in channels:
                outcome.skipped += 1
                continue
            # books, trades and tops all carry recv_ts_ns (status messages are skipped above)
            ts = getattr(message, "recv_ts_ns", 0) or message.publish_ts_ns or time.time_ns()
            key = (channel, message.venue, ts // HOUR_NS)
            group = groups.get(key)
            if group is None:
                group = groups[key] = []
            group.append(message)
        for key, group in groups.items():
            self._write_group(key, group, outcome)
        return outcome

    def _write_group(self, key: PartitionKey, messages: list[Any], outcome: Outcome) -> None:
        channel = key[0]
        try:
            table = TABLE_BUILDERS[channel](messages, self.options.depth)
        except InexactValue as exc:
            outcome.fail(len(messages), f"{self._directory(key)}: {len(messages)} rows left out: {exc}")
            return
        max_rows, max_bytes, group = self.options.max_rows, self.options.max_bytes, self.options.row_group_rows
        offset = 0
        while offset < table.num_rows:
            file = self._files.get(key)
            if file is None:
                try:
                    file = self._files[key] = self._open(key)
                except _FILE_ERRORS as exc:
                    outcome.fail(table.num_rows - offset, f"cannot create a file in {self._directory(key)}: {exc}")
                    return
            # a row group at most at a time: max_bytes is checked after each one
            part = table.slice(offset, min(max_rows - file.rows, group))
            offset += part.num_rows
            try:
                file.append(part)
            except _FILE_ERRORS as exc:
                del self._files[key]
                file.abort()
                outcome.fail(file.rows + table.num_rows - offset, f"cannot write {file.temp}: {exc}")
                return
            if file.rows >= max_rows or file.size >= max_bytes:
                self._commit(key, outcome)

    def _directory(self, key: PartitionKey) -> Path:
        channel, venue, hour = key
        partition = self._hours.get(hour)
        if partition is None:
            start = datetime.fromtimestamp(hour * 3600, UTC)
            partition = self._hours[hour] = f"date={start:%Y-%m-%d}/hour={start.hour}"
        return self.root / FEED_DIRS[channel] / f"venue={venue}" / partition

    def _open(self, key: PartitionKey) -> _File:
        # unique across files of this writer (the counter) and of other processes
        # writing the same root (the pid), sortable by start time
        name = f"part-{time.time_ns()}-{self._pid}-{next(self._names):06d}.parquet"
        return _File(self._directory(key), name, self._schemas[key[0]], self.options)

    def _commit(self, key: PartitionKey, outcome: Outcome) -> None:
        file = self._files.pop(key)
        try:
            file.commit()
        except _FILE_ERRORS as exc:
            file.abort()
            outcome.fail(file.rows, f"cannot complete {file.final}: {exc}")
            return
        outcome.committed += file.rows
        outcome.files += 1

    # -- rolling -----------------------------------------------------------------------
    def roll_expired(self, now: float | None = None) -> Outcome:
        """Complete the files started ``max_age`` seconds ago or earlier."""
        outcome = Outcome()
        limit = (time.monotonic() if now is None else now) - self.options.max_age
        for key in [k for k, f in self._files.items() if f.started <= limit]:
            self._commit(key, outcome)
        return outcome

    def close(self) -> Outcome:
        """Complete every open file."""
        outcome = Outcome()
        for key in list(self._files):
            self._commit(key, outcome)
        return outcome


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temp_files(root: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files under ``root`` left by writers that are gone (killed
    mid-file: their pid, in the name, runs no more on this host); returns them. The
    temporary files of running writers are left alone."""
    removed = []
    own = os.getpid()
    for path in Path(root).glob(TEMP_GLOB):
        try:
            pid = int(path.name.split("-")[2])
        except (IndexError, ValueError):
            continue  # not one of ours
        if pid == own or _alive(pid):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed
