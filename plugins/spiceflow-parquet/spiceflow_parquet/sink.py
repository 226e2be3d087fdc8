"""ParquetSink: the books, trades and tops the pipeline publishes, stored in Parquet
files (``writer``: partitioned, rolled, crash-safe).

``offer`` (the core's, on the frame path) appends to a bounded buffer; this sink's task
hands what accumulated to a worker thread (``anyio.to_thread``), where the messages
become Arrow tables and row groups: the event loop never encodes Parquet. One call at a
time reaches the writer (a lock), so a slow disk turns into a fuller buffer and counted
drops here, never into unbounded memory. A ticker completes files older than
``max_age``, so an idle partition is readable without waiting for more data.

Counters (``status.sinks.parquet``, ``GET /health``, ``/metrics``), so that
``offered = written + dropped + buffered + skipped`` at any time:

* ``written``: rows in complete files (a file's rows count once it is renamed into place);
* ``buffered``: messages waiting in the buffer or in the writer's thread, and rows in
  files not complete yet;
* ``dropped``: messages that will never reach a file: the buffer was full, or their file
  failed (full disk, permission, a path component that is a regular file, a value that
  is not an exact decimal);
* ``skipped``: messages of feeds not stored (status messages, feeds left out);
* ``errors`` (each failure once, ``last_error`` its message) and ``files`` (completed).

A failure is logged with its cause; the pipeline and the other sinks go on, and the
sink tries again with the next rows of that partition (a new file).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
from loguru import logger

from spiceflow_core.sinks import BufferedSink, SinkStats

from .config import NAME, ParquetOptions
from .writer import Outcome, PartitionedWriter, remove_stale_temp_files

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.broadcast.wire import WireMessage

__all__ = ["ParquetSink", "ParquetStats"]

#: the same failure is logged again at most this often (it may repeat every batch)
_LOG_REPEAT_S = 10.0


class ParquetStats(SinkStats, kw_only=True):
    skipped: int = 0
    files: int = 0


class ParquetSink(BufferedSink):
    def __init__(self, options: ParquetOptions) -> None:
        super().__init__(NAME, options.capacity)
        self.options = options
        self.stats: ParquetStats = ParquetStats(name=NAME)
        self.writer = PartitionedWriter(options)
        #: one writer call at a time, in a worker thread
        self._lock = anyio.Lock()
        #: messages taken from the buffer and not yet through the writer
        self._in_flight = 0
        self._pending_rows = 0
        self._logged: tuple[str, float] = ("", 0.0)
        self.log = logger.bind(actor="sink", sink=NAME)

    # -- the sink's task ---------------------------------------------------------------
    async def run(self) -> None:
        removed = await anyio.to_thread.run_sync(remove_stale_temp_files, self.writer.root)
        if removed:
            self.log.info("parquet sink removed {} temporary file(s) of an earlier run that stopped", len(removed))
        self.log.info("parquet sink writing to {}", self.writer.root.resolve())
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._roll_by_age)
            while True:
                if not self._buffer:
                    await self._wake_recv.receive()  # where a shutdown cancels the task
                    continue
                await self._write_buffered()

    async def write(self, batch: list[tuple[str, bytes, WireMessage]]) -> None:
        messages = [message for _, _, message in batch]
        self._in_flight = len(messages)
        try:
            await self._call(self.writer.write, messages)
        finally:
            self._in_flight = 0

    async def _write_buffered(self) -> None:
        batch = list(self._buffer)
        self._buffer.clear()
        await self.write(batch)

    async def _roll_by_age(self) -> None:
        interval = min(1.0, self.options.max_age / 4)
        while True:
            await anyio.sleep(interval)
            if self.writer.open_files:
                await self._call(self.writer.roll_expired)

    async def _call(self, method: Callable[..., Outcome], *args: object) -> None:
        # shielded: a cancellation (shutdown) waits for the call instead of losing a
        # batch already taken from the buffer or leaving a file half-updated
        with anyio.CancelScope(shield=True):
            async with self._lock:
                outcome = await anyio.to_thread.run_sync(method, *args)
                self._pending_rows = self.writer.pending_rows
        self._account(outcome)

    def _account(self, outcome: Outcome) -> None:
        stats = self.stats
        stats.written += outcome.committed
        stats.files += outcome.files
        stats.dropped += outcome.lost
        stats.skipped += outcome.skipped
        for error in outcome.errors:
            stats.errors += 1
            stats.last_error = error
            last, at = self._logged
            now = time.monotonic()
            if error != last or now - at >= _LOG_REPEAT_S:
                self._logged = (error, now)
                self.log.error(
                    "parquet sink: {} ({} rows lost so far); the pipeline goes on, the next rows start a new file",
                    error,
                    stats.dropped,
                )

    def current_stats(self) -> ParquetStats:
        self.stats.buffered = len(self._buffer) + self._in_flight + self._pending_rows
        return self.stats

    async def aclose(self) -> None:
        """Write what is still buffered and complete every open file (shielded, like
        every writer call: a shutdown's time limit must not leave the last minute of
        data in temporary files; completing them takes a row group's encoding at most)."""
        if self._buffer:
            await self._write_buffered()
        await self._call(self.writer.close)
