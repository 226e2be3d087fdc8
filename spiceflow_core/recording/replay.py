"""Offline replay: recorded frames -> the runtime's router and order book actor -> wire
messages.

A replay builds each venue's books with the live runtime's own pieces: a
``SubscriptionTable``, an ``OrderBookActor`` (one ``BookFeed`` per instrument, its
``book.publish`` mode, states and gap handling) and a ``FrameRouter`` that decodes each
frame with the venue session of its recorded connection and hands the events on, exactly
as a live connection's reading task does. What a replay supplies instead of the network:

* the connections: one stand-in per recorded connection, whose session subscribes an
  instrument the first time one of its events arrives (the live Subscribe workflow had
  done so before the frame came);
* REST: recorded depth answers (``Venue.parse_snapshot``) are applied to their book as
  the actor's resync task applies a fetched snapshot. A replay cannot fetch anything, so
  a gap is reported (state ``stale`` then ``resyncing``, with the reason) and the book
  waits for the next snapshot in the recording;
* reference data: the venue's own ``fetch_instruments`` answered from the REST answers
  recorded before the first subscription (a live run records its reference data first),
  merged over the plugin's packaged fixtures, so ``instrument`` carries the normalized id;
* the broadcaster: :class:`ReplayBroadcast` is the live ``BroadcastActor``'s message
  building (the wire structs of ``spiceflow_core.broadcast.wire``) with each message
  handed to ``emit`` (the ZeroMQ ``Publisher.publish``, :meth:`JsonLines.publish`, or a
  test's list) instead of its own socket. A failing ``emit`` ends the replay
  (``OutputError``).

Batches: a live connection routes every frame of one read and then calls
``end_of_batch`` (where ``book.publish = "conflate"`` publishes); frames of one read share
their receive timestamp, so consecutive frames of one connection with the same recorded
timestamp are replayed as one batch.

No sockets and no event loop: records are applied in recorded order as fast as possible,
or paced at ``speed`` x the recorded time.

Sources
-------
* ``.sfrec`` recordings of ``spiceflow record`` (a file or a directory of them;
  see ``spiceflow_core.recording.sfrec``), the venue named in the recording;
* the text capture format of ``shared/recorded`` (a path prefix such as
  ``../shared/recorded/<NAME>``; ``spiceflow_core.recording.capture``), the venue found by
  the prefix's name among the venues' ``capture_prefixes`` unless given.
"""

from __future__ import annotations

import functools
import heapq
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

import msgspec
from loguru import logger

from spiceflow_core.book import BookSync
from spiceflow_core.broadcast.actor import BroadcastActor
from spiceflow_core.broadcast.wire import BookMessage, StatusMessage, WireMessage, topic_for
from spiceflow_core.model import (
    FEED_CHANNEL,
    BookDelta,
    BookSnapshot,
    Event,
    Feed,
    Instrument,
    TopOfBook,
    Trade,
)
from spiceflow_core.plugin.answers import RestError, RestResponse
from spiceflow_core.plugin.contract import Venue, WsSession
from spiceflow_core.recording.capture import read_capture
from spiceflow_core.recording.sfrec import RecordingReader, recording_files, recording_venue
from spiceflow_core.runtime.books import BookFeed, OrderBookActor
from spiceflow_core.runtime.metrics import Metrics
from spiceflow_core.runtime.router import FrameRouter
from spiceflow_core.runtime.subscriptions import Entry, SubscriptionTable

T = TypeVar("T")
#: one merged input of :func:`replay`: (ts_ns, source index, position, item, its replayer)
_Entry = tuple[int, int, int, "Item", "Replayer"]

#: the live default of ``runtime.max_frame_bytes``
MAX_FRAME_BYTES = 4 * 2**20

#: event kinds the replay looks at (plugins decode into subclasses of the model's events,
#: so a class's kind is found with issubclass once and cached in ``_KIND_OF``)
_DELTA, _SNAPSHOT, _TOP, _TRADE, _OTHER = range(1, 6)
_KINDS: tuple[tuple[type, int], ...] = (
    (BookDelta, _DELTA),
    (BookSnapshot, _SNAPSHOT),
    (TopOfBook, _TOP),
    (Trade, _TRADE),
)
_KIND_OF: dict[type, int] = {}
#: the feed whose subscription carries each kind
_FEED_OF_KIND: tuple[Feed | None, ...] = (None, "book", "book", "top", "trades", None)


