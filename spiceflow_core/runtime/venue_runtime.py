"""One venue's actors and its Subscribe / Unsubscribe workflows.

Subscribe runs one step at a time, each confirmed before the next:
broadcaster -> order book -> router subscription -> WebSocket subscription (the venue's
acknowledgement in the Full workflow; none awaited in WebSocketOnly) -> confirmed.
Unsubscribe runs the reverse. Requests for the same instrument are serialized; a failed
step rolls back the steps before it.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import TYPE_CHECKING

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from loguru import logger

from spiceflow_core.broadcast.wire import topic_for
from spiceflow_core.config import Settings, VenueSettings
from spiceflow_core.instruments import resolve, select
from spiceflow_core.model import Instrument
from spiceflow_core.plugin.contract import Endpoints, Venue
from spiceflow_core.plugin.rest import RestClient
from spiceflow_core.runtime.books import OrderBookActor
from spiceflow_core.runtime.connection import SubscriptionError, WebSocketActor
from spiceflow_core.runtime.errors import leaf_errors
from spiceflow_core.runtime.metrics import Metrics
from spiceflow_core.runtime.reference import ReferenceDataActor
from spiceflow_core.runtime.router import DummyRouter, RouterActor

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.broadcast.actor import BroadcastActor

FEED_CHANNEL = {"book": "book", "trades": "trade", "top": "top"}


class DuplicateSubscription(Exception):
    pass


class NotSubscribed(Exception):
    pass


class Subscription(msgspec.Struct, kw_only=True):
    id: str
    venue: str
    symbol: str
    instrument: str
    feed: str
    topic: str
    state: str = "pending"
    connection: int | None = None
    channels: list[str] = []
    counters: dict[str, int] = {}


class VenueRuntime:
    def __init__(
        self,
        venue: Venue,
        settings: Settings,
        endpoints: Endpoints,
        broadcaster: BroadcastActor | None,
        *,
        ws_only: bool = False,
        recorder=None,
    ) -> None:
        self.venue = venue
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
        self.connections: list[WebSocketActor] = []
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self._locks: dict[str, anyio.Lock] = defaultdict(anyio.Lock)
        self._tg: TaskGroup | None = None
        self.first_heartbeat = anyio.Event()
        self.first_heartbeat_ms: float | None = None
        self.connected_ms: float | None = None
        self._started = time.monotonic()
        self.log = logger.bind(venue=venue.name, actor="workflow")
        max_frame = settings.runtime.max_frame_bytes
        if ws_only:
            self.books = None
            self.router: RouterActor = DummyRouter(venue.name, self.metrics, None, None, max_frame, self._on_heartbeat)
        else:
            self.books = OrderBookActor(
                venue,
                self.metrics,
                broadcaster,
                depth=settings.book.depth,
                max_buffer=settings.book.max_buffer,
                snapshot_depth=self.vsettings.snapshot_depth or venue.snapshot_depth,
                rest=self.rest,
                resubscribe=self._resubscribe_book,
                publish_mode=settings.book.publish,
            )
            self.router = RouterActor(venue.name, self.metrics, self.books, broadcaster, max_frame, self._on_heartbeat)
            if broadcaster is not None:
                broadcaster.state_sources[venue.name] = self.books.current_states

    # -- lifecycle -------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the actors, subscribe the configured instruments, run until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self.instruments = await self.reference.load()
                tg.start_soon(self._supervised, "router", self.router.run)
                if self.books is not None:
                    tg.start_soon(self._supervised, "books", self.books.run)
                chosen = self.configured_instruments()
                self.log.info("subscribing {} instrument(s): {}", len(chosen), ", ".join(i.symbol for i in chosen[:10]))
                for feed in self.vsettings.feeds:
                    if chosen:
                        await self.subscribe_many([i.symbol for i in chosen], feed)
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):
                await self.rest.aclose()

    async def _supervised(self, name: str, run) -> None:
        """Restart an actor that failed, with backoff; its inbox and state survive, so
        nothing queued is lost. The failure is logged with its cause."""
        delay = 0.1
        while True:
            started = time.monotonic()
            try:
                await run()
                return
            except Exception as exc:
                if time.monotonic() - started > 30:
                    delay = 0.1
                self.metrics.inc("actor_restarts")
                self.log.bind(actor=name).opt(exception=exc).error(
                    "actor {} failed ({}: {}); restarting in {:.1f}s", name, type(exc).__name__, exc, delay
                )
                await anyio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def health(self) -> dict[str, float | None]:
        """Seconds since each actor last reported a heartbeat (processed something)."""
        now = time.monotonic()
        beats = {"router": self.router.last_beat}
        if self.books is not None:
            beats["books"] = self.books.last_beat
        for conn in self.connections:
            beats[f"websocket-{conn.id}"] = conn.last_beat
        return {name: (round(now - t, 3) if t else None) for name, t in beats.items()}

    def configured_instruments(self) -> list[Instrument]:
        names = self.vsettings.instruments
        if names is None:
            names = [] if self.vsettings.select else list(self.venue.default_instruments)
        return select(self.instruments, names, list(self.vsettings.select), self.venue.name)

    async def shutdown(self) -> None:
        """Graceful stop: unsubscribe where the venue supports it (bounded in time)."""
        with anyio.move_on_after(0.5, shield=True):
            for conn in list(self.connections):
                if conn.connected.is_set() and conn.channels:
                    conn.wait_acks = False
                    try:
                        await conn.unsubscribe(sorted(conn.channels))
                        await anyio.sleep(0.05)  # let the writer flush the frame
                    except Exception:
                        pass
        for conn in self.connections:
            conn.stop()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # -- workflows ---------------------------------------------------------------
    def resolve(self, name: str) -> Instrument:
        return resolve(self.instruments, name, self.venue.name)

    async def subscribe(self, name: str, feed: str = "book") -> Subscription:
        return (await self.subscribe_many([name], feed))[0]

    async def subscribe_many(self, names: list[str], feed: str = "book") -> list[Subscription]:
        """The Subscribe workflow for one or several instruments at once (the config's
        instruments at start): steps 1-3 per instrument, then one WebSocket subscription
        per connection carrying all their channels (so 200 instruments cost a few
        requests, not 200 under a 5-messages-per-second limit), then confirmation."""
        instruments = list({i.symbol: i for i in (self.resolve(n) for n in names)}.values())
        async with contextlib.AsyncExitStack() as locks:
            for symbol in sorted(i.symbol for i in instruments):  # a fixed order: no deadlock
                await locks.enter_async_context(self._locks[symbol])
            for instrument in instruments:
                if (instrument.symbol, feed) in self.subscriptions:
                    raise DuplicateSubscription(f"{self.venue.name} {instrument.symbol} {feed} is already subscribed")
            undo: list = []
            per_conn: dict[WebSocketActor, list[str]] = {}
            subs: list[Subscription] = []
            try:
                for instrument in instruments:
                    subs.append(self._prepare(instrument, feed, per_conn, undo))
                async with anyio.create_task_group() as tg:
                    for conn, channels in per_conn.items():
                        self.log.debug("subscribe step 4/5: {} channel(s) on connection {}", len(channels), conn.id)
                        tg.start_soon(conn.subscribe, channels)
            except BaseException as exc:
                for step in reversed(undo):
                    step()
                for conn, channels in per_conn.items():
                    conn.channels.difference_update(channels)
                self._close_idle_connections()
                refused = [e for e in leaf_errors(exc) if isinstance(e, SubscriptionError)]
                if refused:
                    raise refused[0] from None
                raise
            for sub in subs:
                self.subscriptions[(sub.symbol, feed)] = sub
                self.log.bind(instrument=sub.symbol).info(
                    "subscribed {} ({}) -> topic {}", sub.id, "sent" if self.ws_only else "acknowledged", sub.topic
                )
                if feed == "book" and self.books is not None:
                    self.books.request_snapshot(sub.symbol)
            self.log.debug("subscribe step 5/5: {} confirmed", len(subs))
            return [self.describe(sub) for sub in subs]

    def _prepare(self, instrument: Instrument, feed: str, per_conn: dict, undo: list) -> Subscription:
        """Subscribe steps 1-3 for one instrument, and its place on a connection."""
        symbol = instrument.symbol
        log = self.log.bind(instrument=symbol)
        channels = self.venue.channels(instrument, feed)  # type: ignore[arg-type]
        if self.broadcaster is not None:
            self.broadcaster.register(instrument)
            log.debug("subscribe step 1/5: broadcaster ready")
        if feed == "book" and self.books is not None:
            self.books.add(instrument)
            undo.append(lambda: self.books.remove(symbol))
            log.debug("subscribe step 2/5: order book created")
        if symbol not in self.router.symbols:
            self.router.symbols.add(symbol)
            undo.append(lambda: self.router.symbols.discard(symbol))
        log.debug("subscribe step 3/5: router routes {}", symbol)
        conn = self._connection_for(len(channels), per_conn)
        per_conn.setdefault(conn, []).extend(channels)
        return Subscription(
            id=f"{self.venue.name}:{symbol}:{feed}",
            venue=self.venue.name,
            symbol=symbol,
            instrument=instrument.normalized,
            feed=feed,
            topic=topic_for(FEED_CHANNEL[feed], self.venue.name, symbol),
            channels=channels,
            connection=conn.id,
        )

    async def unsubscribe(self, name: str, feed: str = "book") -> Subscription:
        instrument = self.resolve(name)
        symbol = instrument.symbol
        async with self._locks[symbol]:
            sub = self.subscriptions.get((symbol, feed))
            if sub is None:
                raise NotSubscribed(f"{self.venue.name} {symbol} {feed} is not subscribed")
            log = self.log.bind(instrument=symbol)
            conn = next((c for c in self.connections if c.id == sub.connection), None)
            if conn is not None:
                await conn.unsubscribe(sub.channels)
                log.debug("unsubscribe step 1/3: WebSocket unsubscription confirmed")
            del self.subscriptions[(symbol, feed)]
            if not any(s == symbol for s, _ in self.subscriptions):
                self.router.symbols.discard(symbol)
            log.debug("unsubscribe step 2/3: router no longer routes {}", symbol)
            if feed == "book" and self.books is not None:
                self.books.remove(symbol)
            log.debug("unsubscribe step 3/3: order book dropped")
            self._close_idle_connections()
            log.info("unsubscribed {}", sub.id)
            return msgspec.structs.replace(sub, state="unsubscribed")

    def describe(self, sub: Subscription) -> Subscription:
        if sub.feed == "book" and self.books is not None:
            state = self.books.state_of(sub.symbol)
        else:
            state = (
                "synced"
                if any(c.id == sub.connection and c.connected.is_set() for c in self.connections)
                else "pending"
            )
        counters = dict(self.metrics.by_instrument.get(sub.symbol, {}))
        return msgspec.structs.replace(sub, state=state, counters=counters)

    def list_subscriptions(self) -> list[Subscription]:
        return [self.describe(s) for s in self.subscriptions.values()]

    # -- connections ---------------------------------------------------------------
    def _connection_for(self, n_channels: int, reserved: dict | None = None) -> WebSocketActor:
        """A connection with room for ``n_channels`` more streams (counting the ones
        ``reserved`` for it by a subscription in progress), or a new one."""
        limit = self.vsettings.max_streams_per_connection or self.venue.max_streams_per_connection
        reserved = reserved or {}
        for conn in self.connections:
            if limit - len(conn.channels) - len(reserved.get(conn, ())) >= n_channels:
                return conn
        return self._new_connection(limit)

    def on_aged(self, conn: WebSocketActor) -> None:
        if self._tg is not None:
            self._tg.start_soon(self._rotate, conn)

    async def _rotate(self, old: WebSocketActor) -> None:
        """Replace an aged connection without losing a book: the new connection
        subscribes the same streams while the old one still delivers; duplicates are
        dropped by the books' sequence checks; then the old one is stopped."""
        new = self._new_connection(old.stream_limit)
        new.channels = set(old.channels)
        try:
            with anyio.fail_after(self.settings.runtime.ack_timeout * 3):
                await new.resubscribed.wait()
                while new.frames == 0:
                    await anyio.sleep(0.01)
        except TimeoutError:
            self.log.warning("replacement of connection {} did not come up; keeping the old one", old.id)
            new.stop()
            self.connections.remove(new)
            return
        for sub in self.subscriptions.values():
            if sub.connection == old.id:
                sub.connection = new.id
        new.channels = set(old.channels) | new.channels
        old.stop()
        if old in self.connections:
            self.connections.remove(old)
        self.metrics.inc("rotations")
        self.log.info("connection {} replaced by {}", old.id, new.id)

    def _new_connection(self, limit: int) -> WebSocketActor:
        conn = WebSocketActor(
            self.venue,
            self.endpoints.ws_url,
            self,
            self.settings.runtime,
            wait_acks=not self.ws_only,
            max_age=self.settings.runtime.max_connection_age or self.venue.max_connection_age,
            stream_limit=limit,
        )
        self.connections.append(conn)
        assert self._tg is not None
        self._tg.start_soon(conn.run)
        return conn

    def _close_idle_connections(self) -> None:
        for conn in [c for c in self.connections if not c.channels]:
            self.log.info("closing connection {}: no subscriptions left", conn.id)
            conn.stop()
            self.connections.remove(conn)

    async def _resubscribe_book(self, symbol: str) -> None:
        """Resync for resubscribe venues: unsubscribe then subscribe the book channel
        so the venue sends a fresh snapshot."""
        sub = self.subscriptions.get((symbol, "book"))
        conn = next((c for c in self.connections if sub and c.id == sub.connection), None)
        if sub is None or conn is None:
            return
        await conn.unsubscribe(sub.channels)
        await conn.subscribe(sub.channels)

    # -- ConnectionListener --------------------------------------------------------
    async def on_frame(self, conn: WebSocketActor, frame: str | bytes, recv_ts_ns: int) -> None:
        if self.recorder is not None:
            self.recorder.frame(conn.id, frame, recv_ts_ns)
        item = (conn, frame, recv_ts_ns)
        try:
            self.router.inbox_send.send_nowait(item)  # the common case: no checkpoint per frame
        except anyio.WouldBlock:
            await self.router.inbox_send.send(item)  # router behind: backpressure to the socket

    def on_connected(self, conn: WebSocketActor, reconnect: bool) -> None:
        if self.connected_ms is None:
            self.connected_ms = (time.monotonic() - self._started) * 1000
        if reconnect:
            self.metrics.inc("reconnects")

    def on_disconnected(self, conn: WebSocketActor, reason: str) -> None:
        if self.books is not None:
            symbols = sorted(
                {s for (s, f), sub in self.subscriptions.items() if sub.connection == conn.id and f == "book"}
            )
            self.books.connection_lost(symbols, reason)

    def _on_heartbeat(self, conn: WebSocketActor) -> None:
        if not self.first_heartbeat.is_set():
            self.first_heartbeat_ms = (time.monotonic() - self._started) * 1000
            self.log.info("first heartbeat after {:.0f} ms", self.first_heartbeat_ms)
            self.first_heartbeat.set()
