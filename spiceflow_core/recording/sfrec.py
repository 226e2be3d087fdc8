"""The SpiceFlow recording format (``.sfrec``) and the recorder ``spiceflow record`` uses.

Format (version 1), append-only and crash-safe
----------------------------------------------
A file starts with the 8-byte magic ``b"SFREC1\\n\\0"`` and is followed by records::

    u32 little-endian  payload length
    u32 little-endian  CRC-32 (zlib.crc32) of the payload
    payload            msgpack array: [kind, ts_ns, conn, status, url, data]

``kind`` is one of

* ``"meta"``  -- ``data`` is a JSON object (venue, spiceflow version, argv, start time);
  the first record of every writer session (a restarted venue appends a new one);
* ``"open"``  -- connection ``conn`` opened to ``url``;
* ``"recv"``  -- a WebSocket frame received on connection ``conn`` (``data``: the frame,
  text frames as UTF-8 bytes -- ``status`` is 1 for text, 2 for binary);
* ``"sent"``  -- a frame the client sent on connection ``conn``;
* ``"rest"``  -- a REST answer: ``url`` with its query string, HTTP ``status``, ``data``
  the raw body;
* ``"gap"``   -- the recorder dropped records here because its writer fell behind (see
  below): ``status`` is how many records are missing, ``ts_ns`` the time stamp of the
  first of them, ``data`` a JSON object with ``records``, ``bytes``, ``first_ts_ns``,
  ``last_ts_ns`` and ``kinds`` (records lost per kind).

``ts_ns`` is the local wall clock (``time.time_ns()``) when the frame was received /
sent / the REST answer arrived (the WebSocket reader's own stamp, the one the book
messages carry as ``recv_ts_ns``).

Why this shape: a file is only ever appended to, by one writer thread, with complete
``header + payload`` byte strings (whole records, batched). A crash (kill -9, power cut
after the OS flushed) can therefore only leave a *partial last record*. The reader stops
at the first record whose header or payload is short or whose CRC does not match, and
reports how many bytes it ignored (``RecordingReader.truncated``). Everything before it
is intact, so after a kill -9 every record the writer had handed to the OS reads back.
Writers only ever append, so a file can be copied or replayed while it grows.

The recorder: the event loop never waits for the disk
-----------------------------------------------------
:class:`Recorder` is what the runtime calls for every frame, on the event loop. Each
call only appends a tuple to an in-memory list under a lock (O(1), no I/O, no
encoding); one writer thread per recorder (:class:`BackgroundWriter`) encodes the
records and writes them in batches of whole records, at least every
``flush_interval`` (default 50 ms) and sooner when 1 MiB is waiting. A kill -9 loses
only what was still queued in memory: normally the last ``flush_interval`` of records.

Bounded: the records waiting for the writer (queued or being written) may use at
most ``max_pending_bytes`` (default 64 MiB, frame bytes plus a fixed 128-byte charge
per record; a single larger record is taken only when nothing else is waiting). When
the writer falls that far behind (a stalled disk) the loop-side call still returns at
once: the record is dropped and counted (``Recorder.lost``), and so is every following
record until the backlog is below half the bound (the writer catches up, and a stall
leaves a few large gaps rather than many small ones). The first record accepted after
such a run is preceded by one ``"gap"`` record saying how many records, of which kinds
and in which time range are missing, so a recording never loses frames silently;
``spiceflow replay`` reports the gaps and the lost record count, and a book whose
deltas fell into a gap shows as a sequence gap in the replay.
A write error (``OSError``) stops the writer for good (a torn record may sit at the
end of the file; nothing is appended after it); every later record is counted as lost
and the error is kept in ``Recorder.error``.

``Recorder.close()`` drains everything still queued (and a pending gap record),
joins the thread and closes the file; it blocks for as long as that write takes, so
on the event loop use ``await Recorder.aclose()``, which does it in a worker thread.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import anyio
import msgspec
from loguru import logger

MAGIC = b"SFREC1\n\0"
SUFFIX = ".sfrec"
_HEADER = struct.Struct("<II")
#: a record larger than this is taken as corruption (frames are limited to a few MB)
MAX_RECORD = 256 * 2**20

RecKind = Literal["meta", "open", "recv", "sent", "rest", "gap"]
TEXT, BINARY = 1, 2

#: the recorder's bound on records waiting for the writer thread (see the module doc)
DEFAULT_MAX_PENDING_BYTES = 64 * 2**20
#: the writer thread writes what is waiting at least this often (seconds)
DEFAULT_FLUSH_INTERVAL = 0.05
#: ... and as soon as this much is waiting; also the size of one write() call
_BATCH_BYTES = 2**20
#: memory a queued record costs besides its frame bytes (tuple, ints, object headers)
_ITEM_OVERHEAD = 128

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(tuple[str, int, int, int, str, bytes])

#: a record as the loop hands it to the writer: (kind, ts_ns, conn, status, url, data);
#: text frames stay ``str`` until the writer thread encodes them
_Item = tuple[str, int, int, int, str, str | bytes]


class Record(NamedTuple):
    # a tuple: a frozen dataclass costs a microsecond per record to build, and a
    # recording holds one record per frame
    kind: RecKind
    ts_ns: int
    conn: int = 0
    status: int = 0
    url: str = ""
    data: bytes = b""

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")

    @property
    def frame(self) -> str | bytes:
        """The frame as the WebSocket library delivered it (text -> str)."""
        return frame_of(self.data, self.status)

    @property
    def gap(self) -> dict[str, Any]:
        """The details of a ``"gap"`` record (records, bytes, first_ts_ns, last_ts_ns, kinds)."""
        return json.loads(self.data) if self.kind == "gap" and self.data else {}


#: decoded fields -> Record without ``Record.__new__``'s Python-level call (~0.1 us per
#: record, one record per frame)
_as_record: Callable[[tuple[str, int, int, int, str, bytes]], Record] = functools.partial(tuple.__new__, Record)


def frame_of(data: bytes, status: int) -> str | bytes:
    """A ``recv``/``sent`` record's frame as the WebSocket library delivered it (text -> str)."""
    return data if status == BINARY else data.decode("utf-8")


