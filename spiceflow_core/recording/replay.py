"""Offline replay: recorded frames -> venue parser -> book engine -> book updates.

Venue-independent: the plugin supplies ``new_session().parse`` (frames -> events),
``parse_snapshot`` (a recorded REST answer -> ``BookSnapshot``, REST-resync venues) and
``sequence_policy``; everything else is the core ``BookSync``. No sockets, no event
loop: records are applied in recorded order as fast as possible, or paced at
``speed`` x the recorded time.

Sources
-------
* ``.sfrec`` recordings of ``spiceflow record`` (a file or a directory of them;
  see ``spiceflow_core.recording.sfrec``), the venue named in the recording;
* the text capture format of ``shared/recorded`` (a path prefix such as
  ``../shared/recorded/<NAME>``; ``spiceflow_core.recording.capture``), the venue found by
  the prefix's name among the venues' ``capture_prefixes`` unless given.

Each book update (the book became in sync, or a delta was applied to an in-sync book)
is handed to a sink as a :class:`BookUpdate`: venue, symbol, exchange sequence,
exchange timestamp, local receive timestamp, top-N levels exactly as the exchange
sent them. ``publish="top-changed"`` (the ``book.publish`` setting) only emits when
the top-N levels changed.
"""

from __future__ import annotations

import functools
import heapq
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from spiceflow_core.book import BookSync, BookUpdated, GapDetected, Synced, SyncState
from spiceflow_core.model import BookDelta, BookSnapshot, Instrument, TopOfBook
from spiceflow_core.plugin.contract import ProtocolError, Venue
from spiceflow_core.recording.capture import read_capture
from spiceflow_core.recording.sfrec import RecordingReader, recording_files, recording_venue


class ReplayError(Exception):
    """The source cannot be replayed (message says why)."""


class BookUpdate(msgspec.Struct, kw_only=True):
    """One line of ``spiceflow replay --jsonl``."""

    venue: str
    symbol: str
    sequence: int
    exchange_ts_ms: int | None
    recv_ts_ns: int
    best_bid: tuple[str, str] | None
    best_ask: tuple[str, str] | None
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    instrument: str = ""


@dataclass(slots=True)
class Item:
    """One replayable input in time order: a WebSocket frame (``kind="recv"``, ``conn``
    tells connections apart) or a REST answer (``kind="rest"``)."""

    ts_ns: int
    kind: str
    data: str | bytes
    url: str = ""
    conn: int = 0


@dataclass
class ReplayStats:
    frames: int = 0
    rest: int = 0
    snapshots: int = 0
    deltas: int = 0
    updates: int = 0
    gaps: int = 0
    parse_errors: int = 0
    truncated_bytes: int = 0
    tops: int = 0
    recording_gaps: int = 0  # "gap" records: the recorder's writer fell behind
    lost_records: int = 0  # records those gaps stand for
    gap_reasons: list[str] = field(default_factory=list)


# -- sources --------------------------------------------------------------------------


def capture_venue(prefix: str | Path, capture_prefixes: Mapping[str, str]) -> str | None:
    """The venue of a capture: its file name looked up in ``capture_prefixes`` (capture
    name -> venue, ``VenueRegistry.capture_prefixes()``)."""
    return capture_prefixes.get(Path(prefix).name.upper())


def _capture_items(prefix: str | Path) -> Iterator[Item]:
    conns: dict[str, int] = {}
    for rec in read_capture(prefix):
        ts = round(rec.ts * 1e9)
        if rec.kind == "recv":
            yield Item(ts, "recv", rec.body, rec.url, conns.setdefault(rec.url, len(conns) + 1))
        elif rec.kind == "rest":
            yield Item(ts, "rest", rec.body.encode("utf-8"), rec.url)


def _recording_items(path: Path, stats: ReplayStats) -> Iterator[Item]:
    reader = RecordingReader(path)
    for rec in reader:
        if rec.kind == "recv":
            yield Item(rec.ts_ns, "recv", rec.frame, "", rec.conn)
        elif rec.kind == "rest" and rec.status < 300:
            yield Item(rec.ts_ns, "rest", rec.data, rec.url)
        elif rec.kind == "gap":
            stats.recording_gaps += 1
            stats.lost_records += rec.status
    stats.truncated_bytes += reader.truncated


