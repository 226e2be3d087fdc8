"""``spiceflow export SOURCE --parquet DIR``: the output side of an export.

The core's command runs the replay engine (``spiceflow_core.recording.replay.replay``,
the same one as ``spiceflow replay``) and hands every wire message to
:meth:`Exporter.emit`, which stamps ``topic_seq`` as the live publisher does (per topic,
from 1, in publish order; ``replay --jsonl`` leaves it 0) and writes the messages with the
sink's own writer, so an export has the layout and schema of a live run's files. Files
are rolled by ``max_rows``/``max_bytes`` only (``max_age`` is wall-clock time, meaningless
at replay speed) and completed at :meth:`Exporter.close`.

An export stops at the first failure (a file it cannot write, a value that is not an exact
decimal) with :class:`ExportError`, rather than leave rows out silently.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgspec

from spiceflow_core.broadcast.wire import WireMessage
from spiceflow_core.config import convert_options

from .config import ParquetOptions
from .writer import Outcome, PartitionedWriter, remove_stale_temp_files

__all__ = ["ExportError", "ExportSummary", "Exporter"]

#: messages handed to the writer at once
_BATCH = 50_000


class ExportError(Exception):
    """Writing the export failed (the message names the file and the cause)."""


class ExportSummary(msgspec.Struct, kw_only=True):
    rows: int = 0  # rows in complete files
    files: int = 0
    skipped: int = 0  # status messages (not stored)


class Exporter:
    """Wire messages of a replay in, complete Parquet files under ``root`` out."""

    def __init__(self, options: ParquetOptions, root: str | os.PathLike[str]) -> None:
        self.options = options
        self.writer = PartitionedWriter(options, root)
        remove_stale_temp_files(self.writer.root)
        self.summary = ExportSummary()
        self._batch: list[WireMessage] = []
        self._topic_seq: dict[tuple[type, str, str], int] = {}

    @classmethod
    def from_config(
        cls,
        table: Mapping[str, Any],
        root: str | os.PathLike[str],
        source: str,
        *,
        depth: int | None = None,
        feeds: list[str] | None = None,
    ) -> Exporter:
        """From a ``[sinks.parquet]`` table (may be empty), ``depth`` and ``feeds`` replacing
        its own; a bad key raises the core's ``ConfigError`` naming it and ``source``."""
        options = convert_options(dict(table), ParquetOptions, source, "sinks.parquet")
        changes: dict[str, Any] = {"path": os.fspath(root)}
        if depth is not None:
            changes["depth"] = depth
        if feeds is not None:
            changes["feeds"] = feeds
        # through the decoder again, so the replaced values are checked like the file's
        raw = {**msgspec.structs.asdict(options), **changes}
        return cls(convert_options(raw, ParquetOptions, source, "sinks.parquet"), root)

    def emit(self, message: WireMessage) -> None:
        """One message of the replay (``replay(..., emit=exporter.emit)``)."""
        key = (type(message), message.venue, message.symbol)
        seq = self._topic_seq[key] = self._topic_seq.get(key, 0) + 1
        message.topic_seq = seq
        self._batch.append(message)
        if len(self._batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        self._check(self.writer.write(batch))

    def _check(self, outcome: Outcome) -> None:
        self.summary.rows += outcome.committed
        self.summary.files += outcome.files
        self.summary.skipped += outcome.skipped
        if outcome.errors:
            raise ExportError(outcome.errors[0])

    def close(self) -> ExportSummary:
        """Write what is left and complete every file."""
        self._flush()
        self._check(self.writer.close())
        return self.summary
