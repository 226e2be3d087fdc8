"""Consumer API for the SpiceFlow broadcast.

Subscribe to topic prefixes (``"book.binance."``, ``"book.binance.BTCUSDT"``, ``""``
for everything) and iterate over decoded :mod:`spiceflow_core.broadcast.wire` messages. Each
item also says how many messages on that topic were lost just before it, computed
from gaps in the publisher's per-topic ``topic_seq``.

Usage (asyncio, or anyio on its asyncio backend)::

    import anyio
    from spiceflow_core.broadcast.subscriber import Subscriber
    from spiceflow_core.broadcast.wire import BookMessage

    async def main() -> None:
        async with Subscriber("tcp://127.0.0.1:5555", ["book.binance."]) as sub:
            async for topic, msg, missed in sub:
                if isinstance(msg, BookMessage) and msg.bids and msg.asks:
                    print(topic, msg.bids[0], msg.asks[0], f"missed={missed}")

    anyio.run(main)

For plain scripts, :class:`SyncSubscriber` has the same interface without ``async``.

Notes:

* ZeroMQ "slow joiner": a subscription takes effect a few milliseconds after
  connecting, so messages published in that window are not received.
* The first message seen on a topic reports ``missed=0`` (what was published before
  we joined is not a loss). If ``topic_seq`` goes *down*, the publisher restarted;
  that also reports ``missed=0`` and tracking starts again from the new value.
* A frame that does not decode is counted in ``malformed``, logged, and skipped.
* One ZeroMQ message may carry several bodies of the same topic
  (``Publisher.publish_many``); each becomes its own ``Received``.
* zmq.asyncio needs an asyncio event loop; under anyio use the asyncio backend.
* ``address`` may list several publishers separated by commas (the workers of
  ``spiceflow run --workers N``, the members of a cluster): one socket reads them all.
* Ownership epochs (clustering): a message whose ``epoch`` is below the highest seen
  on its topic comes from a deposed owner and is dropped (counted in ``fenced``); when
  the epoch rises, a new owner publishes with its own ``topic_seq``, so gap tracking
  starts again from its first message.
* Other transports: an address whose scheme a plugin registers (``nats://...`` with
  spiceflow-nats installed; see :mod:`spiceflow_core.broadcast.sources`) works the same
  way -- same prefixes, same decoding and ``missed`` counts. Open such a subscriber with
  ``async with`` (or ``await aopen()`` / ``await aclose()``): connecting is async.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, NamedTuple

import anyio
import msgspec
import zmq
import zmq.asyncio
from loguru import logger

from spiceflow_core.broadcast import sources
from spiceflow_core.broadcast.wire import WireMessage, decoder

__all__ = ["DEFAULT_ADDRESS", "Received", "Subscriber", "SyncSubscriber"]

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"

# How many already-queued messages receive() pulls per wake-up (see _Base._fill).
_BATCH = 256


class Received(NamedTuple):
    topic: str
    message: WireMessage
    missed: int  # messages lost on this topic right before this one


class _Base:
    """Decoding and gap tracking shared by the async and sync subscribers."""

    def __init__(self, address: str, topics: Sequence[str], rcvhwm: int) -> None:
        if isinstance(topics, str):  # a bare string is a classic foot-gun
            topics = (topics,)
        self.address = address
        self.topics = tuple(topics) or ("",)
        self.rcvhwm = rcvhwm
        self.received = 0
        self.missed_total = 0
        self.malformed = 0
        self.fenced = 0  # messages of a deposed owner (lower epoch), dropped
        self._last_seq: dict[str, int] = {}
        self._epoch: dict[str, int] = {}
        self._ready: collections.deque[Received] = collections.deque()
        #: the plugin serving a non-ZeroMQ address (None: ZeroMQ)
        self._factory = sources.find_source(address)

    def _configure(self, sock: zmq.Socket[Any]) -> None:  # sync or asyncio socket
        sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
        sock.setsockopt(zmq.LINGER, 0)
        for address in self.address.split(","):
            sock.connect(address.strip())
        for prefix in self.topics:
            sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())

    def _accept(self, frames: list[bytes]) -> None:
        """Decode one ZeroMQ message ``[topic, body, ...]`` into the ready queue.

        Usually one body; batches from ``Publisher.publish_many`` carry several
        bodies of the same topic. Undecodable frames are counted and skipped.
        """
        if len(frames) < 2:
            self._malformed(f"{len(frames)} frame(s), expected topic + body")
            return
        try:
            topic = frames[0].decode()
        except UnicodeDecodeError as exc:
            self._malformed(exc)
            return
        last_seq = self._last_seq
        last = last_seq.get(topic)
        ready = self._ready
        for body in frames[1:]:
            try:
                message = decoder.decode(body)
            except msgspec.DecodeError as exc:
                self._malformed(exc)
                continue
            epoch = message.epoch
            if epoch != self._epoch.get(topic, 0):
                if epoch < self._epoch.get(topic, 0):
                    self.fenced += 1
                    continue
                self._epoch[topic] = epoch
                last = None
            seq = message.topic_seq
            missed = 0
            if last is not None and seq > last + 1:
                missed = seq - last - 1
                self.missed_total += missed
            last = seq
            self.received += 1
            ready.append(Received(topic, message, missed))
        if last is not None:
            last_seq[topic] = last

    def _malformed(self, why: object) -> None:
        self.malformed += 1
        logger.bind(address=self.address).warning("malformed broadcast frame skipped: {}", why)

    def _fill(self, sync_sock: zmq.Socket[bytes]) -> None:
        # Once one message has arrived, drain what is already queued without going
        # back to the event loop per message: that halves the cost per message at
        # high rates and is bounded so one busy socket cannot starve other tasks.
        recv = sync_sock.recv_multipart
        for _ in range(_BATCH):
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._accept(frames)


class Subscriber(_Base):
    """Async subscriber (zmq.asyncio). Use as ``async with``; iterate or ``receive()``."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        topics: Sequence[str] = ("",),
        *,
        rcvhwm: int = 100_000,
    ) -> None:
        super().__init__(address, topics, rcvhwm)
        self._socket: zmq.asyncio.Socket | None = None
        self._sync: zmq.Socket[bytes] | None = None
        self._source: sources.AsyncSource | None = None

    async def __aenter__(self) -> Subscriber:
        await self.aopen()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aopen(self) -> None:
        """Open for any address (a plugin's source connects here: SourceError)."""
        if self._factory is None:
            self.open()
        elif self._source is None:
            source = self._factory.async_source(self.address, self.topics, capacity=self.rcvhwm)
            await source.open()
            self._source = source

    async def aclose(self) -> None:
        self.close()
        source, self._source = self._source, None
        if source is not None:
            with anyio.CancelScope(shield=True):
                await source.aclose()

    def open(self) -> None:
        if self._factory is not None:
            raise RuntimeError(f"{self.address!r}: use 'async with' or 'await aopen()' (connecting is async)")
        if self._socket is not None:
            return
        sock = zmq.asyncio.Context.instance().socket(zmq.SUB)
        try:
            self._configure(sock)
        except zmq.ZMQError:
            sock.close(linger=0)
            raise
        self._socket = sock
        # A sync view of the same socket, used only to drain already-queued messages
        # (no waiting) on this thread; waiting always goes through the async socket.
        self._sync = zmq.Socket.shadow(sock.underlying)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
            self._sync = None

    async def receive(self) -> Received:
        """Wait for the next message on any subscribed topic."""
        ready = self._ready
        if not ready and self._source is not None:
            source = self._source
            while not ready:
                for frames in await source.receive_many():
                    self._accept(frames)
        if not ready:
            sock, sync = self._socket, self._sync
            if sock is None or sync is None:
                raise RuntimeError("Subscriber is not open (use 'async with')")
            while not ready:
                self._accept(await sock.recv_multipart())
                self._fill(sync)
        return ready.popleft()

    def __aiter__(self) -> AsyncIterator[Received]:
        return self

    async def __anext__(self) -> Received:
        return await self.receive()


