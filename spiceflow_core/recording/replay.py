"""Offline replay: recorded frames -> the runtime's router and order book actor -> wire
messages.

A replay builds each venue's books with the live runtime's own pieces: a
``SubscriptionTable``, an ``OrderBookActor`` (one ``BookFeed`` per instrument, its
``book.publish`` mode, states and gap handling) and a ``FrameRouter`` that decodes each
frame with the venue session of its recorded connection and hands the events on, exactly
as a live connection's reading task does. What a replay supplies instead of the network:

* the connections: one stand-in per recorded connection, with a fresh venue session;
  the first event of an instrument subscribes it (the router's ``on_unrouted`` hook: the
  live Subscribe workflow had done so before the frame came);
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
    Feed,
    Instrument,
    TopOfBook,
    Trade,
)
from spiceflow_core.plugin.answers import RestError, RestResponse
from spiceflow_core.plugin.contract import Venue, WsSession
from spiceflow_core.recording.capture import iter_capture
from spiceflow_core.recording.sfrec import RecordingReader, frame_of, recording_files, recording_venue
from spiceflow_core.runtime.books import BookFeed, OrderBookActor
from spiceflow_core.runtime.metrics import Metrics
from spiceflow_core.runtime.router import FrameRouter
from spiceflow_core.runtime.subscriptions import Entry, Route, SubscriptionTable

T = TypeVar("T")
#: one merged input of :func:`replay`: (ts_ns, source index, position, item, its replayer)
_Entry = tuple[int, int, int, "Item", "Replayer"]

#: the live default of ``runtime.max_frame_bytes``
MAX_FRAME_BYTES = 4 * 2**20


class ReplayError(Exception):
    """The source cannot be replayed (message says why)."""


class OutputError(Exception):
    """Writing the replay's output failed (the cause is the output's own error)."""


#: One replayable input in time order, ``(ts_ns, kind, data, url, conn)``: a WebSocket
#: frame (``kind`` "recv"; ``conn`` tells connections apart) or a REST answer of ``url``
#: (``kind`` "rest"). A plain tuple: a source builds one per frame, and an instance of a
#: class (dataclass, NamedTuple) costs ~0.15 us more each.
Item = tuple[int, str, "str | bytes", str, int]


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
        super().__init__("", hwm=0, status_interval=0.0, bind=False)  # no socket: ``publish`` emits
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
    for kind, ts, body, url in iter_capture(prefix):
        if kind == "recv":
            conn = conns.get(url) or conns.setdefault(url, len(conns) + 1)
            yield (round(ts * 1e9), kind, body, url, conn)
        elif kind == "rest":
            yield (round(ts * 1e9), kind, body.encode("utf-8"), url, 0)


def _recording_items(path: Path, stats: ReplayStats) -> Iterator[Item]:
    reader = RecordingReader(path)
    for kind, ts_ns, conn, status, url, data in reader:
        if kind == "recv":
            yield (ts_ns, kind, frame_of(data, status), "", conn)
        elif kind == "rest" and status < 300:
            yield (ts_ns, kind, data, url, 0)
        elif kind == "gap":
            stats.recording_gaps += 1
            stats.lost_records += status
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


class _RecordedConnection:
    """What the router needs of a connection, for one recorded connection."""

    #: the router's any-frame-is-a-heartbeat rule serves the WebSocketOnly workflow only
    sends_heartbeats = True

    def __init__(self, conn_id: int, session: WsSession) -> None:
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
            on_unrouted=self._sighted,
        )
        self.connections: dict[int, _RecordedConnection] = {}
        self.route = self.router.route
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

    def _sighted(self, feed: Feed, symbol: str) -> Route | None:
        """The router met an event no subscription routes: the first one of ``symbol``'s
        ``feed`` subscribes it (the replay's Subscribe workflow) when ``feeds`` wants it.
        Returns the symbol's route."""
        seen = self._seen[feed]
        if symbol not in seen:
            seen.add(symbol)
            if feed in self.feeds:
                self._subscribe(feed, symbol)
        return self.table.routes.get(symbol)

    def _subscribe(self, feed: Feed, symbol: str) -> None:
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
        ts_ns, kind, data, url, conn_id = item
        try:
            if kind == "recv":
                conn = self.connections.get(conn_id) or self._connection(conn_id)
                self.route(conn, data, ts_ns)  # type: ignore[arg-type]
            else:
                self._rest(url, data, ts_ns)
        except _OutputFailed as failed:
            raise OutputError(f"output failed: {failed.error}") from failed.error

    def _connection(self, conn_id: int) -> _RecordedConnection:
        conn = self.connections[conn_id] = _RecordedConnection(conn_id, self.venue.new_session())
        return conn

    def _rest(self, url: str, data: str | bytes, ts_ns: int) -> None:
        self.stats.rest += 1
        body = data if isinstance(data, bytes) else data.encode()
        if self.instruments is None:
            self._rest_answers.append((url, body))
        try:
            snapshot = self.venue.parse_snapshot(url, body, ts_ns)
        except ValueError:
            self.metrics.inc("parse_errors")
            return
        if snapshot is None:
            return
        route = self.table.routes.get(snapshot.symbol)
        if route is None or route.book is None:
            route = self._sighted("book", snapshot.symbol)
        book = route.book if route is not None else None
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
        self.stats.deltas = totals["deltas"]
        self.stats.snapshots = totals["snapshots"]
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


def _item_size(item: Item) -> int:
    _, _, data, url, _ = item
    return len(data) + len(url)


def _entry_size(entry: _Entry) -> int:
    return _item_size(entry[3])


def _reporting(
    entries: Iterator[T], size: Callable[[T], int], progress: Callable[[int], object], every: int = 4096
) -> Iterator[T]:
    """``entries`` unchanged, calling ``progress`` with the recorded bytes (``size`` of
    each entry) passed on so far after every ``every`` entries and at the end (a wrapper,
    so a replay without a progress display pays nothing per entry)."""
    done = 0
    for n, entry in enumerate(entries, 1):
        done += size(entry)
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
        _, kind, _, _, conn = item
        if ts != batch_ts or conn != batch_conn or rep is not batch_rep or kind != "recv":
            if batch_rep is not None:
                batch_rep.end_of_batch()
            if kind == "recv":
                batch_rep, batch_conn, batch_ts = rep, conn, ts
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
    inputs: list[tuple[Iterator[Item], Replayer]] = []
    for name, factory in sources:
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
        inputs.append((factory(rep.stats), rep))
    if len(inputs) == 1 and not speed and publish != "conflate":
        # the common case, one source with nothing to pace or conflate (a batch's end
        # does nothing then: the book actor flushes only conflated books): every item
        # goes straight in, with no merge bookkeeping per item
        items, rep = inputs[0]
        feed = rep.feed
        for item in items if progress is None else _reporting(items, _item_size, progress):
            feed(item)
    else:
        # (ts, source index, sequence) keeps equal timestamps in file order
        streams = [
            ((item[0], index, n, item, rep) for n, item in enumerate(items))
            for index, (items, rep) in enumerate(inputs)
        ]
        merged: Iterator[_Entry] = (
            heapq.merge(*streams, key=lambda t: (t[0], t[1], t[2])) if len(streams) > 1 else streams[0]
        )
        if progress is not None:
            merged = _reporting(merged, _entry_size, progress)
        _replay_in_batches(merged, speed)
    for rep in replayers.values():
        rep.finish()
    return replayers
