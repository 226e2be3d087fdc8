"""WebSocketActor: one exchange connection, kept alive, carrying the channels the
subscription table assigns to it.

The actor reconnects with exponential backoff and jitter for as long as it runs. Each
physical connection lives in one scope (``_one_connection``) with everything that
belongs to it — the session (the venue's dialect, request ids), the channels the venue
has acknowledged on it, requests awaiting acknowledgement, the client-message rate
window, the reply lane — so nothing outlives it or is replaced in place. Inside that
scope run:

* the reader: receives frames and routes each one synchronously (``FrameRouter.route``);
* the channel reconciler: compares the channels the table assigns to this connection
  with those on the wire and sends SUBSCRIBE / UNSUBSCRIBE until they agree. It waits
  for a free slot of the venue's message-rate window *before* computing what to send, so
  every change that arrived meanwhile rides in the same request: a storm of API calls
  becomes a few batched venue messages;
* the reply writer (heartbeat replies and opening requests: a priority lane that skips
  the rate spacing but is counted in the window), client pings, the silence watchdog.

A subscribe that arrives while the connection is down simply waits in the table: the
next connection that comes up subscribes everything assigned to it.
"""

from __future__ import annotations

import collections
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from loguru import logger

from spiceflow_core.model import Heartbeat, SubscribeAck
from spiceflow_core.plugin.contract import Request, Venue, WsSession
from spiceflow_core.runtime.supervision import restart_on_failure
from spiceflow_core.runtime.transport import ConnectionLost, WsConnection, connect

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.config import RuntimeSettings
    from spiceflow_core.runtime.router import FrameRouter
    from spiceflow_core.runtime.subscriptions import SubscriptionTable

#: how often a request the venue refused as transient (rate limited) is sent again
MAX_REQUEST_RETRIES = 6
#: a connection that stayed up this long was healthy: the next reconnect starts the
#: backoff from the beginning
HEALTHY_AFTER_S = 30.0
#: routed frames between two checkpoints of the reader, so a connection that always has
#: frames buffered still lets the other tasks run
FRAMES_PER_CHECKPOINT = 512
#: seconds before channels the venue refused for good may be sent again (their
#: Subscribe workflow normally removes them first)
REFUSED_HOLD_S = 1.0


class ConnectionEvents(Protocol):
    def on_connected(self, conn: WebSocketActor, reconnect: bool) -> None: ...
    def on_disconnected(self, conn: WebSocketActor, reason: str) -> None: ...
    def on_aged(self, conn: WebSocketActor) -> None: ...
    def on_failed(self, conn: WebSocketActor, exc: BaseException) -> None: ...


#: margin on the one-second window: the venue stamps a message when its server reads it,
#: which under load can be later than our write by a few milliseconds, and several
#: messages read in one go share one stamp
WINDOW_MARGIN_S = 0.05


class _RateWindow:
    """At most ``limit`` client messages in any one-second window — how exchanges count
    ("5 messages per second"); a token bucket would allow twice that across a window
    boundary and get the connection closed. Requests may only fill ``rate`` of them
    (``limit`` less a reserve); our client pings may use the window but for
    ``own_pings``, the WebSocket pings the transport sends by itself in a second (they
    are not written through this window and a venue may count them: Binance does); they
    wait for the window to slide, and for a request being sent at that moment. Answers
    to the venue's heartbeat requests never wait and are counted, which the reserve
    leaves room for.

    A message is stamped once written, not when its slot is granted: the write itself
    may wait, and the venue counts from when the message arrives."""

    def __init__(self, limit: int, rate: int, *, every_message: bool = True, own_pings: int = 0) -> None:
        self.limit = max(1, limit)
        self.rate = max(1, min(rate, self.limit))
        self.ping_room = max(1, self.limit - own_pings)
        #: False when the venue's limit counts requests only: pings and heartbeat
        #: answers then neither wait nor count
        self.every_message = every_message
        self.sent: collections.deque[float] = collections.deque()
        # one waiting sender at a time: a slot is granted and then written before the
        # next sender looks at the window
        self._lock = anyio.Lock()

    @classmethod
    def for_venue(cls, venue: Venue, ping_interval: float | None) -> _RateWindow:
        """The window of one connection to ``venue`` whose transport pings every
        ``ping_interval`` seconds (None: it does not ping)."""
        own_pings = math.ceil(1 / ping_interval) if ping_interval else 0
        return cls(
            int(venue.max_messages_per_second),
            request_rate(venue, own_pings),
            every_message=venue.rate_limit_counts == "messages",
            own_pings=own_pings,
        )

    def _free_at(self, room: int) -> float:
        now = time.monotonic()
        while self.sent and now - self.sent[0] >= 1.0 + WINDOW_MARGIN_S:
            self.sent.popleft()
        if len(self.sent) < room:
            return now
        return self.sent[len(self.sent) - room] + 1.0 + WINDOW_MARGIN_S

    async def wait(self, room: int | None = None) -> None:
        """Until one more message may be sent (without taking the slot)."""
        room = self.rate if room is None else room
        while (delay := self._free_at(room) - time.monotonic()) > 0:
            await anyio.sleep(delay)

    @asynccontextmanager
    async def slot(self, room: int | None = None) -> AsyncIterator[None]:
        """Send one message inside: a request (``room`` = the request rate) or a client
        ping (``room`` = the whole window)."""
        async with self._lock:
            await self.wait(room)
            try:
                yield
            finally:
                self.sent.append(time.monotonic())

    def ping_slot(self) -> AbstractAsyncContextManager[None]:
        """Send one client ping inside: anywhere in the window but the transport's own
        pings' room."""
        return self.slot(self.ping_room) if self.every_message else nullcontext()

    def note(self) -> None:
        """A message that cannot wait (the answer to a venue's heartbeat request) still
        counts; call it once written."""
        if self.every_message:
            self.sent.append(time.monotonic())


