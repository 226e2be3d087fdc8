"""Reader for the text capture format of ``shared/recorded/`` (cryptofeed's sample data).

Lines:
- REST: ``URL -> RECEIVE_TS: BODY``
- WebSocket opened: ``URL <-> CONNECT_TS``
- client -> server: ``URL <- SEND_TS: FRAME``
- server -> client: ``RECEIVE_TS: FRAME``

A capture named by a path prefix (``.../<NAME>``) is the set of files
``PREFIX.0`` (REST reference data + config), ``PREFIX.http.*`` (REST snapshots) and
``PREFIX.ws.*`` (WebSocket sessions).
"""

from __future__ import annotations

import functools
import glob
import heapq
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal, NamedTuple

RecordKind = Literal["rest", "connect", "send", "recv", "config"]

_REST = re.compile(r"^(?P<url>https?://\S+) -> (?P<ts>\d+(?:\.\d+)?): (?P<body>.*)$", re.S)
_CONNECT = re.compile(r"^(?P<url>wss?://\S+) <-> (?P<ts>\d+(?:\.\d+)?)$")
_SEND = re.compile(r"^(?P<url>wss?://\S+) <- (?P<ts>\d+(?:\.\d+)?): (?P<body>.*)$", re.S)


class CaptureRecord(NamedTuple):
    # a tuple: a frozen dataclass costs a microsecond per record to build, and a
    # capture holds one record per frame
    kind: RecordKind
    ts: float
    body: str
    url: str = ""


#: fields -> CaptureRecord without ``CaptureRecord.__new__``'s Python-level call (~0.1 us
#: per received frame)
_received_record: Callable[[tuple[RecordKind, float, str, str]], CaptureRecord] = functools.partial(
    tuple.__new__, CaptureRecord
)
_BY_TIME = operator.attrgetter("ts")


def parse_line(line: str, url: str = "") -> CaptureRecord | None:
    """One line (its newline may still be there); a received frame carries ``url``, the
    URL of the connection it came on."""
    # received frames are nearly every line: they start with a digit, which no other
    # kind does, and are split without a regex
    if line[:1].isdecimal() and (received := _received(line, url)) is not None:
        return received
    line = line.rstrip("\n")
    if not line:
        return None
    if m := _REST.match(line):
        return CaptureRecord("rest", float(m["ts"]), m["body"], m["url"])
    if m := _CONNECT.match(line):
        return CaptureRecord("connect", float(m["ts"]), "", m["url"])
    if m := _SEND.match(line):
        return CaptureRecord("send", float(m["ts"]), m["body"], m["url"])
    return CaptureRecord("config", 0.0, line)


def _received(line: str, url: str) -> CaptureRecord | None:
    """``TS: FRAME`` (TS: digits, optionally a dot and more digits), else None."""
    ts, sep, body = line.partition(": ")
    whole, dot, fraction = ts.partition(".")
    if not sep or not whole.isdecimal() or (dot and not fraction.isdecimal()):
        return None
    return _received_record(("recv", float(ts), body[:-1] if body.endswith("\n") else body, url))


def read_file(path: str | Path) -> Iterator[CaptureRecord]:
    """Records of one capture file; WebSocket frames carry the URL of their connection."""
    url = ""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = parse_line(line, url)
            if record is None:
                continue
            if record.kind == "connect":
                url = record.url
            yield record


def capture_files(prefix: str | Path) -> list[Path]:
    prefix = str(prefix)
    files = [Path(p) for p in sorted(glob.glob(glob.escape(prefix) + ".*"))]
    if not files:
        raise FileNotFoundError(f"no capture files match {prefix}.*")
    return files


def iter_capture(prefix: str | Path) -> Iterator[CaptureRecord]:
    """Every record of a capture, REST and WebSocket, merged in timestamp order as the
    files are read (a capture of a day is not held in memory). Each WebSocket file keeps
    the order its frames were received in; the REST files are sorted by time; records of
    equal time keep the files' order."""
    streams: list[Iterable[CaptureRecord]] = []
    for path in capture_files(prefix):
        if ".ws." in path.name:
            streams.append(r for r in read_file(path) if r.kind != "config")
            continue
        keep_config = path.name.endswith(".0")  # the file that holds the configuration
        records = [r for r in read_file(path) if keep_config or r.kind != "config"]
        records.sort(key=_BY_TIME)
        streams.append(records)
    return heapq.merge(*streams, key=_BY_TIME)


def read_capture(prefix: str | Path) -> list[CaptureRecord]:
    """:func:`iter_capture` as a list."""
    return list(iter_capture(prefix))
