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
  the raw body.

``ts_ns`` is the local wall clock (``time.time_ns()``) when the frame was received /
sent / the REST answer arrived (the WebSocket reader's own stamp, the one the book
messages carry as ``recv_ts_ns``).

Why this shape: every record is written with one ``write`` call of the complete
``header + payload`` bytes on an unbuffered file, so a crash (kill -9, power cut
after the OS flushed) can only leave a *partial last record*. The reader stops at the
first record whose header or payload is short or whose CRC does not match, and reports
how many bytes it ignored (``RecordingReader.truncated``). Everything before it is
intact. Writers only ever append, so a file can be copied or replayed while it grows.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

MAGIC = b"SFREC1\n\0"
SUFFIX = ".sfrec"
_HEADER = struct.Struct("<II")
#: a record larger than this is taken as corruption (frames are limited to a few MB)
MAX_RECORD = 256 * 2**20

RecKind = Literal["meta", "open", "recv", "sent", "rest"]
TEXT, BINARY = 1, 2

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(tuple[str, int, int, int, str, bytes])


@dataclass(frozen=True, slots=True)
class Record:
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
        return self.data if self.status == BINARY else self.data.decode("utf-8")


def encode_record(record: Record) -> bytes:
    payload = _encoder.encode((record.kind, record.ts_ns, record.conn, record.status, record.url, record.data))
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class RecordingWriter:
    """Appends records to one ``.sfrec`` file; each record is one unbuffered write."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: concurrent or restarted writers never overwrite each other
        self._fh = open(self.path, "ab", buffering=0)
        if self._fh.tell() == 0:
            self._fh.write(MAGIC)
        self.records = 0
        self.bytes = 0

    def write(self, record: Record) -> None:
        if self._fh is None:
            return  # closed: late frames during shutdown are not an error
        blob = encode_record(record)
        self._fh.write(blob)
        self.records += 1
        self.bytes += len(blob)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Recorder:
    """What the runtime calls (``Orchestrator(recorder_factory=...)``): ``frame`` for
    every received WebSocket frame, ``sent`` for every frame we send, ``rest`` for every
    REST answer, ``close`` when the venue stops."""

    def __init__(self, path: str | os.PathLike, venue: str, meta: dict | None = None) -> None:
        self.venue = venue
        self.writer = RecordingWriter(path)
        info = {"venue": venue, "format": 1, "started_ns": time.time_ns(), "pid": os.getpid(), **(meta or {})}
        self.writer.write(Record("meta", time.time_ns(), data=json.dumps(info).encode()))

    @property
    def path(self) -> Path:
        return self.writer.path

    def frame(self, conn_id: int, frame: str | bytes, recv_ts_ns: int) -> None:
        if isinstance(frame, str):
            self.writer.write(Record("recv", recv_ts_ns, conn_id, TEXT, "", frame.encode("utf-8")))
        else:
            self.writer.write(Record("recv", recv_ts_ns, conn_id, BINARY, "", bytes(frame)))

    def sent(self, conn_id: int, frame: str | bytes, ts_ns: int | None = None) -> None:
        ts = ts_ns if ts_ns is not None else time.time_ns()
        data, status = (frame.encode("utf-8"), TEXT) if isinstance(frame, str) else (bytes(frame), BINARY)
        self.writer.write(Record("sent", ts, conn_id, status, "", data))

    def opened(self, conn_id: int, url: str, ts_ns: int | None = None) -> None:
        self.writer.write(Record("open", ts_ns if ts_ns is not None else time.time_ns(), conn_id, 0, url))

    def rest(self, url: str, status: int, body: bytes) -> None:
        self.writer.write(Record("rest", time.time_ns(), 0, status, url, bytes(body)))

    def close(self) -> None:
        self.writer.close()


def recorder_factory(out_dir: str | os.PathLike, *, stamp: str | None = None, meta: dict | None = None):
    """``factory(venue) -> Recorder`` writing ``OUT/<venue>-<stamp>.sfrec``. A venue the
    orchestrator restarts gets a new Recorder on the same file (appended)."""
    stamp = stamp or time.strftime("%Y%m%dT%H%M%S")
    out = Path(out_dir)
    extra = {"argv": sys.argv[1:], **(meta or {})}

    def factory(venue) -> Recorder:
        return Recorder(out / f"{venue.name}-{stamp}{SUFFIX}", venue.name, extra)

    return factory


# -- reading --------------------------------------------------------------------------


class RecordingError(ValueError):
    """Not a SpiceFlow recording (bad magic)."""


class RecordingReader:
    """Iterate the complete records of a ``.sfrec`` file. After iteration,
    ``truncated`` is the number of trailing bytes ignored (a partial or corrupt last
    record: a crash mid-write) and ``complete`` tells whether there were none."""

    def __init__(self, path: str | os.PathLike) -> None:
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
                    kind, ts, conn, status, url, data = _decoder.decode(payload)
                except msgspec.DecodeError:
                    self.truncated = size - pos
                    return
                pos += _HEADER.size + length
                self.records += 1
                yield Record(kind, ts, conn, status, url, data)  # type: ignore[arg-type]


def read_recording(path: str | os.PathLike) -> list[Record]:
    return list(RecordingReader(path))


def recording_files(source: str | os.PathLike) -> list[Path]:
    """A ``.sfrec`` file, or every ``.sfrec`` file of a directory (sorted)."""
    p = Path(source)
    if p.is_dir():
        return sorted(p.glob(f"*{SUFFIX}"))
    return [p] if p.suffix == SUFFIX and p.exists() else []


def recording_venue(path: str | os.PathLike) -> str | None:
    """The venue named by the first ``meta`` record, else by the file name."""
    for record in RecordingReader(path):
        if record.kind == "meta":
            try:
                return json.loads(record.data).get("venue")
            except ValueError:
                break
        break
    name = Path(path).name
    return name.rsplit("-", 1)[0] if "-" in name else None