def transport_message_cap(max_frame_bytes: int) -> int:
    """The size at which the transport gives up on a message (closing the connection):
    a memory guard well above ``max_frame_bytes``. Frames between the two are received,
    counted as errors and skipped by the router, so one oversized frame costs nothing
    else — no reconnect, no resync of the connection's other books."""
    return max(64 * 2**20, 4 * max_frame_bytes)


def request_rate(venue: Venue, own_pings: int) -> int:
    """Requests per second we allow ourselves: the venue's limit less a reserve for the
    frames that cannot wait or that the transport sends by itself (heartbeat replies,
    WebSocket pings and pongs, which Binance counts too: ``own_pings`` of the transport's
    pings a second, one more for the rest) — unless the limit counts requests only."""
    limit = int(venue.max_messages_per_second)
    if venue.rate_limit_counts == "requests":
        return max(1, limit)
    if limit <= 3:
        return max(1, limit - max(1, own_pings))
    return max(1, limit - max(2, own_pings + 1))


@dataclass
class _Pending:
    subscribe: bool
    channels: list[str]
    deadline: float


@dataclass
class _Link:
    """One physical connection and everything that lives and dies with it."""

    ws: WsConnection
    session: WsSession
    window: _RateWindow
    on_wire: set[str] = field(default_factory=set)
    adding: set[str] = field(default_factory=set)
    removing: set[str] = field(default_factory=set)
    pending: dict[int, _Pending] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    close_reason: str | None = None
    receive_since: float | None = None
    last_heartbeat: float = field(default_factory=time.monotonic)
    replies: Any = None  # (send, receive) ends of the reply lane

    def busy(self) -> set[str]:
        return self.adding | self.removing


