"""The consumer side: ``nats://`` addresses for ``Subscriber``, ``SyncSubscriber`` and
``spiceflow tail`` (entry point ``spiceflow.subscribers: nats`` -> :data:`source`).

Address: ``nats://HOST:PORT[,HOST:PORT...][?prefix=P&deliver=last]``

* several servers (one cluster) separated by commas; nats-py reconnects among them;
* ``prefix``: the sink's ``subject_prefix``;
* ``deliver=last`` (needs the sink's ``jetstream = true``): book topics come from an
  ordered JetStream consumer of the books stream that first delivers the last book of
  every matching instrument, then every update live; other topics come from core NATS.
  Without it (``deliver=new``, the default) everything is core NATS, live only.

Messages are handed to the core as ``[topic, body]`` (ZeroMQ's shape): the core decodes
them and counts ``topic_seq`` gaps, so a loss anywhere (the sink's buffer, the server's
slow-consumer cut, this side's ``capacity``) shows up as ``missed``.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import anyio
from loguru import logger
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from spiceflow_core.broadcast.sources import SourceError

from .jetstream import books_subject
from .subjects import BOOK_CHANNEL, check_prefix, subject_of_prefix, topic_for_subject, widest

__all__ = ["NatsSource", "Plan", "SyncNatsSource", "plan", "source"]

_CONNECT_TIMEOUT_S = 3.0
_RECONNECT_WAIT_S = 0.5
_DRAIN_PER_CALL = 256
_BOOKS = f"{BOOK_CHANNEL}."


@dataclass(frozen=True)
class Plan:
    """What one subscriber connects to and subscribes to."""

    servers: tuple[str, ...]
    prefix: str
    #: core NATS subscriptions
    core: tuple[str, ...]
    #: ordered JetStream consumers, deliver last per subject (``deliver=last``)
    stream: tuple[str, ...]
    #: topic prefixes a message must start with (None: the subjects are exact)
    check: tuple[str, ...] | None
    #: core subscriptions also match book subjects the stream consumers deliver
    skip_core_books: bool


def plan(address: str, topics: Sequence[str]) -> Plan:
    """Parse ``address`` and turn ZeroMQ-style topic prefixes into subscriptions."""
    parts = urlsplit(address)
    if parts.scheme != "nats" or not parts.netloc:
        raise SourceError(f"{address!r}: expected nats://HOST:PORT[,HOST:PORT][?prefix=...&deliver=last]")
    options = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(options) - {"prefix", "deliver"}
    if unknown:
        raise SourceError(f"{address!r}: unknown option(s) {', '.join(sorted(unknown))} (prefix, deliver)")
    deliver = options.get("deliver", "new")
    if deliver not in ("new", "last"):
        raise SourceError(f"{address!r}: deliver={deliver!r} (new or last)")
    try:
        prefix = check_prefix(options.get("prefix", ""))
    except ValueError as exc:
        raise SourceError(f"{address!r}: {exc}") from None
    servers = tuple(f"nats://{host}" for host in parts.netloc.split(",") if host)
    wanted = list(dict.fromkeys(topics)) or [""]
    core: list[str] = []
    stream: list[str] = []
    exact = True
    skip_core_books = False
    for topic_prefix in wanted:
        subject, is_exact = subject_of_prefix(topic_prefix, prefix)
        exact = exact and is_exact
        if deliver == "last" and topic_prefix.startswith(_BOOKS):
            stream.append(subject)  # books only
        elif deliver == "last" and _BOOKS.startswith(topic_prefix):
            # books and other channels: books from the stream, the rest from core NATS
            stream.append(books_subject(prefix))
            core.append(subject)
            skip_core_books = True
        else:
            core.append(subject)
    return Plan(
        servers=servers,
        prefix=prefix,
        core=tuple(widest(core)),
        stream=tuple(widest(stream)),
        check=None if exact else tuple(wanted),
        skip_core_books=skip_core_books,
    )


class _Receiver:
    """Turns NATS messages into ``[topic, body]`` for ``deliver`` (filtering per plan)."""

    def __init__(self, plan: Plan, deliver: Callable[[list[bytes]], None]) -> None:
        self.plan = plan
        self.deliver = deliver
        # subject -> topic bytes, or None when the plan filters that subject out; one
        # map per kind of subscription (core ones may have to skip book subjects)
        self._core: dict[str, bytes | None] = {}
        self._stream: dict[str, bytes | None] = {}
        self._skip_books = plan.prefix + _BOOKS if plan.skip_core_books else None

    def _topic(self, subject: str, skip: str | None) -> bytes | None:
        if skip is not None and subject.startswith(skip):
            return None
        try:
            text = topic_for_subject(subject, self.plan.prefix)
        except ValueError:
            return None  # not a subject the sink makes: not ours
        check = self.plan.check
        if check is not None and not text.startswith(check):
            return None
        return text.encode()

    async def on_core(self, msg: Msg) -> None:
        subject = msg.subject
        try:
            topic = self._core[subject]
        except KeyError:
            topic = self._core[subject] = self._topic(subject, self._skip_books)
        if topic is not None:
            self.deliver([topic, msg.data])

    async def on_stream(self, msg: Msg) -> None:
        subject = msg.subject
        try:
            topic = self._stream[subject]
        except KeyError:
            topic = self._stream[subject] = self._topic(subject, None)
        if topic is not None:
            self.deliver([topic, msg.data])


class _ConnectionLog:
    """nats-py's connection callbacks: errors while connecting are kept for the
    SourceError; once connected, each new cause is logged once."""

    def __init__(self) -> None:
        self.last_error = ""
        self.connected = False
        self.closing = False
        self.log = logger.bind(source="nats")

    async def on_error(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if self.connected and message != self.last_error:
            self.log.warning("nats subscriber: {}", message)
        self.last_error = message

    async def on_disconnected(self) -> None:
        if self.connected and not self.closing:
            self.log.warning("nats subscriber disconnected; reconnecting")

    async def on_reconnected(self) -> None:
        self.log.info("nats subscriber reconnected")


@dataclass
class _Connection:
    nc: NATS
    events: _ConnectionLog

    async def close(self) -> None:
        self.events.closing = True
        await _close(self.nc)


async def _open(plan: Plan, receiver: _Receiver, capacity: int) -> _Connection:
    """Connect (for at most a few seconds) and subscribe; SourceError on failure."""
    nc = NATS()
    events = _ConnectionLog()
    where = ",".join(plan.servers)
    try:
        with anyio.fail_after(_CONNECT_TIMEOUT_S):
            await nc.connect(
                servers=list(plan.servers),
                name="spiceflow-subscriber",
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=_RECONNECT_WAIT_S,  # type: ignore[arg-type]  # a float works (asyncio.sleep)
                error_cb=events.on_error,
                disconnected_cb=events.on_disconnected,
                reconnected_cb=events.on_reconnected,
            )
    except TimeoutError:
        await _close(nc)
        raise SourceError(f"cannot connect to {where}: {events.last_error or 'timed out'}") from None
    except BaseException:
        await _close(nc)
        raise
    events.connected = True
    try:
        for subject in plan.core:
            await nc.subscribe(subject, cb=receiver.on_core, pending_msgs_limit=capacity)
        if plan.stream:
            js = nc.jetstream()
            for subject in plan.stream:
                await js.subscribe(
                    subject,
                    cb=receiver.on_stream,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                    pending_msgs_limit=capacity,
                )
        # the server must have registered every subscription once open() returns (else
        # the first messages published elsewhere pass before they exist). nats-py writes
        # a flush's PING straight to the socket, ahead of the SUBs still in its buffer:
        # the first round trip lets its flusher task write them, the second one's PONG
        # comes after the server has read them
        await nc.flush()
        await nc.flush()
    except NotFoundError:
        await _close(nc)
        raise SourceError(
            f"{where}: no JetStream stream holds {', '.join(plan.stream)} (deliver=last needs the sink's jetstream = true)"
        ) from None
    except (NatsError, OSError) as exc:
        await _close(nc)
        raise SourceError(f"{where}: cannot subscribe: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        await _close(nc)
        raise
    return _Connection(nc, events)


async def _close(nc: NATS) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(2):
        await nc.close()


class NatsSource:
    """The async source (``Subscriber("nats://...")``)."""

    def __init__(self, address: str, topics: Sequence[str], *, capacity: int) -> None:
        self.plan = plan(address, topics)
        self.capacity = capacity
        #: messages this side dropped because the consumer fell ``capacity`` behind
        self.dropped = 0
        self._connection: _Connection | None = None
        self._ready: collections.deque[list[bytes]] = collections.deque()
        self._wake_send, self._wake_recv = anyio.create_memory_object_stream[None](1)

    def _deliver(self, frames: list[bytes]) -> None:
        ready = self._ready
        if len(ready) >= self.capacity:
            self.dropped += 1
            return
        ready.append(frames)
        if len(ready) == 1:
            try:
                self._wake_send.send_nowait(None)
            except anyio.WouldBlock:
                pass  # a wake-up is already pending

    async def open(self) -> None:
        if self._connection is None:
            self._connection = await _open(self.plan, _Receiver(self.plan, self._deliver), self.capacity)

    async def receive_many(self) -> list[list[bytes]]:
        if self._connection is None:
            raise RuntimeError("the NATS source is not open")
        ready = self._ready
        while not ready:
            await self._wake_recv.receive()
        batch = list(ready)
        ready.clear()
        return batch

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


class SyncNatsSource:
    """The blocking source (``SyncSubscriber("nats://...")``): nats-py is asyncio-only,
    so the connection lives on its own thread running its own event loop; messages
    cross to the caller through a bounded queue."""

    def __init__(self, address: str, topics: Sequence[str], *, capacity: int) -> None:
        self.plan = plan(address, topics)
        self.capacity = capacity
        self.dropped = 0
        self._queue: queue.Queue[list[bytes]] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def _deliver(self, frames: list[bytes]) -> None:
        try:
            self._queue.put_nowait(frames)
        except queue.Full:
            self.dropped += 1

    def open(self) -> None:
        if self._thread is not None:
            return
        opened = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=asyncio.run, args=(self._serve(opened, failure),), name="spiceflow-nats-subscriber", daemon=True
        )
        thread.start()
        opened.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread = thread

    async def _serve(self, opened: threading.Event, failure: list[BaseException]) -> None:
        self._loop = asyncio.get_running_loop()
        stop = self._stop = asyncio.Event()
        try:
            connection = await _open(self.plan, _Receiver(self.plan, self._deliver), self.capacity)
        except BaseException as exc:
            failure.append(exc)
            opened.set()
            return
        opened.set()
        try:
            await stop.wait()
        finally:
            await connection.close()

    def receive_many(self, timeout_ms: int | None) -> list[list[bytes]]:
        if self._thread is None:
            raise RuntimeError("the NATS source is not open")
        try:
            first = self._queue.get(timeout=None if timeout_ms is None else timeout_ms / 1000)
        except queue.Empty:
            return []
        batch = [first]
        get = self._queue.get_nowait
        for _ in range(_DRAIN_PER_CALL):
            try:
                batch.append(get())
            except queue.Empty:
                break
        return batch

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=5)


class _Factory:
    """The ``spiceflow.subscribers`` entry point's object for ``nats://``."""

    def async_source(self, address: str, topics: Sequence[str], *, capacity: int) -> NatsSource:
        return NatsSource(address, topics, capacity=capacity)

    def sync_source(self, address: str, topics: Sequence[str], *, capacity: int) -> SyncNatsSource:
        return SyncNatsSource(address, topics, capacity=capacity)


source = _Factory()