def open_source(
    source: str | Path, venue: str | None = None, capture_prefixes: Mapping[str, str] | None = None
) -> list[tuple[str, Callable[[ReplayStats], Iterator[Item]]]]:
    """``[(venue name, items(stats) iterator factory)]`` for a recording file/directory
    or a capture prefix (its venue looked up in ``capture_prefixes`` unless given)."""
    files = recording_files(source)
    if files:
        out: list[tuple[str, Callable[[ReplayStats], Iterator[Item]]]] = []
        for f in files:
            name = venue or recording_venue(f)
            if not name:
                raise ReplayError(f"{f}: cannot tell the venue (give --venue)")
            out.append((name, functools.partial(_recording_items, f)))
        return out
    if Path(source).is_dir():
        raise ReplayError(f"{source}: no .sfrec recordings in this directory")
    prefixes = capture_prefixes or {}
    name = venue or capture_venue(source, prefixes)
    if not name:
        raise ReplayError(
            f"{source}: not a recording, and the capture prefix {Path(source).name!r} names no installed venue "
            f"(known: {', '.join(sorted(prefixes)) or 'none'}); give --venue"
        )
    try:
        from spiceflow_core.recording.capture import capture_files

        capture_files(source)
    except FileNotFoundError as exc:
        raise ReplayError(str(exc)) from None
    return [(name, lambda stats: _capture_items(source))]


# -- the engine -----------------------------------------------------------------------


class Replayer:
    """Feeds items of one venue through its parser and one ``BookSync`` per symbol.

    ``on_update(BookUpdate)`` gets every published book state, ``on_top(TopOfBook)``
    the exchange's own best bid/ask events (for cross-checks).
    """

    def __init__(
        self,
        venue: Venue,
        *,
        depth: int = 25,
        publish: str = "every",
        on_update: Callable[[BookUpdate], None] | None = None,
        on_top: Callable[[TopOfBook], None] | None = None,
        instruments: dict[str, Instrument] | None = None,
        max_buffer: int = 10_000,
    ) -> None:
        self.venue = venue
        self.depth = depth
        self.publish = publish
        self.on_update = on_update
        self.on_top = on_top
        self.max_buffer = max_buffer
        self.instruments = instruments
        self.syncs: dict[str, BookSync] = {}
        self.sessions: dict[int, object] = {}
        self.stats = ReplayStats()
        self._last_top: dict[str, tuple] = {}

    # instruments only refine the sequence policy / tick scale; a replay never needs
    # the network, so they come from the plugin's packaged fixtures when it has them
    def _instrument(self, symbol: str) -> Instrument:
        if self.instruments is None:
            self.instruments = {}
            folder = self.venue.fixtures_dir()
            if folder is not None and Path(folder).is_dir():
                try:
                    files = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
                    self.instruments = {i.symbol: i for i in self.venue.parse_instruments(files)}
                except Exception:  # fixtures of another market, or none: fall back
                    self.instruments = {}
        inst = self.instruments.get(symbol)
        if inst is None:
            inst = Instrument(
                venue=self.venue.name, symbol=symbol, kind="spot", base="", quote="", tick_size="", lot_size=""
            )
        return inst

    def sync_for(self, symbol: str) -> BookSync:
        sync = self.syncs.get(symbol)
        if sync is None:
            inst = self._instrument(symbol)
            sync = self.syncs[symbol] = BookSync(
                self.venue.name, symbol, self.venue.sequence_policy(inst), max_buffer=self.max_buffer
            )
        return sync

    def feed(self, item: Item) -> None:
        if item.kind == "rest":
            self.stats.rest += 1
            body = item.data if isinstance(item.data, bytes) else item.data.encode()
            try:
                snapshot = self.venue.parse_snapshot(item.url, body, item.ts_ns)
            except ValueError:
                self.stats.parse_errors += 1
                return
            if snapshot is not None:
                self.stats.snapshots += 1
                self._apply(snapshot)
            return
        self.stats.frames += 1
        session = self.sessions.get(item.conn)
        if session is None:
            session = self.sessions[item.conn] = self.venue.new_session()
        try:
            events = session.parse(item.data, item.ts_ns)  # type: ignore[attr-defined]
        except ProtocolError:
            self.stats.parse_errors += 1
            return
        for event in events:
            if isinstance(event, (BookDelta, BookSnapshot)):
                if isinstance(event, BookDelta):
                    self.stats.deltas += 1
                else:
                    self.stats.snapshots += 1
                self._apply(event)
            elif isinstance(event, TopOfBook):
                self.stats.tops += 1
                if self.on_top is not None:
                    self.on_top(event)

    def _apply(self, event: BookDelta | BookSnapshot) -> None:
        sync = self.sync_for(event.symbol)
        out = sync.on_delta(event) if isinstance(event, BookDelta) else sync.on_snapshot(event)
        for ev in out:
            if isinstance(ev, BookUpdated):
                self._emit(sync, False)
            elif isinstance(ev, Synced):
                self._emit(sync, True)
            elif isinstance(ev, GapDetected):
                self.stats.gaps += 1
                if len(self.stats.gap_reasons) < 20:
                    self.stats.gap_reasons.append(f"{event.symbol}: {ev.reason}")

    def _emit(self, sync: BookSync, force: bool) -> None:
        if sync.state is not SyncState.SYNCED:
            return
        bids, asks = sync.book.top(self.depth)
        if self.publish == "top-changed" and not force:
            key = (bids, asks)
            if self._last_top.get(sync.symbol) == key:
                return
            self._last_top[sync.symbol] = key
        self.stats.updates += 1
        if self.on_update is None:
            return
        inst = self.instruments.get(sync.symbol) if self.instruments else None
        self.on_update(
            BookUpdate(
                venue=self.venue.name,
                symbol=sync.symbol,
                instrument=inst.normalized if inst is not None else "",
                sequence=sync.last_sequence,  # type: ignore[arg-type]
                exchange_ts_ms=sync.last_exchange_ts_ms,
                recv_ts_ns=sync.last_recv_ts_ns,
                best_bid=bids[0] if bids else None,
                best_ask=asks[0] if asks else None,
                bids=bids,
                asks=asks,
            )
        )


