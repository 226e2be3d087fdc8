"""WebSocketActor: one exchange connection, kept alive.

It connects, sends the venue's opening requests, (re)subscribes its channels and checks
their acknowledgements, forwards every frame to the router, answers venue heartbeats
through a priority lane, spaces client messages to the venue's limit, detects silence
and reconnects with exponential backoff and jitter. A new ``WsSession`` is created per
connection so request ids and dialect state never leak across reconnects.
"""

from __future__ import annotations

import collections
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import anyio
from anyio.abc import TaskGroup
from loguru import logger

from spiceflow_core.model import SubscribeAck
from spiceflow_core.plugin.contract import Request, Venue, WsSession
from spiceflow_core.runtime.transport import ConnectionLost, WsConnection, connect

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.config import RuntimeSettings

_ids = itertools.count(1)


class SubscriptionError(Exception):
    """The venue refused a subscription (its error is in the message) or never answered."""


class ConnectionListener(Protocol):
    async def on_frame(self, conn: WebSocketActor, frame: str | bytes, recv_ts_ns: int) -> None: ...
    def on_connected(self, conn: WebSocketActor, reconnect: bool) -> None: ...
    def on_disconnected(self, conn: WebSocketActor, reason: str) -> None: ...
    def on_aged(self, conn: WebSocketActor) -> None: ...


@dataclass
class _Pending:
    event: anyio.Event = field(default_factory=anyio.Event)
    error: str | None = None
    ack: SubscribeAck | None = None


#: how often a request the venue refused as transient (rate limited) is sent again
MAX_REQUEST_RETRIES = 6


class _RateWindow:
    """At most ``rate`` messages in any one-second window — how exchanges count
    ("5 messages per second"); a token bucket would allow twice that across a window
    boundary and get the connection closed."""

    def __init__(self, rate: float) -> None:
        self.limit = max(1, int(rate))
        self.sent: collections.deque[float] = collections.deque()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            while self.sent and now - self.sent[0] >= 1.0:
                self.sent.popleft()
            if len(self.sent) < self.limit:
                self.sent.append(now)
                return
            await anyio.sleep(1.0 - (now - self.sent[0]) + 0.001)