def _kind_of(cls: type) -> int:
    kind = _KIND_OF.get(cls)
    if kind is None:
        kind = _KIND_OF[cls] = next((k for base, k in _KINDS if issubclass(cls, base)), _OTHER)
    return kind


class ReplayError(Exception):
    """The source cannot be replayed (message says why)."""


class OutputError(Exception):
    """Writing the replay's output failed (the cause is the output's own error)."""


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
    updates: int = 0  # book messages published
    gaps: int = 0
    parse_errors: int = 0
    truncated_bytes: int = 0
    tops: int = 0  # top-of-book messages published (feed "top")
    trades: int = 0  # trade messages published (feed "trades")
    recording_gaps: int = 0  # "gap" records: the recorder's writer fell behind
    lost_records: int = 0  # records those gaps stand for
    gap_reasons: list[str] = field(default_factory=list)


# -- output ---------------------------------------------------------------------------


class ReplayBroadcast(BroadcastActor):
    """The broadcaster of one replayed venue: the live ``BroadcastActor``'s own message
    building (``publish_book``, ``publish_status``, ``publish_trade``, ``publish_top``: the
    calls the order book actor and the router make), so a replay publishes exactly what a
    live run does; ``publish`` hands each message to ``emit`` and counts it."""

    def __init__(self, emit: Callable[[WireMessage], object] | None, stats: ReplayStats) -> None:
        # not BroadcastActor.__init__: that binds the ZeroMQ socket, and a replay's output
        # is the caller's ``emit``. Its state is set up as it would be, with no socket
        # and no other sinks (``publish`` below replaces the sending).
        self.sinks = []
        self.publisher = None
        self.address = ""
        self.status_interval = 0.0
        self.instruments = {}
        self.normalized_ids = {}
        self.metrics = {}
        self.state_sources = {}
        self.log = logger.bind(actor="broadcast")
        self.emit = emit
        self.stats = stats

    def publish(self, message: WireMessage) -> bool:
        stats = self.stats
        if type(message) is BookMessage:
            stats.updates += 1
        elif type(message) is StatusMessage:
            if message.state == "stale" and len(stats.gap_reasons) < 20:
                stats.gap_reasons.append(f"{message.symbol}: {message.reason}")
        elif type(message) is TopOfBook:
            stats.tops += 1
        elif type(message) is Trade:
            stats.trades += 1
        if self.emit is not None:
            try:
                self.emit(message)
            except Exception as exc:
                raise _OutputFailed(exc) from exc
        return True