class WebSocketActor:
    def __init__(
        self,
        conn_id: int,
        venue: Venue,
        ws_url: str,
        table: SubscriptionTable,
        router: FrameRouter,
        settings: RuntimeSettings,
        events: ConnectionEvents,
        *,
        wait_acks: bool = True,
        max_age: float | None = None,
        stream_limit: int | None = None,
        recorder: Any = None,
    ) -> None:
        self.id = conn_id
        self.venue = venue
        self.ws_url = ws_url
        self.table = table
        self.router = router
        self.settings = settings
        self.events = events
        self.wait_acks = wait_acks
        self.max_age = max_age
        self.recorder = recorder
        #: streams this connection may carry (the venue's limit unless configured)
        self.stream_limit = stream_limit or venue.max_streams_per_connection
        self.session: WsSession = venue.new_session()
        self.sends_heartbeats = self.session.sends_heartbeats
        self.connects = 0
        self.frames = 0
        self.requests_sent = 0
        self.last_beat = 0.0  # monotonic time of the last frame (actor heartbeat)
        self.last_error: str | None = None
        #: set once ``run`` has returned
        self.finished = anyio.Event()
        self._link: _Link | None = None
        self._wake_send, self._wake_recv = anyio.create_memory_object_stream[None](1)
        self._refresh: set[str] = set()
        self._stopping = False
        self._graceful = False
        self._retiring = False
        self._scope: anyio.CancelScope | None = None
        self.log = logger.bind(venue=venue.name, actor="websocket", conn=self.id)

    # -- used by the venue runtime ---------------------------------------------------
    @property
    def up(self) -> bool:
        return self._link is not None

    @property
    def on_wire(self) -> set[str]:
        link = self._link
        return set(link.on_wire) if link is not None else set()

    def poke(self) -> None:
        """The table changed: reconcile this connection's channels."""
        try:
            self._wake_send.send_nowait(None)
        except anyio.WouldBlock:
            pass  # a wake-up is already pending

    def refresh(self, channels: list[str]) -> None:
        """Unsubscribe then subscribe ``channels`` again (the venue sends a fresh
        snapshot: the resync of resubscribe venues)."""
        self._refresh.update(channels)
        self.poke()

    def retire(self) -> None:
        """Keep the channels as they are (no more requests): the connection is being
        replaced and will be stopped once its successor is up."""
        self._retiring = True

    def stop(self, *, graceful: bool = False) -> None:
        """Stop for good; ``graceful`` first unsubscribes what is on the wire (without
        waiting for acknowledgements)."""
        self._stopping = True
        self._graceful = graceful and self._link is not None
        if self._graceful:
            self.poke()
        elif self._scope is not None:
            self._scope.cancel()

    # -- called by the router on the frame path -----------------------------------------
    def on_ack(self, ack: SubscribeAck) -> None:
        link = self._link
        if link is None:
            return
        pending = link.pending.pop(ack.request_id, None)
        if pending is None:
            self.log.debug("acknowledgement of request {} (not a subscription)", ack.request_id)
            return
        if ack.error is None:
            self._settled(link, pending)
        else:
            self._refused(link, pending, ack.error, self.session.retry_after(ack))
        self.poke()

    def on_heartbeat(self, heartbeat: Heartbeat) -> None:
        link = self._link
        if link is None:
            return
        link.last_heartbeat = time.monotonic()
        if heartbeat.reply is not None:
            self._reply(link, heartbeat.reply)

    # -- acknowledgement bookkeeping ----------------------------------------------------
    def _settled(self, link: _Link, pending: _Pending) -> None:
        channels = pending.channels
        if pending.subscribe:
            link.adding.difference_update(channels)
            link.on_wire.update(channels)
            for channel in channels:
                link.retries.pop(channel, None)
            self.table.acknowledged(self.id, link.on_wire)
        else:
            link.removing.difference_update(channels)
            link.on_wire.difference_update(channels)
            self._refresh.difference_update(channels)
            self.table.off_wire(self.id, channels)

    def _refused(self, link: _Link, pending: _Pending, error: str, retry_after: float | None) -> None:
        channels = pending.channels
        now = time.monotonic()
        (link.adding if pending.subscribe else link.removing).difference_update(channels)
        retries = max((link.retries.get(c, 0) for c in channels), default=0)
        if retry_after is not None and retries < MAX_REQUEST_RETRIES:
            # a transient refusal (the venue's rate limit): send again after a backoff
            delay = min(retry_after * 2**retries, 30.0) * (1 + 0.2 * random.random())
            for channel in channels:
                link.retries[channel] = retries + 1
                link.not_before[channel] = now + delay
            self.log.warning(
                "request for {} channel(s) refused ({}); retry {}/{} in {:.2f}s",
                len(channels),
                error,
                retries + 1,
                MAX_REQUEST_RETRIES,
                delay,
            )
            return
        for channel in channels:
            link.not_before[channel] = now + REFUSED_HOLD_S
            link.retries.pop(channel, None)
        self.last_error = error
        if not pending.subscribe:
            self.log.error("unsubscription of {} refused: {}", ", ".join(channels[:3]), error)
            return
        self.log.warning("subscription of {} refused: {}", ", ".join(channels[:3]), error)
        resubscriptions = self.table.refused(self.id, channels, error)
        if resubscriptions:
            # Channels the venue refused on resubscription would stay silent for good
            # while the others flow, so the silence timeout would never fire: drop the
            # connection and let the reconnect loop retry them, with its backoff.
            link.close_reason = f"resubscribe failed: {error}"

    def _expire(self, link: _Link, now: float) -> None:
        for request_id, pending in list(link.pending.items()):
            if pending.deadline <= now:
                del link.pending[request_id]
                error = f"no acknowledgement for request {request_id} within {self.settings.ack_timeout}s"
                self._refused(link, pending, error, None)

    # -- the actor -------------------------------------------------------------------
    async def run(self) -> None:
        """Connect and keep connected until stopped (reconnecting with backoff)."""
        try:
            with anyio.CancelScope() as self._scope:
                await restart_on_failure(
                    self._connect_until_lost,
                    on=ConnectionLost,
                    on_failure=self._lost,
                    initial=self.settings.reconnect_initial,
                    maximum=self.settings.reconnect_max,
                    healthy_after=HEALTHY_AFTER_S,
                )
        finally:
            self.finished.set()

    async def _connect_until_lost(self) -> None:
        reason = await self._one_connection()
        if not self._stopping:
            raise ConnectionLost(reason)

    def _lost(self, exc: Exception) -> None:
        reason = str(exc)
        self.last_error = reason
        self.events.on_disconnected(self, reason)
        self.log.warning("connection lost ({}); reconnecting", reason)

    async def _one_connection(self) -> str:
        session = self.venue.new_session()
        self.session = session
        url = session.url(self.ws_url)
        try:
            async with connect(
                url,
                transport=self.settings.transport,
                ping_interval=self.settings.ping_interval,
                max_frame_bytes=transport_message_cap(self.settings.max_frame_bytes),
            ) as ws:
                link = _Link(ws, session, _RateWindow.for_venue(self.venue, self.settings.ping_interval))
                link.replies = anyio.create_memory_object_stream[str](1000)
                self.connects += 1
                if self.recorder is not None:
                    self.recorder.opened(self.id, url)
                self.log.info("connected to {} (connect #{})", url, self.connects)
                self._link = link
                # a new connection subscribes everything afresh: pending refreshes are moot
                self._refresh.clear()
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._write_replies, link)
                        for request in session.on_open():
                            self._reply(link, request.frame)
                        self.events.on_connected(self, self.connects > 1)
                        tg.start_soon(self._reconcile_channels, link)
                        if (ping := session.client_ping()) is not None:
                            tg.start_soon(self._client_pings, link, ping)
                        reason = await self._read(link)
                        tg.cancel_scope.cancel()
                    return link.close_reason or reason
                finally:
                    self._link = None
                    link.replies[0].close()
        except ConnectionLost as exc:
            return str(exc)
        except Exception as exc:
            # a bug on the frame path (a parser, a book, a publisher) must not take the
            # venue down: the connection is restarted, and its books resync
            self.events.on_failed(self, exc)
            return f"connection actor failed: {type(exc).__name__}: {exc}"

    # -- the reader --------------------------------------------------------------------
    async def _read(self, link: _Link) -> str:
        timeout = max(self.settings.silence_timeout, self.venue.min_silence_timeout)
        # The silence timeout is watched by a sibling task rather than a cancel scope
        # around every receive: it cancels ``read_scope`` only while the reader waits
        # in ``receive_many``, once that wait has lasted ``timeout`` seconds.
        read_scope = anyio.CancelScope()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._silence_watchdog, link, read_scope, timeout)
            try:
                with read_scope:
                    return await self._read_frames(link)
            finally:
                link.receive_since = None
                tg.cancel_scope.cancel()
        self.log.warning("no frame for {:.1f}s: silence timeout", timeout)
        await link.ws.close()
        return f"silence timeout ({timeout:.1f}s without a frame)"

    async def _read_frames(self, link: _Link) -> str:
        router = self.router
        receive_many = link.ws.receive_many
        hb_timeout = (
            (self.settings.heartbeat_timeout or self.venue.heartbeat_timeout) if link.session.sends_heartbeats else None
        )
        age_deadline = time.monotonic() + self.max_age if self.max_age else None
        since_checkpoint = 0
        while True:
            link.receive_since = time.monotonic()
            try:
                frames = await receive_many()
            except ConnectionLost as exc:
                return str(exc)
            now = time.monotonic()
            link.receive_since = None
            self.last_beat = now
            recv_ts = time.time_ns()
            router.route_batch(self, frames, recv_ts)
            self.frames += len(frames)
            since_checkpoint += len(frames)
            if since_checkpoint >= FRAMES_PER_CHECKPOINT:
                since_checkpoint = 0
                await anyio.lowlevel.checkpoint()
            if link.close_reason is not None:
                await link.ws.close()
                return link.close_reason
            if hb_timeout is not None and now - link.last_heartbeat > hb_timeout:
                self.log.warning("no heartbeat from the venue for {:.1f}s", hb_timeout)
                await link.ws.close()
                return f"heartbeat timeout ({hb_timeout:.1f}s without a venue heartbeat)"
            if age_deadline is not None and now > age_deadline:
                # make before break: the runtime opens a replacement, moves the streams
                # to it once it is subscribed, then stops this one
                age_deadline = None
                self.log.info("connection reached its maximum age ({:.0f}s): replacing it", self.max_age)
                self.events.on_aged(self)

    async def _silence_watchdog(self, link: _Link, read_scope: anyio.CancelScope, timeout: float) -> None:
        while True:
            since = link.receive_since
            if since is None:  # routing a batch: look again shortly
                await anyio.sleep(min(timeout, 0.05))
                continue
            wait = since + timeout - time.monotonic()
            if wait <= 0:
                read_scope.cancel()
                return
            await anyio.sleep(wait)

    # -- the channel reconciler -----------------------------------------------------------
    def _diff(self, link: _Link, now: float) -> tuple[list[str], list[str]]:
        """(channels to unsubscribe, channels to subscribe); unsubscriptions first, so a
        full connection frees its stream slots before taking new ones."""
        if self._retiring:
            return [], []
        busy = link.busy()
        held = {c for c, t in link.not_before.items() if t > now}
        desired = self.table.channels_on(self.id)
        remove = (link.on_wire - desired) | (self._refresh & link.on_wire)
        remove -= busy
        if remove:
            return sorted(remove), []
        add = desired - link.on_wire - busy - held
        return [], sorted(add)

    def _next_deadline(self, link: _Link, now: float) -> float | None:
        times = [p.deadline for p in link.pending.values()]
        times += [t for t in link.not_before.values() if t > now]
        return min(times) - now if times else None

    async def _reconcile_channels(self, link: _Link) -> None:
        while True:
            now = time.monotonic()
            self._expire(link, now)
            if link.close_reason is not None:
                await link.ws.close()
                return
            if self._stopping:
                await self._farewell(link)
                return
            remove, add = self._diff(link, now)
            if not remove and not add:
                wait = self._next_deadline(link, now)
                with anyio.move_on_after(wait if wait is not None else float("inf")):
                    await self._wake_recv.receive()
                continue
            # wait for a slot first: changes arriving meanwhile join this request
            await link.window.wait()
            remove, add = self._diff(link, time.monotonic())
            if remove:
                await self._send_requests(link, link.session.unsubscribe(remove), remove, subscribe=False)
            elif add:
                await self._send_requests(link, link.session.subscribe(add), add, subscribe=True)

    async def _send_requests(
        self, link: _Link, requests: list[Request], channels: list[str], *, subscribe: bool
    ) -> None:
        (link.adding if subscribe else link.removing).update(channels)
        for request in requests:
            covered = list(request.channels) or (channels if len(requests) == 1 else [])
            async with link.window.slot():
                pending = _Pending(subscribe, covered, time.monotonic() + self.settings.ack_timeout)
                ack_id = request.request_id if self.wait_acks else None
                if ack_id is not None:
                    link.pending[ack_id] = pending
                try:
                    await link.ws.send(request.frame)
                except ConnectionLost as exc:
                    link.close_reason = str(exc)
                    return
            self.requests_sent += 1
            self._record_sent(request.frame)
            if ack_id is None:
                self._settled(link, pending)  # the venue sends no acknowledgement for it

    async def _farewell(self, link: _Link) -> None:
        """Graceful stop: unsubscribe what is on the wire, without waiting for answers."""
        if link.on_wire:
            for request in link.session.unsubscribe(sorted(link.on_wire)):
                try:
                    async with link.window.slot():
                        await link.ws.send(request.frame)
                except ConnectionLost:
                    break
                self._record_sent(request.frame)
        await link.ws.close()

    # -- replies and pings ----------------------------------------------------------------
    def _reply(self, link: _Link, frame: str) -> None:
        try:
            link.replies[0].send_nowait(frame)
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            self.log.warning("reply lane full; dropping reply frame")

    async def _write_replies(self, link: _Link) -> None:
        async for frame in link.replies[1]:
            try:
                await link.ws.send(frame)
            except ConnectionLost:
                return
            link.window.note()  # the venue asked: answered at once, and counted
            self._record_sent(frame)

    async def _client_pings(self, link: _Link, frame: str) -> None:
        # our own keep-alive can wait for room in the window (the reserve requests leave)
        while True:
            await anyio.sleep(self.settings.ping_interval)
            try:
                async with link.window.ping_slot():
                    await link.ws.send(frame)
            except ConnectionLost:
                return
            self._record_sent(frame)

    def _record_sent(self, frame: str) -> None:
        # ``spiceflow record``: the frames we send are part of the session (replay pairs
        # requests with acknowledgements)
        if self.recorder is not None:
            self.recorder.sent(self.id, frame, time.time_ns())


OnFrame = Callable[[WebSocketActor, "str | bytes", int], None]
