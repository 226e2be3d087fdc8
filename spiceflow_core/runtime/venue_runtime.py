"""One venue at run time: its actors, its subscription table and the supervisor task
that reconciles the table with the venue.

Desired state and reconciliation: configuration, the control API and the CLI change
what is wanted by sending commands (``workflows``) over a bounded channel to the
supervisor task (``_serve_commands``), which alone edits the subscription table and
owns the task group every connection runs in. Each connection reconciles its channels
with the table by itself (``connection``), batching whatever changed meanwhile into as
few venue messages as the venue's rate allows.

Subscribe, one step at a time: broadcaster ready -> order book created -> entry in the
table (the router routes the symbol; a connection with room carries its channels) ->
the venue's acknowledgement (none awaited in the WebSocketOnly workflow) -> confirmed
(REST venues then fetch the snapshot). A refusal or a timeout rolls the steps back.
Unsubscribe runs the reverse and closes a connection left empty.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from loguru import logger

from spiceflow_core.broadcast.wire import topic_for
from spiceflow_core.config import Settings, VenueSettings
from spiceflow_core.instruments import resolve, select
from spiceflow_core.model import FEED_CHANNEL, Feed, Instrument
from spiceflow_core.plugin.contract import Endpoints, Venue
from spiceflow_core.plugin.rest import RestClient
from spiceflow_core.runtime.books import OrderBookActor
from spiceflow_core.runtime.connection import WebSocketActor
from spiceflow_core.runtime.metrics import Metrics
from spiceflow_core.runtime.reference import ReferenceDataActor
from spiceflow_core.runtime.router import FrameRouter
from spiceflow_core.runtime.subscriptions import Entry, Subscription, SubscriptionTable
from spiceflow_core.runtime.supervision import restart_on_failure
from spiceflow_core.runtime.workflows import (
    Command,
    DuplicateSubscription,
    NotSubscribed,
    Reply,
    Rotate,
    Subscribe,
    SubscriptionRefused,
    SubscriptionTimeout,
    Unsubscribe,
)

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.broadcast.actor import BroadcastActor

__all__ = [
    "DuplicateSubscription",
    "NotSubscribed",
    "Subscription",
    "SubscriptionRefused",
    "SubscriptionTimeout",
    "VenueRuntime",
]

#: commands waiting for the supervisor; a full channel makes the sender wait
COMMAND_BUFFER = 1000

_conn_ids = itertools.count(1)
#: an actor that ran this long before failing was healthy: its backoff starts over
ACTOR_HEALTHY_AFTER_S = 30.0


class VenueRuntime:
    def __init__(
        self,
        venue: Venue,
        settings: Settings,
        endpoints: Endpoints,
        broadcaster: BroadcastActor | None,
        *,
        ws_only: bool = False,
        recorder: Any = None,
        subscribe_configured: bool = True,
    ) -> None:
        self.venue = venue
        #: False when a cluster decides what this process subscribes (``spiceflow_core.cluster``)
        self.subscribe_configured = subscribe_configured
        self.settings = settings
        self.vsettings: VenueSettings = settings.venues.get(venue.name, VenueSettings())
        self.endpoints = endpoints
        self.broadcaster = broadcaster
        self.ws_only = ws_only
        self.recorder = recorder
        self.metrics = Metrics(venue.name)
        if broadcaster is not None:
            broadcaster.metrics[venue.name] = self.metrics
        self.rest = RestClient(
            endpoints.rest_url,
            min_interval=venue.rest_min_interval,
            timeout=settings.runtime.rest_timeout,
            on_response=recorder.rest if recorder is not None else None,
        )
        self.reference = ReferenceDataActor(
            venue,
            use_fixtures=settings.use_fixtures,
            fixtures_root=settings.fixtures_dir,
            fixtures_override=self.vsettings.fixtures,
            rest=self.rest,
        )
        self.instruments: dict[str, Instrument] = {}
        self.table = SubscriptionTable(venue.name)
        #: the connection actors, by id (their channels are derived from the table)
        self.connections: dict[int, WebSocketActor] = {}
        self.first_heartbeat = anyio.Event()
        self.first_heartbeat_ms: float | None = None
        self.connected_ms: float | None = None
        self._started = time.monotonic()
        self._commands_send, self._commands_recv = anyio.create_memory_object_stream[Command](COMMAND_BUFFER)
        self.log = logger.bind(venue=venue.name, actor="workflow")
        self.books: OrderBookActor | None = None
        if not ws_only:
            self.books = OrderBookActor(
                venue,
                self.table,
                self.metrics,
                broadcaster,
                depth=settings.book.depth,
                max_buffer=settings.book.max_buffer,
                snapshot_depth=self.vsettings.snapshot_depth or venue.snapshot_depth,
                rest=self.rest,
                publish_mode=settings.book.publish,
            )
            if broadcaster is not None:
                broadcaster.state_sources[venue.name] = self.books.current_states
        self.router = FrameRouter(
            venue.name,
            self.table,
            self.metrics,
            self.books,
            broadcaster,
            max_frame_bytes=settings.runtime.max_frame_bytes,
            recorder=recorder,
            on_heartbeat=self._on_heartbeat,
        )

    # -- lifecycle -------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Load reference data, start the actors, subscribe the configured instruments,
        then run until cancelled."""
        try:
            self.instruments = await self.reference.load()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._serve_commands)
                if self.books is not None:
                    tg.start_soon(self._supervised, "books", self.books.run_resyncs, self._resubscribe_book)
                chosen = self.configured_instruments() if self.subscribe_configured else []
                self.log.info("subscribing {} instrument(s): {}", len(chosen), ", ".join(i.symbol for i in chosen[:10]))
                for feed in self.vsettings.feeds:
                    if chosen:
                        await self.subscribe_many([i.symbol for i in chosen], feed)
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):
                await self.rest.aclose()

    async def _supervised(self, name: str, run: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Restart an actor that failed, with backoff; its state lives outside the task
        (requests queued for it wait), so nothing is lost while it restarts."""

        def failed(exc: Exception) -> None:
            self.metrics.inc("actor_restarts")
            self.log.bind(actor=name).opt(exception=exc).error(
                "actor {} failed ({}: {}); restarting it", name, type(exc).__name__, exc
            )

        await restart_on_failure(
            lambda: run(*args), on_failure=failed, initial=0.1, maximum=10.0, healthy_after=ACTOR_HEALTHY_AFTER_S
        )

    def configured_instruments(self) -> list[Instrument]:
        names = self.vsettings.instruments
        if names is None:
            names = [] if self.vsettings.select else list(self.venue.default_instruments)
        return select(self.instruments, names, list(self.vsettings.select), self.venue.name)

    async def shutdown(self) -> None:
        """Graceful stop: unsubscribe where the venue supports it (bounded in time)."""
        for conn in list(self.connections.values()):
            conn.stop(graceful=True)
        with anyio.move_on_after(0.5, shield=True):
            for conn in list(self.connections.values()):
                await conn.finished.wait()
        for conn in list(self.connections.values()):
            conn.stop()

    # -- commands (the public API of a running venue) ---------------------------------
    async def _send(self, command: Command) -> Any:
        await self._commands_send.send(command)
        return await command.reply.wait()

    async def subscribe(self, name: str, feed: Feed = "book") -> Subscription:
        return (await self.subscribe_many([name], feed))[0]

    async def subscribe_many(self, names: list[str], feed: Feed = "book") -> list[Subscription]:
        """The Subscribe workflow for one or several instruments at once."""
        result: list[Subscription] = await self._send(Subscribe(list(names), feed))
        return result

    async def unsubscribe(self, name: str, feed: Feed = "book") -> Subscription:
        result: Subscription = await self._send(Unsubscribe(name, feed))
        return result

    def resolve(self, name: str) -> Instrument:
        return resolve(self.instruments, name, self.venue.name)

    # -- the supervisor ---------------------------------------------------------------
    async def _serve_commands(self) -> None:
        """The only task that edits the table; every connection runs in its group."""
        async with anyio.create_task_group() as tg:
            async for command in self._commands_recv:
                try:
                    if isinstance(command, Subscribe):
                        self._subscribe(tg, command)
                    elif isinstance(command, Unsubscribe):
                        self._unsubscribe(tg, command)
                    else:
                        self._rotate(tg, command)
                except Exception as exc:
                    command.reply.fail(exc)

    def _subscribe(self, tg: TaskGroup, command: Subscribe) -> None:
        feed = command.feed
        instruments = list({i.symbol: i for i in (self.resolve(n) for n in command.names)}.values())
        for instrument in instruments:
            if (instrument.symbol, feed) in self.table:
                raise DuplicateSubscription(f"{self.venue.name} {instrument.symbol} {feed} is already subscribed")
        entries: list[Entry] = []
        try:
            for instrument in instruments:
                entries.append(self._add_entry(tg, instrument, feed))
        except BaseException:
            for entry in entries:
                self._remove(entry)
            raise
        for conn_id in {e.connection for e in entries if e.connection is not None}:  # _add_entry assigned each
            self.connections[conn_id].poke()
        tg.start_soon(self._confirm, entries, command.reply)

    def _add_entry(self, tg: TaskGroup, instrument: Instrument, feed: Feed) -> Entry:
        """Subscribe steps 1-4 for one instrument."""
        log = self.log.bind(instrument=instrument.symbol)
        if self.broadcaster is not None:
            self.broadcaster.register(instrument)
            log.debug("subscribe step 1/5: broadcaster ready")
        entry = Entry(
            instrument=instrument,
            feed=feed,
            channels=tuple(self.venue.channels(instrument, feed)),
            topic=topic_for(FEED_CHANNEL[feed], self.venue.name, instrument.symbol),
        )
        if feed == "book" and self.books is not None:
            entry.book = self.books.new_feed(instrument)
            log.debug("subscribe step 2/5: order book created")
        self.table.add(entry)
        log.debug("subscribe step 3/5: router routes {}", instrument.symbol)
        conn = self._connection_for(tg, len(entry.channels))
        self.table.assign(entry, conn.id)
        log.debug("subscribe step 4/5: {} channel(s) on connection {}", len(entry.channels), conn.id)
        return entry

    async def _confirm(self, entries: list[Entry], reply: Reply) -> None:
        """Subscribe step 5: wait for every entry's acknowledgement, then confirm; a
        refusal or a timeout rolls the whole command back."""
        timeout = 2 * self.settings.runtime.ack_timeout + 10
        with anyio.move_on_after(timeout):
            for entry in entries:
                await entry.settled.wait()
        gone = [e for e in entries if self.table.get(e.key) is not e]
        failed = [e for e in entries if e.error is not None]
        waiting = [e for e in entries if not e.settled.is_set()]
        if gone or failed or waiting:
            for entry in entries:
                self._remove(entry)
            if failed:
                reply.fail(SubscriptionRefused(f"{failed[0].symbol}: {failed[0].error}"))
            elif gone:
                reply.fail(
                    NotSubscribed(f"{self.venue.name} {gone[0].symbol} was unsubscribed before it was confirmed")
                )
            else:
                conn = self.connections.get(waiting[0].connection or -1)
                seen = (conn.last_error if conn is not None else None) or "connected, no acknowledgement"
                reply.fail(
                    SubscriptionTimeout(
                        f"{self.venue.name} {waiting[0].symbol}: not confirmed within {timeout:.0f}s "
                        f"({self.endpoints.ws_url}: {seen})"
                    )
                )
            return
        for entry in entries:
            self.log.bind(instrument=entry.symbol).info(
                "subscribed {} ({}) -> topic {}",
                f"{self.venue.name}:{entry.symbol}:{entry.feed}",
                "sent" if self.ws_only else "acknowledged",
                entry.topic,
            )
            if entry.book is not None and self.books is not None:
                self.books.request_snapshot(entry.book)
        self.log.debug("subscribe step 5/5: {} confirmed", len(entries))
        reply.set([self.describe(e) for e in entries])

    def _remove(self, entry: Entry) -> None:
        if self.table.get(entry.key) is entry:
            self.table.remove(entry.key)
            if entry.book is not None and self.books is not None:
                self.books.drop(entry.book)
            if entry.connection in self.connections:
                self.connections[entry.connection].poke()

    def _unsubscribe(self, tg: TaskGroup, command: Unsubscribe) -> None:
        instrument = self.resolve(command.name)
        entry = self.table.get((instrument.symbol, command.feed))
        if entry is None:
            raise NotSubscribed(f"{self.venue.name} {instrument.symbol} {command.feed} is not subscribed")
        log = self.log.bind(instrument=instrument.symbol)
        self._remove(entry)
        log.debug("unsubscribe step 1/3: router no longer routes {}, order book dropped", instrument.symbol)
        tg.start_soon(self._confirm_unsubscribe, entry, command.reply)

    async def _confirm_unsubscribe(self, entry: Entry, reply: Reply) -> None:
        conn = self.connections.get(entry.connection or -1)
        if conn is not None:
            with anyio.move_on_after(self.settings.runtime.ack_timeout):
                while conn.up and any(c in conn.on_wire for c in entry.channels):
                    await anyio.sleep(0.02)
            self.log.bind(instrument=entry.symbol).debug("unsubscribe step 2/3: WebSocket unsubscription done")
        self._close_idle_connections()
        self.log.bind(instrument=entry.symbol).info("unsubscribed {}:{}:{}", self.venue.name, entry.symbol, entry.feed)
        reply.set(msgspec.structs.replace(self._view(entry), state="unsubscribed"))

    # -- connections ----------------------------------------------------------------------
    def _connection_for(self, tg: TaskGroup, n_channels: int) -> WebSocketActor:
        """A connection with room for ``n_channels`` more streams, or a new one."""
        limit = self.vsettings.max_streams_per_connection or self.venue.max_streams_per_connection
        for conn in self.connections.values():
            if conn._retiring or conn._stopping:
                continue
            if limit - len(self.table.channels_on(conn.id)) >= n_channels:
                return conn
        return self._new_connection(tg, limit)

    def _new_connection(self, tg: TaskGroup, limit: int) -> WebSocketActor:
        conn = WebSocketActor(
            next(_conn_ids),
            self.venue,
            self.endpoints.ws_url,
            self.table,
            self.router,
            self.settings.runtime,
            self,
            wait_acks=not self.ws_only,
            max_age=self.settings.runtime.max_connection_age or self.venue.max_connection_age,
            stream_limit=limit,
            recorder=self.recorder,
        )
        self.connections[conn.id] = conn
        tg.start_soon(self._run_connection, conn)
        return conn

    async def _run_connection(self, conn: WebSocketActor) -> None:
        try:
            await conn.run()
        finally:
            if self.connections.get(conn.id) is conn:
                del self.connections[conn.id]

    def _close_idle_connections(self) -> None:
        used = self.table.connections()
        for conn in list(self.connections.values()):
            if conn.id not in used and not conn._retiring:
                self.log.info("closing connection {}: no subscriptions left", conn.id)
                conn.stop()
                del self.connections[conn.id]

    def _rotate(self, tg: TaskGroup, command: Rotate) -> None:
        old = self.connections.get(command.connection)
        if old is None or old._retiring:
            return
        new = self._new_connection(tg, old.stream_limit)
        old.retire()
        for entry in self.table.on(old.id):
            self.table.assign(entry, new.id)
        new.poke()
        tg.start_soon(self._finish_rotation, old, new)

    async def _finish_rotation(self, old: WebSocketActor, new: WebSocketActor) -> None:
        """Make before break: the new connection subscribes the same streams while the
        old one still delivers (duplicates are dropped by the books' sequence checks);
        once it is subscribed and delivering, the old one is stopped."""
        with anyio.move_on_after(self.settings.runtime.ack_timeout * 3):
            while not (all(e.on_wire for e in self.table.on(new.id)) and new.frames > 0):
                await anyio.sleep(0.01)
            old.stop()
            self.connections.pop(old.id, None)
            self.metrics.inc("rotations")
            self.log.info("connection {} replaced by {}", old.id, new.id)
            return
        self.log.warning("replacement of connection {} did not come up; keeping the old one", old.id)
        for entry in self.table.on(new.id):
            self.table.assign(entry, old.id)
        new.stop()
        self.connections.pop(new.id, None)
        old._retiring = False
        old.poke()

    async def _resubscribe_book(self, symbol: str) -> None:
        """Resync of resubscribe venues: unsubscribe and subscribe the book channel again
        so the venue sends a fresh snapshot; returns once the book is in sync."""
        entry = self.table.get((symbol, "book"))
        if entry is None or entry.book is None:
            return
        conn = self.connections.get(entry.connection or -1)
        if conn is None:
            raise RuntimeError(f"{symbol}: no connection carries its book")
        conn.refresh(list(entry.channels))
        with anyio.fail_after(2 * self.settings.runtime.ack_timeout):
            while self.table.get((symbol, "book")) is entry and entry.book.state != "synced":
                await anyio.sleep(0.02)

    # -- ConnectionEvents ------------------------------------------------------------------
    def on_connected(self, conn: WebSocketActor, reconnect: bool) -> None:
        if self.connected_ms is None:
            self.connected_ms = (time.monotonic() - self._started) * 1000
        if reconnect:
            self.metrics.inc("reconnects")

    def on_disconnected(self, conn: WebSocketActor, reason: str) -> None:
        entries = self.table.connection_lost(conn.id)
        if self.books is not None:
            self.books.connection_lost([e.book for e in entries if e.book is not None], reason)

    def on_aged(self, conn: WebSocketActor) -> None:
        try:
            self._commands_send.send_nowait(Rotate(conn.id))
        except anyio.WouldBlock:
            self.log.warning("command channel full: rotation of connection {} postponed", conn.id)

    def on_failed(self, conn: WebSocketActor, exc: BaseException) -> None:
        self.metrics.inc("actor_restarts")
        self.log.bind(actor="websocket", conn=conn.id).opt(exception=exc).error(
            "connection actor failed ({}: {}); restarting it", type(exc).__name__, exc
        )

    def _on_heartbeat(self) -> None:
        if not self.first_heartbeat.is_set():
            self.first_heartbeat_ms = (time.monotonic() - self._started) * 1000
            self.log.info("first heartbeat after {:.0f} ms", self.first_heartbeat_ms)
            self.first_heartbeat.set()

    # -- views -------------------------------------------------------------------------------
    def _view(self, entry: Entry) -> Subscription:
        return Subscription(
            id=f"{self.venue.name}:{entry.symbol}:{entry.feed}",
            venue=self.venue.name,
            symbol=entry.symbol,
            instrument=entry.instrument.normalized,
            feed=entry.feed,
            topic=entry.topic,
            connection=entry.connection,
            channels=list(entry.channels),
        )

    def describe(self, entry: Entry) -> Subscription:
        if entry.book is not None:
            state = entry.book.state
        else:
            conn = self.connections.get(entry.connection or -1)
            state = "synced" if entry.on_wire and conn is not None and conn.up else "pending"
        counters = dict(self.metrics.by_instrument.get(entry.symbol, {}))
        return msgspec.structs.replace(self._view(entry), state=state, counters=counters)

    def list_subscriptions(self) -> list[Subscription]:
        return [self.describe(e) for e in self.table]

    def connection_states(self) -> list[dict[str, Any]]:
        return [
            {
                "id": conn.id,
                "up": conn.up,
                "channels": len(self.table.channels_on(conn.id)),
                "on_wire": len(conn.on_wire),
                "frames": conn.frames,
                "connects": conn.connects,
                "last_error": conn.last_error,
            }
            for conn in self.connections.values()
        ]

    def health(self) -> dict[str, float | None]:
        """Seconds since each actor last reported a heartbeat (did some work)."""
        now = time.monotonic()
        beats: dict[str, float] = {}
        if self.books is not None:
            beats["books"] = self.books.last_beat
        for conn in self.connections.values():
            beats[f"websocket-{conn.id}"] = conn.last_beat
        return {name: (round(now - t, 3) if t else None) for name, t in beats.items()}