class WebSocketActor:
    def __init__(
        self,
        venue: Venue,
        ws_url: str,
        listener: ConnectionListener,
        runtime: RuntimeSettings,
        *,
        wait_acks: bool = True,
        max_age: float | None = None,
        stream_limit: int | None = None,
    ) -> None:
        self.id = next(_ids)
        self.venue = venue
        self.ws_url = ws_url
        self.listener = listener
        self.settings = runtime
        self.wait_acks = wait_acks
        self.max_age = max_age
        #: streams this connection may carry (the venue's limit unless configured)
        self.stream_limit = stream_limit or venue.max_streams_per_connection
        self.channels: set[str] = set()
        #: channels whose subscribe() call is waiting for the connection and will send
        #: them itself (the on-connect resubscribe must not send them a second time)
        self._awaiting: set[str] = set()
        self.session: WsSession = venue.new_session()
        self.connected = anyio.Event()
        self.resubscribed = anyio.Event()  # set once every channel is (re)subscribed on a connection
        self.connects = 0
        self.last_frame_ns = 0
        self.last_beat = 0.0  # monotonic time of the last frame (actor heartbeat)
        self.last_heartbeat = 0.0  # monotonic time of the venue's last heartbeat message
        self.frames = 0
        self._receive_since: float | None = None  # monotonic start of the pending receive
        self._pending: dict[int, _Pending] = {}
        self._conn: WsConnection | None = None
        self._send_lane, self._recv_lane = anyio.create_memory_object_stream[str](1000)
        self._priority_send, self._priority_recv = anyio.create_memory_object_stream[str](1000)
        self._scope: anyio.CancelScope | None = None
        self._closing = False
        self.log = logger.bind(venue=venue.name, actor="websocket", conn=self.id)

    # -- API used by the venue runtime -------------------------------------
    async def subscribe(self, channels: list[str]) -> None:
        """Subscribe and, in the Full workflow, wait for the venue's acknowledgement."""
        new = [c for c in channels if c not in self.channels]
        self.channels.update(new)
        if not new:
            return
        self._awaiting.update(new)
        try:
            with anyio.fail_after(self.settings.ack_timeout + 10):
                await self.connected.wait()
        finally:
            self._awaiting.difference_update(new)
        await self._request(self.session.subscribe(new))

    async def unsubscribe(self, channels: list[str]) -> None:
        gone = [c for c in channels if c in self.channels]
        self.channels.difference_update(gone)
        if gone and self.connected.is_set():
            await self._request(self.session.unsubscribe(gone))

    def send_now(self, frame: str) -> None:
        """Priority lane (heartbeat replies): bypasses the message-rate spacing."""
        try:
            self._priority_send.send_nowait(frame)
        except anyio.WouldBlock:
            self.log.warning("priority lane full; dropping reply frame")

    def on_ack(self, ack: SubscribeAck) -> None:
        pending = self._pending.pop(ack.request_id, None)
        if pending is None:
            self.log.debug("ack for unknown request id {}", ack.request_id)
            return
        pending.error = ack.error
        pending.ack = ack
        pending.event.set()

    def stop(self) -> None:
        self._closing = True
        if self._scope is not None:
            self._scope.cancel()

    # -- internals ------------------------------------------------------------
    async def _request(self, requests: list[Request]) -> None:
        waits: list[tuple[Request, _Pending | None]] = []
        for request in requests:
            waits.append((request, await self._send_request(request)))
        errors = []
        for request, pending in waits:
            retries = 0
            while pending is not None:
                with anyio.move_on_after(self.settings.ack_timeout) as scope:
                    await pending.event.wait()
                if scope.cancelled_caught:
                    self._pending.pop(request.request_id, None)
                    errors.append(
                        f"no acknowledgement for request {request.request_id} within {self.settings.ack_timeout}s"
                    )
                elif pending.error:
                    delay = self._retry_delay(pending, retries)
                    if delay is not None:
                        # a transient refusal (the venue's rate limit): wait, send again
                        retries += 1
                        self.log.warning(
                            "request {} refused ({}); retry {}/{} in {:.2f}s",
                            request.request_id,
                            pending.error,
                            retries,
                            MAX_REQUEST_RETRIES,
                            delay,
                        )
                        await anyio.sleep(delay)
                        request = self._resend(request)
                        pending = await self._send_request(request)
                        continue
                    errors.append(
                        f"request {request.request_id} ({', '.join(request.channels[:3])}...) refused: {pending.error}"
                    )
                break
        if errors:
            raise SubscriptionError("; ".join(errors))

    async def _send_request(self, request: Request) -> _Pending | None:
        pending = None
        if request.request_id is not None and self.wait_acks:
            pending = _Pending()
            self._pending[request.request_id] = pending
        await self._send_lane.send(request.frame)
        return pending

    def _retry_delay(self, pending: _Pending, retries: int) -> float | None:
        """Seconds before sending a refused request again, or None when the refusal is
        final. Venues opt in with ``WsSession.retry_after(ack)`` returning the wait for
        a transient refusal; repeated refusals back off exponentially from there."""
        if pending.ack is None or retries >= MAX_REQUEST_RETRIES:
            return None
        base = self.session.retry_after(pending.ack)
        if base is None:
            return None
        return min(base * 2**retries, 30.0) * (1 + 0.2 * random.random())

    def _resend(self, request: Request) -> Request:
        """The request to send again: the session's fresh copy (new id) when it offers
        ``resend(request_id)``, else the same frame and id."""
        if request.request_id is not None:
            fresh = self.session.resend(request.request_id)
            if fresh is not None:
                return fresh
        return request

    async def run(self) -> None:
        """Connect and keep connected until stopped (reconnecting with backoff)."""
        delay = self.settings.reconnect_initial
        with anyio.CancelScope() as self._scope:
            while not self._closing:
                started = time.monotonic()
                reason = await self._one_connection()
                self.connected = anyio.Event()
                self._pending.clear()
                if self._closing:
                    break
                self.listener.on_disconnected(self, reason)
                if time.monotonic() - started > 30:
                    delay = self.settings.reconnect_initial  # it was healthy for a while
                pause = delay * (0.5 + random.random())
                self.log.warning("connection lost ({}); reconnecting in {:.2f}s", reason, pause)
                await anyio.sleep(pause)
                delay = min(delay * 2, self.settings.reconnect_max)

    async def _one_connection(self) -> str:
        self.session = self.venue.new_session()
        url = self.session.url(self.ws_url)
        try:
            async with connect(
                url,
                transport=self.settings.transport,
                ping_interval=self.settings.ping_interval,
                max_frame_bytes=self.settings.max_frame_bytes,
            ) as conn:
                self._conn = conn
                self.connects += 1
                recorder = getattr(self.listener, "recorder", None)
                if recorder is not None and hasattr(recorder, "opened"):
                    recorder.opened(self.id, url)
                self.log.info("connected to {} (connect #{})", url, self.connects)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._writer, conn, tg)
                    for request in self.session.on_open():
                        await self._priority_send.send(request.frame)
                    self.connected.set()
                    self.listener.on_connected(self, self.connects > 1)
                    # decided now, before waiting subscribe() calls resume and send theirs
                    resubscribe = sorted(self.channels - self._awaiting)
                    if resubscribe:
                        tg.start_soon(self._resubscribe, resubscribe)
                    if (ping := self.session.client_ping()) is not None:
                        tg.start_soon(self._client_pings, ping)
                    reason = await self._reader(conn)
                    tg.cancel_scope.cancel()
                    return reason
        except ConnectionLost as exc:
            return str(exc)
        finally:
            self._conn = None

    async def _resubscribe(self, channels: list[str]) -> None:
        try:
            await self._request(self.session.subscribe(channels))
            self.resubscribed.set()
        except SubscriptionError as exc:
            # Channels the venue refused (or never acknowledged) would stay silent for
            # good while the others flow, so the silence timeout would never fire: drop
            # the connection and let the reconnect loop retry them, with its backoff.
            self.log.error("resubscribe failed: {}; reconnecting to retry", exc)
            conn = self._conn
            if conn is not None:
                await conn.close()

    async def _reader(self, conn: WsConnection) -> str:
        timeout = max(self.settings.silence_timeout, self.venue.min_silence_timeout)
        # venues with their own heartbeat messages: data flowing is not enough, their
        # heartbeats must keep coming too
        hb_timeout = (
            (self.settings.heartbeat_timeout or self.venue.heartbeat_timeout) if self.session.sends_heartbeats else None
        )
        self.last_heartbeat = time.monotonic()
        age_deadline = time.monotonic() + self.max_age if self.max_age else None
        # The silence timeout is watched by a sibling task instead of a cancel scope
        # around every receive (entering/leaving one cost ~15% of the process's CPU at
        # 20,000 frames/s). It cancels ``read_scope`` only while the reader waits in
        # ``receive`` (never in the middle of handing a frame on), once that wait has
        # lasted ``timeout`` seconds: the same rule as a timeout around each receive.
        read_scope = anyio.CancelScope()
        self._receive_since = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._silence_watchdog, read_scope, timeout)
            try:
                with read_scope:
                    return await self._read_frames(conn, hb_timeout, age_deadline)
            finally:
                self._receive_since = None
                tg.cancel_scope.cancel()
        self.log.warning("no frame for {:.1f}s: silence timeout", timeout)
        await conn.close()
        return f"silence timeout ({timeout:.1f}s without a frame)"

    async def _silence_watchdog(self, read_scope: anyio.CancelScope, timeout: float) -> None:
        while True:
            since = self._receive_since
            if since is None:  # handing a frame on: look again shortly
                await anyio.sleep(min(timeout, 0.05))
                continue
            wait = since + timeout - time.monotonic()
            if wait <= 0:
                read_scope.cancel()
                return
            await anyio.sleep(wait)

    async def _read_frames(self, conn: WsConnection, hb_timeout: float | None, age_deadline: float | None) -> str:
        on_frame = self.listener.on_frame
        while True:
            self._receive_since = time.monotonic()
            try:
                frame = await conn.receive()
            except ConnectionLost as exc:
                return str(exc)
            self._receive_since = None
            now = time.time_ns()
            self.last_frame_ns = now
            self.last_beat = time.monotonic()
            self.frames += 1
            await on_frame(self, frame, now)
            if hb_timeout is not None and self.last_beat - self.last_heartbeat > hb_timeout:
                self.log.warning("no heartbeat from the venue for {:.1f}s", hb_timeout)
                await conn.close()
                return f"heartbeat timeout ({hb_timeout:.1f}s without a venue heartbeat)"
            if age_deadline is not None and time.monotonic() > age_deadline:
                # make before break: the runtime opens a replacement, moves the streams to
                # it once it is subscribed, then stops this one
                age_deadline = None
                self.log.info("connection reached its maximum age ({:.0f}s): replacing it", self.max_age)
                self.listener.on_aged(self)

    async def _writer(self, conn: WsConnection, tg: TaskGroup) -> None:
        bucket = _RateWindow(self.venue.max_messages_per_second)
        async with anyio.create_task_group() as inner:
            inner.start_soon(self._priority_writer, conn)
            async for frame in self._recv_lane:
                await bucket.take()
                try:
                    await conn.send(frame)
                except ConnectionLost:
                    await conn.close()
                    return
                self._record_sent(frame)

    async def _priority_writer(self, conn: WsConnection) -> None:
        async for frame in self._priority_recv:
            try:
                await conn.send(frame)
            except ConnectionLost:
                return
            self._record_sent(frame)

    def _record_sent(self, frame: str) -> None:
        # ``spiceflow record``: the frames we send are part of the session (replay
        # needs them to pair requests with acknowledgements).
        recorder = getattr(self.listener, "recorder", None)
        if recorder is not None:
            recorder.sent(self.id, frame, time.time_ns())

    async def _client_pings(self, frame: str) -> None:
        while True:
            await anyio.sleep(self.settings.ping_interval)
            self.send_now(frame)