def _encode(kind: str, ts_ns: int, conn: int, status: int, url: str, data: bytes) -> bytes:
    payload = _encoder.encode((kind, ts_ns, conn, status, url, data))
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def encode_record(record: Record) -> bytes:
    return _encode(record.kind, record.ts_ns, record.conn, record.status, record.url, record.data)


class RecordingWriter:
    """Appends records to one ``.sfrec`` file, synchronously: each :meth:`write` is one
    complete record handed to the OS before it returns. :class:`Recorder` uses it from
    its writer thread; use it directly only where blocking on the disk is fine."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: concurrent or restarted writers never overwrite each other
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.records = 0
        self.bytes = 0
        # fstat rather than tell(): also right for a pipe or FIFO, which cannot seek
        if os.fstat(self._fd).st_size == 0:
            self._write_all(MAGIC)

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        # os.write may write less than asked (signals, pipes, quotas): loop until done
        fd = self._fd
        assert fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def write(self, record: Record) -> None:
        if self._fd is None:
            return  # closed: late frames during shutdown are not an error
        blob = encode_record(record)
        self._write_all(blob)
        self.records += 1
        self.bytes += len(blob)

    def append(self, blob: bytes | bytearray, records: int) -> None:
        """Append ``records`` already encoded, complete records (one batch)."""
        if self._fd is None:
            return
        self._write_all(blob)
        self.records += records
        self.bytes += len(blob)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(slots=True)
class _Gap:
    """A run of records dropped because the writer was too far behind."""

    first_ts_ns: int
    last_ts_ns: int = 0
    records: int = 0
    bytes: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def add(self, item: _Item) -> None:
        self.records += 1
        self.bytes += len(item[5])
        self.last_ts_ns = item[1]
        self.kinds[item[0]] = self.kinds.get(item[0], 0) + 1

    def item(self) -> _Item:
        info = {
            "records": self.records,
            "bytes": self.bytes,
            "first_ts_ns": self.first_ts_ns,
            "last_ts_ns": self.last_ts_ns,
            "kinds": self.kinds,
        }
        return ("gap", self.first_ts_ns, 0, self.records, "", json.dumps(info).encode())


class BackgroundWriter:
    """One ``.sfrec`` file written by its own thread; :meth:`put` never blocks.

    The thread starts here and ends in :meth:`close` (which drains and joins it);
    bounds and the gap record are described in the module doc.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        # opened here, not in the thread: a bad --out fails at startup, not later
        self._file = RecordingWriter(path)
        self.path = self._file.path
        self.max_pending_bytes = max_pending_bytes
        self.flush_interval = flush_interval
        #: records dropped because the writer was behind or had failed
        self.lost = 0
        #: gap records queued (one per run of dropped records)
        self.gaps = 0
        #: the write error that stopped the writer, if any
        self.error: OSError | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._items: list[_Item] = []
        self._queued_bytes = 0  # charged for _items
        self._writing_bytes = 0  # charged for the batch the thread is writing
        self._gap: _Gap | None = None
        self._closing = False
        self._lost_logged = 0  # the writer thread's: losses it has already logged
        self._log_after = 0.0
        self._thread = threading.Thread(target=self._run, name=f"sfrec-writer:{self.path.name}", daemon=True)
        self._thread.start()
        # a process that exits without close() still gets what is queued onto disk
        atexit.register(self.close)

    @property
    def written(self) -> int:
        """Records handed to the OS so far (a kill -9 cannot lose these)."""
        return self._file.records

    @property
    def written_bytes(self) -> int:
        return self._file.bytes

    @property
    def pending_bytes(self) -> int:
        """Bytes charged for records not yet written (queued or being written)."""
        with self._lock:
            return self._queued_bytes + self._writing_bytes

    # -- the event loop's side ----------------------------------------------------

    def put(self, item: _Item) -> None:
        """Queue one record for the writer thread. O(1): no I/O, no encoding; drops and
        counts the record when the writer is more than ``max_pending_bytes`` behind."""
        cost = len(item[5]) + _ITEM_OVERHEAD
        with self._lock:
            if self._closing:
                return  # closed: late frames during shutdown are not part of the recording
            if self.error is not None:
                self.lost += 1  # nothing more reaches this file: no gap record either
                return
            # hysteresis: once dropping, resume only below half the bound, so the writer
            # catches up and a stall leaves a few large gaps rather than many tiny ones
            limit = self.max_pending_bytes if self._gap is None else self.max_pending_bytes // 2
            pending = self._queued_bytes + self._writing_bytes
            if pending + cost > limit and pending:
                gap = self._gap
                if gap is None:
                    gap = self._gap = _Gap(item[1])
                gap.add(item)
                self.lost += 1
                return
            if self._gap is not None:
                # the gap record goes in exactly where the records are missing
                self._items.append(self._gap.item())
                self._gap = None
                self.gaps += 1
            self._items.append(item)
            self._queued_bytes += cost
            full = self._queued_bytes >= _BATCH_BYTES
        if full and not self._wake.is_set():
            self._wake.set()

    # -- the writer thread --------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            with self._lock:
                self._wake.clear()
                items, self._items = self._items, []
                self._writing_bytes, self._queued_bytes = self._queued_bytes, 0
                closing = self._closing
            if items:
                self._write(items)
            with self._lock:
                self._writing_bytes = 0
            if closing:
                # close() queued its last records before setting _closing: all written
                return

    def _write(self, items: list[_Item]) -> None:
        if self.error is not None:
            self._count_lost(items)
            return
        batch = bytearray()
        count = done = 0
        try:
            for kind, ts_ns, conn, status, url, data in items:
                if isinstance(data, str):
                    data = data.encode("utf-8", "surrogatepass")
                if kind == "gap":
                    self._log_losses()
                batch += _encode(kind, ts_ns, conn, status, url, data)
                count += 1
                if len(batch) >= _BATCH_BYTES:
                    self._file.append(batch, count)
                    done += count
                    batch.clear()
                    count = 0
            if batch:
                self._file.append(batch, count)
                done += count
        except OSError as exc:
            # the file may now end in a torn record: appending after it would hide
            # everything that follows from readers, so the writer stops for good
            with self._lock:
                self.error = exc
            self._count_lost(items[done:])
            logger.bind(recording=self.path.name).error("recording: cannot write {}: {}", self.path, exc)

    def _log_losses(self, final: bool = False) -> None:
        # at most one warning per 10 s: a writer that stays behind drops in many runs
        now = time.monotonic()
        lost = self.lost
        if lost > self._lost_logged and (final or now >= self._log_after):
            logger.bind(recording=self.path.name).warning(
                "recording {}: the writer fell behind, {} records dropped so far ({} gap records mark the spots)",
                self.path.name,
                lost,
                self.gaps,
            )
            self._lost_logged = lost
            self._log_after = now + 10.0

    def _count_lost(self, items: list[_Item]) -> None:
        # gap records stand for records already counted
        n = sum(1 for item in items if item[0] != "gap")
        with self._lock:
            self.lost += n

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Write everything still queued, join the thread, close the file. Idempotent;
        blocks until the data is written (call it off the event loop)."""
        with self._lock:
            if not self._closing:
                if self._gap is not None and self.error is None:
                    self._items.append(self._gap.item())
                    self._gap = None
                    self.gaps += 1
                self._closing = True
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        if self.error is None:
            self._log_losses(final=True)
        self._file.close()
        atexit.unregister(self.close)


class Recorder:
    """What the runtime calls (``Orchestrator(recorder_factory=...)``): ``frame`` for
    every received WebSocket frame, ``sent`` for every frame we send, ``opened`` for
    every connection, ``rest`` for every REST answer, ``close``/``aclose`` when the venue
    stops. The per-frame calls never block (see the module doc); ``close`` does, until
    the queued records are written, so the event loop should ``await aclose()``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        venue: str,
        meta: dict[str, Any] | None = None,
        *,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        self.venue = venue
        self.writer = BackgroundWriter(path, max_pending_bytes=max_pending_bytes, flush_interval=flush_interval)
        self._put: Callable[[_Item], None] = self.writer.put
        info = {"venue": venue, "format": 1, "started_ns": time.time_ns(), "pid": os.getpid(), **(meta or {})}
        self._put(("meta", time.time_ns(), 0, 0, "", json.dumps(info).encode()))

    @property
    def path(self) -> Path:
        return self.writer.path

    @property
    def lost(self) -> int:
        """Records dropped because the writer fell behind or failed (each run is marked
        in the file by a ``"gap"`` record)."""
        return self.writer.lost

    @property
    def gaps(self) -> int:
        return self.writer.gaps

    @property
    def error(self) -> OSError | None:
        return self.writer.error

    def frame(self, conn_id: int, frame: str | bytes, recv_ts_ns: int) -> None:
        if isinstance(frame, str):
            self._put(("recv", recv_ts_ns, conn_id, TEXT, "", frame))
        else:
            self._put(("recv", recv_ts_ns, conn_id, BINARY, "", _owned(frame)))

    def sent(self, conn_id: int, frame: str | bytes, ts_ns: int | None = None) -> None:
        ts = ts_ns if ts_ns is not None else time.time_ns()
        if isinstance(frame, str):
            self._put(("sent", ts, conn_id, TEXT, "", frame))
        else:
            self._put(("sent", ts, conn_id, BINARY, "", _owned(frame)))

    def opened(self, conn_id: int, url: str, ts_ns: int | None = None) -> None:
        self._put(("open", ts_ns if ts_ns is not None else time.time_ns(), conn_id, 0, url, b""))

    def rest(self, url: str, status: int, body: bytes) -> None:
        self._put(("rest", time.time_ns(), 0, status, url, _owned(body)))

    def close(self) -> None:
        """Drain, join the writer thread, close the file (blocking; idempotent)."""
        self.writer.close()

    async def aclose(self) -> None:
        """:meth:`close` in a worker thread: the event loop keeps running while the
        queued records are written. Completes even when the calling scope is being
        cancelled (a shutdown ``finally:`` can await it)."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.writer.close)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _owned(data: bytes | bytearray | memoryview) -> bytes:
    # bytes is immutable: queue it as is; a mutable buffer may change before the
    # writer thread gets to it, so it is copied (bytes(b) of a bytes object is b)
    return data if type(data) is bytes else bytes(data)


def recorder_factory(
    out_dir: str | os.PathLike[str], *, stamp: str | None = None, meta: dict[str, Any] | None = None
) -> Callable[[Any], Recorder]:
    """``factory(venue) -> Recorder`` writing ``OUT/<venue>-<stamp>.sfrec``. A venue the
    orchestrator restarts gets a new Recorder on the same file (appended)."""
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    out = Path(out_dir)
    extra = {"argv": sys.argv[1:], **(meta or {})}

    def factory(venue: Any) -> Recorder:
        return Recorder(out / f"{venue.name}-{stamp}{SUFFIX}", venue.name, extra)

    return factory


# -- reading --------------------------------------------------------------------------


class RecordingError(ValueError):
    """Not a SpiceFlow recording (bad magic)."""


class RecordingReader:
    """Iterate the complete records of a ``.sfrec`` file. After iteration,
    ``truncated`` is the number of trailing bytes ignored (a partial or corrupt last
    record: a crash mid-write) and ``complete`` tells whether there were none. Records
    the recorder had to drop are not missing silently: a ``"gap"`` record stands where
    they were (``Record.gap`` has the details)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.records = 0
        self.truncated = 0

    @property
    def complete(self) -> bool:
        return self.truncated == 0

    def __iter__(self) -> Iterator[Record]:
        with open(self.path, "rb") as fh:
            magic = fh.read(len(MAGIC))
            if magic != MAGIC:
                if len(magic) < len(MAGIC) and MAGIC.startswith(magic):
                    self.truncated = len(magic)  # crashed before the first record
                    return
                raise RecordingError(f"{self.path}: not a SpiceFlow recording (bad magic)")
            size = self.path.stat().st_size
            pos = len(MAGIC)
            while True:
                head = fh.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    self.truncated = len(head)
                    return
                length, crc = _HEADER.unpack(head)
                if length > MAX_RECORD:
                    self.truncated = size - pos
                    return
                payload = fh.read(length)
                if len(payload) < length or zlib.crc32(payload) != crc:
                    self.truncated = size - pos
                    return
                try:
                    fields = _decoder.decode(payload)
                except msgspec.DecodeError:
                    self.truncated = size - pos
                    return
                pos += _HEADER.size + length
                self.records += 1
                yield _as_record(fields)  # readers skip unknown kinds


def read_recording(path: str | os.PathLike[str]) -> list[Record]:
    return list(RecordingReader(path))


def recording_files(source: str | os.PathLike[str]) -> list[Path]:
    """A ``.sfrec`` file, or every ``.sfrec`` file of a directory (sorted)."""
    p = Path(source)
    if p.is_dir():
        return sorted(p.glob(f"*{SUFFIX}"))
    return [p] if p.suffix == SUFFIX and p.exists() else []


def recording_venue(path: str | os.PathLike[str]) -> str | None:
    """The venue named by the first ``meta`` record, else by the file name."""
    for record in RecordingReader(path):
        if record.kind == "meta":
            try:
                venue = json.loads(record.data).get("venue")
            except ValueError:
                break
            return venue if isinstance(venue, str) else None
        break
    name = Path(path).name
    return name.rsplit("-", 1)[0] if "-" in name else None