class _OutputFailed(BaseException):
    """The replay's output failed (``emit`` raised ``error``): the replay ends with an
    ``OutputError``. Not an ``Exception``, so the order book actor's isolation of book
    failures (a failing book resyncs, the others go on) does not take it for one."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class JsonLines:
    """``spiceflow replay --jsonl``: one JSON object per wire message, its fields as on
    the broadcast (``type`` tag included; ``topic_seq`` and ``publish_ts_ns`` stay 0, they
    are stamped by the ZeroMQ publisher). A book line also carries ``best_bid`` and
    ``best_ask``, its first level per side (null when the side is empty), for line tools."""

    def __init__(self, out: IO[bytes]) -> None:
        self._write = out.write
        self._encode_into = msgspec.json.Encoder().encode_into
        #: reused for every line: ``encode_into`` rewrites it from the start and cuts it to
        #: the line's length, which saves an allocation per message
        self._buf = bytearray()

    def publish(self, message: WireMessage) -> bool:
        buf = self._buf
        encode_into = self._encode_into
        encode_into(message, buf)
        if type(message) is BookMessage:
            bids, asks = message.bids, message.asks
            del buf[-1]  # the closing brace: two more fields follow
            buf += b',"best_bid":'
            encode_into(bids[0] if bids else None, buf, -1)
            buf += b',"best_ask":'
            encode_into(asks[0] if asks else None, buf, -1)
            buf += b"}\n"
        else:
            buf += b"\n"
        self._write(buf)
        return True


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


# -- reference data -------------------------------------------------------------------


class RecordedRest:
    """The venue's REST API as recorded (``RestApi``): ``get`` answers with the recorded
    answer of the same path whose query has the requested parameters; anything else was
    not recorded and fails like an unreachable venue."""

    def __init__(self, answers: Iterable[tuple[str, bytes]]) -> None:
        self.answers = list(answers)

    async def get(self, path: str, params: dict[str, Any] | None = None) -> RestResponse:
        wanted = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (params or {}).items()}
        path = urlsplit(path).path
        for url, body in self.answers:
            parts = urlsplit(url)
            if not parts.path.endswith(path):
                continue
            query = dict(parse_qsl(parts.query))
            if all(query.get(k) == v for k, v in wanted.items()):
                return RestResponse(url, 200, {}, body)
        raise RestError(f"GET {path} {wanted or ''}: not in the recording")

    async def get_bytes(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        return (await self.get(path, params)).body


def _fixture_instruments(venue: Venue) -> dict[str, Instrument]:
    folder = venue.fixtures_dir()
    if folder is None or not Path(folder).is_dir():
        return {}
    try:
        files = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
        return {i.symbol: i for i in venue.parse_instruments(files)}
    except Exception:  # fixtures of another market of the plugin, or none
        return {}


def _at_once(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine whose every await is answered at once (``RecordedRest``
    answers from memory), run without an event loop; one that waits on anything else is
    closed and fails."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coroutine.close()
    raise RuntimeError("it waited on something other than the recorded REST answers")


def _recorded_instruments(venue: Venue, answers: list[tuple[str, bytes]]) -> dict[str, Instrument]:
    """The venue's own reference-data loading run on the recorded REST answers; {} when
    the recording does not hold every answer it asks for."""
    if not answers:
        return {}
    try:
        instruments = _at_once(venue.fetch_instruments(RecordedRest(answers)))
    except Exception as exc:
        logger.bind(venue=venue.name).debug("no reference data from the recording: {}", exc)
        return {}
    return {i.symbol: i for i in instruments}


# -- the engine -----------------------------------------------------------------------


class _SubscribingSession:
    """A recorded connection's venue session: every event of an instrument not yet in
    the subscription table subscribes it first (the replay's Subscribe workflow)."""

    def __init__(self, session: WsSession, replayer: Replayer) -> None:
        self._parse = session.parse
        self._sighted = replayer._sighted
        self._stats = replayer.stats
        #: kind -> the symbols seen in events of that kind's feed
        self._seen = tuple(replayer._seen[feed] if feed is not None else set() for feed in _FEED_OF_KIND)

    def parse(self, frame: str | bytes, recv_ts_ns: int) -> list[Event]:
        events = self._parse(frame, recv_ts_ns)
        seen = self._seen
        for event in events:
            kind = _KIND_OF.get(type(event)) or _kind_of(type(event))
            if kind == _DELTA:
                self._stats.deltas += 1
            elif kind == _OTHER:
                continue
            elif kind == _SNAPSHOT:
                self._stats.snapshots += 1
            if event.symbol not in seen[kind]:  # type: ignore[union-attr]
                self._sighted(_FEED_OF_KIND[kind], event.symbol)  # type: ignore[arg-type, union-attr]
        return events


class _RecordedConnection:
    """What the router needs of a connection, for one recorded connection."""

    #: the router's any-frame-is-a-heartbeat rule serves the WebSocketOnly workflow only
    sends_heartbeats = True

    def __init__(self, conn_id: int, session: _SubscribingSession) -> None:
        self.id = conn_id
        self.session = session

    def on_ack(self, ack: object) -> None:
        """Acknowledgements settled subscriptions of the live run; nothing to do."""

    def on_heartbeat(self, heartbeat: object) -> None:
        """A replay answers no heartbeat."""


class Replayer:
    """One venue of a replay: its subscription table, order book actor and router, fed
    recorded items in order (``feed``; ``end_of_batch`` after each batch of frames).

    ``emit`` gets every wire message the replay publishes: books, their states, and the
    exchange's tops and trades when ``feeds`` has ``"top"`` / ``"trades"``."""

    def __init__(
        self,
        venue: Venue,
        *,
        depth: int = 25,
        publish: str = "every",
        feeds: Iterable[Feed] = ("book",),
        emit: Callable[[WireMessage], object] | None = None,
        instruments: dict[str, Instrument] | None = None,
        max_buffer: int = 10_000,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self.venue = venue
        self.feeds = frozenset(feeds)
        self.stats = ReplayStats()
        self.instruments = instruments
        self.broadcast = ReplayBroadcast(emit, self.stats)
        self.table = SubscriptionTable(venue.name)
        self.metrics = Metrics(venue.name)
        self.books = OrderBookActor(
            venue,
            self.table,
            self.metrics,
            self.broadcast,
            depth=depth,
            max_buffer=max_buffer,
            snapshot_depth=venue.snapshot_depth,
            rest=None,
            publish_mode=publish,
        )
        self.router = FrameRouter(
            venue.name,
            self.table,
            self.metrics,
            self.books,
            self.broadcast,
            max_frame_bytes=max_frame_bytes,
        )
        self.connections: dict[int, _RecordedConnection] = {}
        #: feed -> symbols whose events were seen (subscribed when the feed is wanted)
        self._seen: dict[Feed, set[str]] = {"book": set(), "top": set(), "trades": set()}
        #: REST answers seen before the instruments were needed (reference data)
        self._rest_answers: list[tuple[str, bytes]] = []

    # -- instruments and subscriptions ---------------------------------------------------
    def _load_instruments(self) -> dict[str, Instrument]:
        instruments = _fixture_instruments(self.venue)
        instruments.update(_recorded_instruments(self.venue, self._rest_answers))
        self._rest_answers = []
        return instruments

    def instrument(self, symbol: str) -> Instrument | None:
        """The reference data of ``symbol`` (loaded at the first call: the recording's
        reference answers precede its first frame, as in the live run), or None."""
        if self.instruments is None:
            self.instruments = self._load_instruments()
        return self.instruments.get(symbol)

    def _sighted(self, feed: Feed, symbol: str) -> None:
        self._seen[feed].add(symbol)
        if feed not in self.feeds:
            return
        instrument = self.instrument(symbol)
        if instrument is not None:
            self.broadcast.register(instrument)
        else:  # unknown to the reference data: the sequence policy's defaults apply
            instrument = Instrument(
                venue=self.venue.name, symbol=symbol, kind="spot", base="", quote="", tick_size="", lot_size=""
            )
        entry = Entry(
            instrument=instrument,
            feed=feed,
            channels=(),  # nothing is sent: the recording has the live run's subscriptions
            topic=topic_for(FEED_CHANNEL[feed], self.venue.name, symbol),
        )
        if feed == "book":
            entry.book = self.books.new_feed(instrument)
        self.table.add(entry)

    # -- feeding ---------------------------------------------------------------------
    def feed(self, item: Item) -> None:
        """Route one frame, or apply one REST answer (``OutputError`` when ``emit`` fails)."""
        try:
            if item.kind == "recv":
                conn = self.connections.get(item.conn)
                if conn is None:
                    conn = self.connections[item.conn] = _RecordedConnection(
                        item.conn, _SubscribingSession(self.venue.new_session(), self)
                    )
                self.router.route(conn, item.data, item.ts_ns)  # type: ignore[arg-type]
            else:
                self._rest(item)
        except _OutputFailed as failed:
            raise OutputError(f"output failed: {failed.error}") from failed.error

    def _rest(self, item: Item) -> None:
        self.stats.rest += 1
        body = item.data if isinstance(item.data, bytes) else item.data.encode()
        if self.instruments is None:
            self._rest_answers.append((item.url, body))
        try:
            snapshot = self.venue.parse_snapshot(item.url, body, item.ts_ns)
        except ValueError:
            self.metrics.inc("parse_errors")
            return
        if snapshot is None:
            return
        self.stats.snapshots += 1
        if snapshot.symbol not in self._seen["book"]:
            self._sighted("book", snapshot.symbol)
        book = self.table.book(snapshot.symbol)
        if book is not None:
            self.books.on_event(book, snapshot)  # as the actor applies a fetched snapshot

    def end_of_batch(self) -> None:
        try:
            self.router.end_of_batch()
        except _OutputFailed as failed:
            raise OutputError(f"output failed: {failed.error}") from failed.error

    def finish(self) -> ReplayStats:
        """The stats, with the router's and the actor's counters folded in."""
        totals = self.metrics.totals
        self.stats.frames = totals["frames_in"]
        self.stats.gaps = totals["gaps"]
        self.stats.parse_errors = totals["parse_errors"]
        return self.stats

    # -- results -------------------------------------------------------------------
    @property
    def book_feeds(self) -> dict[str, BookFeed]:
        return {feed.symbol: feed for feed in self.table.books()}

    @property
    def syncs(self) -> dict[str, BookSync]:
        return {symbol: feed.sync for symbol, feed in self.book_feeds.items()}


def _reporting(entries: Iterator[_Entry], progress: Callable[[int], object], every: int = 4096) -> Iterator[_Entry]:
    """``entries`` unchanged, calling ``progress`` with the recorded bytes passed on so
    far after every ``every`` entries and at the end (a wrapper, so a replay without a
    progress display pays nothing per item)."""
    done = 0
    for n, entry in enumerate(entries, 1):
        item = entry[3]
        done += len(item.data) + len(item.url)
        if not n % every:
            progress(done)
        yield entry
    progress(done)


def _replay_in_batches(merged: Iterator[_Entry], speed: float | None) -> None:
    """Feed every item, ending a batch (consecutive frames of one connection received at
    the same time) before the next one starts, paced at ``speed`` x the recorded time."""
    batch_rep: Replayer | None = None
    batch_conn = batch_ts = -1
    start_wall = 0.0
    start_ts: int | None = None
    for ts, _, _, item, rep in merged:
        if ts != batch_ts or item.conn != batch_conn or rep is not batch_rep or item.kind != "recv":
            if batch_rep is not None:
                batch_rep.end_of_batch()
            if item.kind == "recv":
                batch_rep, batch_conn, batch_ts = rep, item.conn, ts
            else:
                batch_rep, batch_conn, batch_ts = None, -1, -1
            if speed:
                if start_ts is None:
                    start_wall, start_ts = time.monotonic(), ts
                delay = start_wall + (ts - start_ts) / 1e9 / speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        rep.feed(item)
    if batch_rep is not None:
        batch_rep.end_of_batch()


def replay(
    source: str | Path,
    registry_get: Callable[[str], Venue],
    *,
    venue: str | None = None,
    capture_prefixes: Mapping[str, str] | None = None,
    depth: int = 25,
    speed: float | None = None,
    publish: str = "every",
    feeds: Iterable[Feed] = ("book",),
    emit: Callable[[WireMessage], object] | None = None,
    max_buffer: int = 10_000,
    max_frame_bytes: int = MAX_FRAME_BYTES,
    progress: Callable[[int], object] | None = None,
) -> dict[str, Replayer]:
    """Replay a source (every venue in it, merged in time order); returns the
    replayers (books, stats) by venue name. ``capture_prefixes`` (capture name -> venue)
    finds the venue of a text capture when ``venue`` is not given; ``emit`` gets every
    wire message (see :class:`Replayer`); ``progress``, now and then, the bytes of
    recorded data (frames, answers, URLs) replayed so far."""
    sources = open_source(source, venue, capture_prefixes)
    replayers: dict[str, Replayer] = {}
    streams = []
    for index, (name, factory) in enumerate(sources):
        rep = replayers.get(name)
        if rep is None:
            rep = replayers[name] = Replayer(
                registry_get(name),
                depth=depth,
                publish=publish,
                feeds=feeds,
                emit=emit,
                max_buffer=max_buffer,
                max_frame_bytes=max_frame_bytes,
            )
        # (ts, source index, sequence) keeps equal timestamps in file order
        streams.append(((item.ts_ns, index, n, item, rep) for n, item in enumerate(factory(rep.stats))))
    merged: Iterator[_Entry] = (
        heapq.merge(*streams, key=lambda t: (t[0], t[1], t[2])) if len(streams) > 1 else streams[0]
    )
    if progress is not None:
        merged = _reporting(merged, progress)
    if speed or publish == "conflate":
        _replay_in_batches(merged, speed)
    else:
        # nothing to pace and nothing conflated: a batch's end does nothing (the book
        # actor flushes only conflated books), so every item goes straight in
        for entry in merged:
            entry[4].feed(entry[3])
    for rep in replayers.values():
        rep.finish()
    return replayers
