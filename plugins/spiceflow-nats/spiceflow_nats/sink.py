"""NatsSink: every wire message the pipeline publishes, published to NATS.

The subject is the topic behind the optional prefix (``book.binance.BTCUSDT``, see
``subjects``), the body the exact msgpack bytes ZeroMQ consumers get, so a NATS
consumer decodes it with ``spiceflow_core.broadcast.wire.decoder`` and detects losses by
``topic_seq`` like a ZeroMQ one.

``offer`` (the core's, on the frame path) appends to a bounded buffer; this sink's task
publishes what accumulated as one batch and flushes once per batch (a PING/PONG: the
server has read the batch before the next one starts, so a slow server turns into a
fuller buffer and counted drops here, never into unbounded memory).

NATS away: nats-py reconnects by itself, forever, to every URL in ``servers``. A batch
waits for the connection to come back while ``offer`` keeps filling the buffer (drops
counted once it is full); messages written just before a connection died may be lost
in the socket -- consumers see those as a ``topic_seq`` gap, like any other drop.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import anyio
from loguru import logger
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.errors import FlushTimeoutError, MaxPayloadError, OutboundBufferLimitError

from spiceflow_core.sinks import BufferedSink

from .config import NAME, NatsOptions
from .jetstream import ensure_streams
from .subjects import subject_for

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.broadcast.wire import WireMessage

__all__ = ["NatsSink"]

_STREAMS_RETRY_MAX_S = 30.0


class NatsSink(BufferedSink):
    def __init__(self, options: NatsOptions) -> None:
        super().__init__(NAME, options.capacity)
        self.options = options
        self.prefix = options.prefix
        #: topic -> subject (topics are few: instruments x channels)
        self._subjects: dict[str, str] = {}
        self._nc: NATS | None = None
        #: set, then replaced, at every change of the connection's state
        self._changed = anyio.Event()
        #: set when the streams must be (re)created: after a reconnection
        self._streams_wanted = anyio.Event()
        self._was_connected = False
        self._closing = False
        self.log = logger.bind(actor="sink", sink=NAME)

    # -- the sink's task ---------------------------------------------------------------
    async def run(self) -> None:
        nc = await self._connect()
        self._nc = nc
        async with anyio.create_task_group() as tg:
            if self.options.jetstream:
                # before the first batch, so the streams capture from the first message
                failed = not await self._ensure_streams(nc)
                tg.start_soon(functools.partial(self._keep_streams, nc, failed=failed))
            await super().run()

    async def _connect(self) -> NATS:
        """Connect to one of ``servers``; retries (every ``reconnect_wait``) until one
        answers, so a sink started before its server simply waits for it."""
        options = self.options
        nc = NATS()
        try:
            await nc.connect(
                servers=list(options.servers),
                name=options.name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,  # forever: the pipeline outlives any outage
                # nats-py annotates these as int; they are handed to asyncio.sleep/wait_for
                reconnect_time_wait=options.reconnect_wait,  # type: ignore[arg-type]
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                closed_cb=self._on_closed,
                # subjects are built by subjects.subject_for: whitespace (CR/LF included)
                # and wildcards are escaped, the prefix is checked when the options load
                skip_subject_validation=True,
            )
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await nc.close()
            raise
        self._was_connected = True
        self.log.info("nats sink connected to {}", _url(nc))
        return nc

    async def write(self, batch: list[tuple[str, bytes, WireMessage]]) -> None:
        nc = self._nc
        if nc is None:
            raise RuntimeError("nats sink is not running")
        await self._publish(nc, batch)

    async def _publish(self, nc: NATS, batch: list[tuple[str, bytes, WireMessage]]) -> None:
        if not nc.is_connected:
            await self._wait_connected(nc)
        subjects = self._subjects
        publish = nc.publish
        for topic, body, _ in batch:
            subject = subjects.get(topic)
            if subject is None:
                subject = subjects[topic] = subject_for(topic, self.prefix)
            try:
                await publish(subject, body)
            except OutboundBufferLimitError:
                # disconnected and nats-py's own reconnection buffer is full: wait
                await self._wait_connected(nc)
                await publish(subject, body)
            except MaxPayloadError:
                # larger than the server accepts: this one message is lost (run()
                # counts the whole batch as written, so take it back)
                stats = self.stats
                stats.dropped += 1
                stats.written -= 1
                stats.errors += 1
                stats.last_error = f"{topic}: {len(body)} bytes exceed the server's max_payload"
                self.log.error("nats sink dropped a message: {}", stats.last_error)
        try:
            # nats-py writes a flush's PING straight to the socket, ahead of what its
            # flusher task has not written yet: one turn of the loop lets that task
            # write the batch first, so the PONG means the server has read it
            await anyio.sleep(0)
            await nc.flush(timeout=self.options.flush_timeout)  # type: ignore[arg-type]
        except NatsError as exc:
            # the batch is in nats-py's buffer (sent on reconnection) or lost with the
            # connection; consumers see a loss as a topic_seq gap
            self.stats.last_error = f"flush: {type(exc).__name__}: {exc}"
            self.log.warning("nats sink: {}", self.stats.last_error)

    async def aclose(self) -> None:
        """Publish what is still buffered (if connected), flush and close."""
        nc, self._nc = self._nc, None
        if nc is None:
            return
        self._closing = True
        try:
            if nc.is_connected and self._buffer:
                batch = list(self._buffer)
                self._buffer.clear()
                await self._publish(nc, batch)
                self.stats.written += len(batch)
            if nc.is_connected:
                await nc.drain()  # flushes what nats-py holds, then closes
        except (FlushTimeoutError, TimeoutError) as exc:
            # the server did not answer the final flush in time: what nats-py still
            # held is lost for this sink, which is counted; closing goes on
            self.stats.errors += 1
            self.stats.last_error = f"close: {type(exc).__name__}: {exc}"
            self.log.warning("nats sink: {}", self.stats.last_error)
        finally:
            if not nc.is_closed:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await nc.close()

    # -- connection state ---------------------------------------------------------------
    async def _wait_connected(self, nc: NATS) -> None:
        while not nc.is_connected:
            if nc.is_closed:
                raise RuntimeError("the NATS connection is closed")
            await self._changed.wait()

    def _state_changed(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def _on_error(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if message != self.stats.last_error:
            # every failed reconnection attempt lands here: log each new cause once
            self.log.warning("nats sink: {}", message)
        self.stats.last_error = message

    async def _on_disconnected(self) -> None:
        if self._was_connected and not self._closing:
            self.log.warning("nats sink disconnected; reconnecting (messages buffer meanwhile)")
        self._state_changed()

    async def _on_reconnected(self) -> None:
        nc = self._nc
        self.log.info("nats sink reconnected to {}", _url(nc) if nc is not None else "?")
        self._streams_wanted.set()  # a restarted server may have lost memory streams
        self._state_changed()

    async def _on_closed(self) -> None:
        self._state_changed()

    # -- JetStream ----------------------------------------------------------------------
    async def _ensure_streams(self, nc: NATS) -> bool:
        try:
            await ensure_streams(nc.jetstream(timeout=self.options.flush_timeout), self.options)
        except Exception as exc:
            self.stats.errors += 1
            self.stats.last_error = f"jetstream streams: {type(exc).__name__}: {exc}"
            self.log.error("nats sink: {} (publishing goes on; retrying)", self.stats.last_error)
            return False
        return True

    async def _keep_streams(self, nc: NATS, *, failed: bool) -> None:
        """Recreate the streams when wanted (after a reconnection), and retry a failure
        with a growing pause."""
        pause = self.options.reconnect_wait
        while True:
            if failed:
                await anyio.sleep(pause)
                pause = min(pause * 2, _STREAMS_RETRY_MAX_S)
            else:
                await self._streams_wanted.wait()
                self._streams_wanted = anyio.Event()
                pause = self.options.reconnect_wait
            failed = not await self._ensure_streams(nc)


def _url(nc: NATS) -> str:
    url = nc.connected_url
    return f"{url.scheme}://{url.hostname}:{url.port}" if url is not None else "?"