class SyncSubscriber(_Base):
    """Blocking subscriber for scripts: ``with SyncSubscriber(...) as sub: for r in sub``."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        topics: Sequence[str] = ("",),
        *,
        rcvhwm: int = 100_000,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        super().__init__(address, topics, rcvhwm)
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket[bytes] | None = None
        self._source: sources.SyncSource | None = None

    def __enter__(self) -> SyncSubscriber:
        if self._factory is not None:
            if self._source is None:
                source = self._factory.sync_source(self.address, self.topics, capacity=self.rcvhwm)
                source.open()
                self._source = source
        elif self._socket is None:
            sock = self._context.socket(zmq.SUB)
            try:
                self._configure(sock)
            except zmq.ZMQError:
                sock.close(linger=0)
                raise
            self._socket = sock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def receive(self, timeout_ms: int | None = None) -> Received | None:
        """Next message, or None if ``timeout_ms`` passes first (None waits forever)."""
        ready = self._ready
        if not ready and self._source is not None:
            source = self._source
            while not ready:
                batch = source.receive_many(timeout_ms)
                if not batch:
                    return None
                for frames in batch:
                    self._accept(frames)
        if not ready:
            sock = self._socket
            if sock is None:
                raise RuntimeError("SyncSubscriber is not open (use 'with')")
            while not ready:
                if timeout_ms is not None and not sock.poll(timeout_ms, zmq.POLLIN):
                    return None
                self._accept(sock.recv_multipart())
                self._fill(sock)
        return ready.popleft()

    def __iter__(self) -> Iterator[Received]:
        while True:
            item = self.receive()
            assert item is not None
            yield item