def replay(
    source: str | Path,
    registry_get: Callable[[str], Venue],
    *,
    venue: str | None = None,
    capture_prefixes: Mapping[str, str] | None = None,
    depth: int = 25,
    speed: float | None = None,
    publish: str = "every",
    on_update: Callable[[BookUpdate], None] | None = None,
    on_top: Callable[[TopOfBook], None] | None = None,
) -> dict[str, Replayer]:
    """Replay a source (every venue in it, merged in time order); returns the
    replayers (books, stats) by venue name. ``capture_prefixes`` (capture name -> venue)
    finds the venue of a text capture when ``venue`` is not given."""
    sources = open_source(source, venue, capture_prefixes)
    replayers: dict[str, Replayer] = {}
    streams = []
    for index, (name, factory) in enumerate(sources):
        rep = replayers.get(name)
        if rep is None:
            rep = replayers[name] = Replayer(
                registry_get(name), depth=depth, publish=publish, on_update=on_update, on_top=on_top
            )
        # (ts, source index, sequence) keeps equal timestamps in file order
        streams.append(((item.ts_ns, index, n, item, rep) for n, item in enumerate(factory(rep.stats))))
    merged = heapq.merge(*streams, key=lambda t: (t[0], t[1], t[2])) if len(streams) > 1 else streams[0]
    if speed:
        start_wall = time.monotonic()
        start_ts: int | None = None
        for ts, _, _, item, rep in merged:
            if start_ts is None:
                start_ts = ts
            delay = start_wall + (ts - start_ts) / 1e9 / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            rep.feed(item)
    else:
        for _, _, _, item, rep in merged:
            rep.feed(item)
    return replayers
