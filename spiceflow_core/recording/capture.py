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

import glob
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RecordKind = Literal["rest", "connect", "send", "recv", "config"]

_REST = re.compile(r"^(?P<url>https?://\S+) -> (?P<ts>\d+(?:\.\d+)?): (?P<body>.*)$", re.S)
_CONNECT = re.compile(r"^(?P<url>wss?://\S+) <-> (?P<ts>\d+(?:\.\d+)?)$")
_SEND = re.compile(r"^(?P<url>wss?://\S+) <- (?P<ts>\d+(?:\.\d+)?): (?P<body>.*)$", re.S)
_RECV = re.compile(r"^(?P<ts>\d+(?:\.\d+)?): (?P<body>.*)$", re.S)


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    kind: RecordKind
    ts: float
    body: str
    url: str = ""


def parse_line(line: str) -> CaptureRecord | None:
    line = line.rstrip("\n")
    if not line:
        return None
    if m := _REST.match(line):
        return CaptureRecord("rest", float(m["ts"]), m["body"], m["url"])
    if m := _CONNECT.match(line):
        return CaptureRecord("connect", float(m["ts"]), "", m["url"])
    if m := _SEND.match(line):
        return CaptureRecord("send", float(m["ts"]), m["body"], m["url"])
    if m := _RECV.match(line):
        return CaptureRecord("recv", float(m["ts"]), m["body"])
    return CaptureRecord("config", 0.0, line)


def read_file(path: str | Path) -> Iterator[CaptureRecord]:
    """Records of one capture file; WebSocket frames carry the URL of their connection."""
    url = ""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = parse_line(line)
            if record is None:
                continue
            if record.kind == "connect":
                url = record.url
            elif record.kind == "recv" and url:
                record = CaptureRecord("recv", record.ts, record.body, url)
            yield record


def capture_files(prefix: str | Path) -> list[Path]:
    prefix = str(prefix)
    files = [Path(p) for p in sorted(glob.glob(glob.escape(prefix) + ".*"))]
    if not files:
        raise FileNotFoundError(f"no capture files match {prefix}.*")
    return files


def read_capture(prefix: str | Path) -> list[CaptureRecord]:
    """Every record of a capture, REST and WebSocket, merged in timestamp order
    (stable, so records of equal time keep their file order)."""
    records: list[CaptureRecord] = []
    for path in capture_files(prefix):
        records.extend(r for r in read_file(path) if r.kind != "config" or path.name.endswith(".0"))
    return sorted(records, key=lambda r: r.ts)
