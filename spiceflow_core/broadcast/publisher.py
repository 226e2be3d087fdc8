"""ZeroMQ PUB side of the broadcast: one socket, many consumers, never blocks.

Every message goes out as two frames, ``[topic, body]``: the topic is
``{channel}.{venue}.{symbol}`` (``book.binance.BTCUSDT``) so subscribers filter by
prefix inside ZeroMQ, and the body is the msgpack encoding of a
:mod:`spiceflow_core.broadcast.wire` struct.

Slow consumers and memory
-------------------------
A PUB socket keeps one outbound queue per connected subscriber, capped at
``hwm`` messages (``SNDHWM``). When a subscriber's queue is full, libzmq *silently
discards* further messages for that subscriber only; the send call never blocks
and never fails, and fast subscribers are unaffected. Memory is therefore bounded
by roughly ``hwm x message size`` per subscriber (plus kernel socket buffers and the
subscriber's own ``RCVHWM``): at the default 100,000 and ~1.3 kB per 25-level book
message that is ~130 MB per completely stuck consumer. Lower ``hwm`` when many
consumers may stall.

Drop detection: ``topic_seq``
-----------------------------
Because those HWM drops happen inside libzmq, per subscriber, the publisher cannot
see them. What it can guarantee is that every message it *tries* to publish on a
topic gets the next ``topic_seq`` (1, 2, 3, ...), **whether or not the send
succeeds**. A consumer that sees ``topic_seq`` jump from 7 to 10 knows it missed
exactly 2 messages on that topic -- whichever layer dropped them (this socket at
``zmq.Again``, the per-subscriber HWM, or its own ``RCVHWM``). Incrementing only on
success would hide publisher-side drops from every consumer. The counter restarts
at 1 when a new Publisher is created, so consumers treat a decrease as a restart,
not as a loss.

``publish`` returns False and counts a drop only when ZeroMQ raises ``zmq.Again``.
With a plain PUB socket libzmq never does (see above), so ``dropped`` stays 0 in
practice; it exists so the contract holds if the socket type or options change.

Batches
-------
:meth:`Publisher.publish` sends ``[topic, body]`` at once. :meth:`Publisher.stage` stamps
and encodes a message the same way but keeps it until :meth:`Publisher.flush`, which
sends what was staged in order, each run of consecutive messages of one topic as one
ZeroMQ message ``[topic, body, body, ...]`` (at most :data:`MAX_BODIES` bodies, in
``topic_seq`` order); :meth:`Publisher.publish_many` is both at once. Consumers must
decode every frame after the topic (``spiceflow_core.broadcast.subscriber`` does). The
live frame path stages the messages of the frames of one socket read and flushes after
the read's last frame (``BroadcastActor.staged``): the cost that dominates at high rates
is per ZeroMQ message (I/O-thread wake-ups and a TCP syscall on each side), not per
body, and a read of many frames pays it once per run instead of once per frame. Order
across topics is kept: only consecutive messages of one topic share a ZeroMQ message.

Threading: a zmq socket must stay on one thread. Call :meth:`Publisher.publish`
from the event-loop thread only; it does no I/O wait (``zmq.NOBLOCK``), the
background ZeroMQ I/O thread does the network writes.

Closing without blocking the event loop
---------------------------------------
Messages ZeroMQ accepted may still sit in a subscriber's queue. Giving them time to
reach the network ("linger") means waiting in ``zmq_ctx_term`` until they are out or
the linger time is up -- up to 500 ms with a stuck consumer. So:

* ``await publisher.aclose()`` (default linger 500 ms) closes the socket on the loop
  thread and waits for the flush in a worker thread: the loop keeps running, and
  every message already queued for a connected consumer that keeps reading is
  delivered before ``aclose`` returns. This is the close for async code.
* ``publisher.close()`` never waits when called on a thread running an asyncio event
  loop: there the default linger is 0 and messages still queued are discarded.
  Elsewhere (a plain script such as ``spiceflow replay``) it lingers 500 ms like
  ``aclose``. An explicit ``close(linger_ms=...)`` is honoured everywhere.

With a ZeroMQ context passed in by the caller, neither waits: the socket keeps
flushing in the background for its linger time, and the context owner's ``term()``
waits for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import anyio
import msgspec
import zmq
import zmq.backend

from spiceflow_core.broadcast.wire import CHANNEL_OF, WireMessage, encoder

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_LINGER_MS", "MAX_BODIES", "Publisher", "TopicCounts"]

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"

#: How long closing waits for queued messages to reach the network (see the module doc).
DEFAULT_LINGER_MS = 500

#: Most bodies packed into one ZeroMQ message by :meth:`Publisher.publish_many`.
#: The HWM counts ZeroMQ messages, so the memory bound per stuck subscriber becomes
#: up to ``hwm x MAX_BODIES x message size`` when batches are full.
MAX_BODIES = 64


# pyzmq's Python-level ``Socket.send`` (zmq.sugar) spends ~170 ns per call on options we
# never use (routing ids, groups, the zero-copy threshold for frames > 64 kB); its base
# class, the Cython backend socket, does the same send without them. Called unbound on
# our (sugar) socket: ``send_frame(socket, data, flags)``.
send_frame = zmq.backend.Socket.send
_NOBLOCK = zmq.NOBLOCK
_MORE = zmq.NOBLOCK | zmq.SNDMORE


@dataclass(slots=True)
class TopicCounts:
    """Per-topic publish counters. ``seq`` is the last ``topic_seq`` handed out
    (= messages attempted on this topic); ``dropped`` those refused with zmq.Again."""

    topic: str
    seq: int = 0
    dropped: int = 0


class _Topic:
    # The hot path looks this up once per message: pre-encoded topic frame + counters,
    # and the ownership epoch stamped on the topic's messages (clustering; else 0).
    __slots__ = ("counts", "epoch", "frame", "received", "symbol", "venue")

    def __init__(self, topic: str, venue: str, symbol: str, received: bool, epoch: int = 0) -> None:
        self.counts = TopicCounts(topic)
        self.frame = topic.encode()
        self.venue = venue
        self.symbol = symbol
        #: the topic's messages carry a receive stamp (``recv_ts_ns``): books, tops, trades
        self.received = received
        self.epoch = epoch


class FlushedRun(NamedTuple):
    """One run of :meth:`Publisher.flush`: consecutive messages of one topic."""

    venue: str
    symbol: str
    #: its messages carry a receive stamp (their latency can be measured)
    received: bool
    #: messages ZeroMQ took
    sent: int
    #: messages refused (``zmq.Again``: the HWM was reached); their ``topic_seq`` stays a gap
    refused: int


class Publisher:
    """Publishes :data:`~spiceflow_core.broadcast.wire.WireMessage` structs on a bound PUB socket.

    ``address`` may use an ephemeral port (``tcp://127.0.0.1:*`` or ``:0``); the
    resolved endpoint is then available as :attr:`address`.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        hwm: int = 100_000,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        if address.startswith("tcp://") and address.endswith(":0"):
            address = address[:-2] + ":*"
        self._own_context = context is None
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context() if context is None else context
        self._socket = self._context.socket(zmq.PUB)
        try:
            # HWM applies to pipes created after it is set: set before bind.
            self._socket.setsockopt(zmq.SNDHWM, hwm)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.bind(address)
        except zmq.ZMQError as exc:
            self._socket.close(linger=0)
            if self._own_context:
                self._context.term()
            raise OSError(f"cannot bind broadcast socket to {address!r}: {exc}") from exc
        endpoint = self._socket.getsockopt(zmq.LAST_ENDPOINT)
        self.address: str = endpoint.decode() if isinstance(endpoint, bytes) and endpoint else address
        self.hwm = hwm
        self.published = 0  # messages accepted by ZeroMQ (not: delivered to anyone)
        self.dropped = 0  # messages refused with zmq.Again
        self._topics: dict[tuple[type, str, str], _Topic] = {}
        #: (venue, symbol) -> ownership epoch (``set_epoch``); absent = 0
        self._epochs: dict[tuple[str, str], int] = {}
        self._closed = False
        #: the topic and encoded body of the last message published or staged (stamped,
        #: whether ZeroMQ took it or not): what the other sinks receive, encoded once
        self.last_topic = ""
        self.last_body = b""
        #: staged runs, in order: (topic, its frames: the topic frame then the bodies)
        self._staged: list[tuple[_Topic, list[bytes]]] = []

    # -- publishing -------------------------------------------------------------

    def publish(self, message: WireMessage) -> bool:
        """Stamp ``topic_seq``/``publish_ts_ns`` on ``message`` (in place) and send it.

        Returns True when ZeroMQ accepted the message (it may still be discarded
        later for a subscriber that is at its HWM), False when it was dropped here.
        Never blocks.
        """
        entry, body = self._stamp(message)
        counts = entry.counts
        try:
            # Frames are small (< pyzmq's 64 kB copy threshold), so copying is
            # cheaper than zero-copy tracking. ZeroMQ delivers multipart messages
            # atomically: once the first frame is queued the second cannot fail.
            socket = self._socket
            send_frame(socket, entry.frame, _MORE)
            send_frame(socket, body, _NOBLOCK)
        except zmq.Again:
            counts.dropped += 1
            self.dropped += 1
            return False
        self.published += 1
        return True

    def _stamp(self, message: WireMessage) -> tuple[_Topic, bytes]:
        """Take the topic's next ``topic_seq`` (before any send: a drop must leave a gap),
        stamp ``publish_ts_ns`` and the epoch, encode once (``last_topic``/``last_body``:
        what the other sinks get). Returns the topic and the body."""
        key = (type(message), message.venue, message.symbol)
        entry = self._topics.get(key)
        if entry is None:
            entry = self._new_topic(key)
        counts = entry.counts
        counts.seq += 1
        message.topic_seq = counts.seq
        message.publish_ts_ns = time.time_ns()
        message.epoch = entry.epoch
        body = self.last_body = encoder.encode(message)
        self.last_topic = counts.topic
        return entry, body

    def stage(self, message: WireMessage) -> None:
        """Stamp and encode ``message`` like :meth:`publish` (``topic_seq`` taken now,
        ``last_topic``/``last_body`` set) and keep it for the next :meth:`flush`."""
        entry, body = self._stamp(message)
        staged = self._staged
        if staged:
            last, frames = staged[-1]
            if last is entry and len(frames) <= MAX_BODIES:
                frames.append(body)
                return
        staged.append((entry, [entry.frame, body]))

    def flush(self) -> list[FlushedRun]:
        """Send everything staged, in order (see "Batches" in the module doc). Returns
        each run sent or refused (refused runs are counted in ``dropped``)."""
        staged, self._staged = self._staged, []
        runs: list[FlushedRun] = []
        for entry, frames in staged:
            n = len(frames) - 1
            sent = self._send_frames(entry, frames)
            runs.append(FlushedRun(entry.venue, entry.symbol, entry.received, sent, n - sent))
        return runs

    def publish_many(self, messages: Iterable[WireMessage]) -> int:
        """Stage every message and flush: runs of one topic go out as one ZeroMQ
        message each. Returns the number of messages accepted."""
        for message in messages:
            self.stage(message)
        return sum(run.sent for run in self.flush())

    def _send_frames(self, entry: _Topic, frames: list[bytes]) -> int:
        n = len(frames) - 1
        socket = self._socket
        try:
            # == send_multipart(frames, NOBLOCK): once the first frame is queued the
            # rest of a multipart message cannot fail (ZeroMQ queues it atomically)
            for frame in frames[:-1]:
                send_frame(socket, frame, _MORE)
            send_frame(socket, frames[-1], _NOBLOCK)
        except zmq.Again:
            entry.counts.dropped += n
            self.dropped += n
            return 0
        self.published += n
        return n

    def _new_topic(self, key: tuple[type, str, str]) -> _Topic:
        if self._closed:
            raise RuntimeError("publish() on a closed Publisher")
        cls, venue, symbol = key
        try:
            channel = CHANNEL_OF[cls]
        except KeyError:
            raise TypeError(f"not a wire message: {cls.__name__}") from None
        received = any(field.name == "recv_ts_ns" for field in msgspec.structs.fields(cls))
        entry = _Topic(f"{channel}.{venue}.{symbol}", venue, symbol, received, self._epochs.get((venue, symbol), 0))
        self._topics[key] = entry
        return entry

    def set_epoch(self, venue: str, symbol: str, epoch: int) -> None:
        """Stamp ``epoch`` on every later message of the instrument's topics (the cluster
        member sets it when it becomes the owner, and 0 when it stops owning)."""
        self._epochs[(venue, symbol)] = epoch
        for (_, v, s), entry in self._topics.items():
            if v == venue and s == symbol:
                entry.epoch = epoch

    # -- introspection ----------------------------------------------------------

    @property
    def topic_counts(self) -> dict[str, TopicCounts]:
        """Counters per topic, keyed by topic string (a snapshot copy)."""
        return {
            e.counts.topic: TopicCounts(e.counts.topic, e.counts.seq, e.counts.dropped) for e in self._topics.values()
        }

    @property
    def closed(self) -> bool:
        return self._closed

    # -- lifecycle --------------------------------------------------------------

    def close(self, linger_ms: int | None = None) -> None:
        """Close now; give queued messages ``linger_ms`` to reach the network.

        ``None`` means 0 on a thread running an asyncio event loop (closing never
        blocks the loop; queued messages are discarded -- use :meth:`aclose` to keep
        them) and :data:`DEFAULT_LINGER_MS` elsewhere. Idempotent. Terminates the
        ZeroMQ context only if this Publisher created it; that is where the wait is.
        """
        if self._closed:
            return
        if self._staged:
            self.flush()
        if linger_ms is None:
            linger_ms = 0 if _on_event_loop() else DEFAULT_LINGER_MS
        self._closed = True
        self._socket.close(linger=linger_ms)
        if self._own_context:
            self._context.term()

    async def aclose(self, linger_ms: int = DEFAULT_LINGER_MS) -> None:
        """Close, giving queued messages up to ``linger_ms`` to reach the network,
        without blocking the event loop: ``zmq_close`` returns at once and the wait
        (``zmq_ctx_term``) runs in a worker thread. Returns when everything queued was
        sent or the linger time is up. Idempotent; completes even when the calling
        scope is being cancelled (a shutdown ``finally:`` can await it)."""
        if self._closed:
            return
        if self._staged:
            self.flush()
        self._closed = True
        # zmq_close only hands the socket to the ZeroMQ I/O thread; it does not wait
        self._socket.close(linger=linger_ms)
        if self._own_context:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._context.term)

    def __del__(self) -> None:
        # A Publisher dropped without close(): without this, the context's own
        # finalizer can wait forever in term() for a socket that is still open.
        if not getattr(self, "_closed", True):
            self.close(linger_ms=0)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"Publisher({self.address!r}, published={self.published}, "
            f"dropped={self.dropped}, topics={len(self._topics)})"
        )


def _on_event_loop() -> bool:
    """Whether this thread is running an asyncio event loop (anyio's asyncio backend
    included): blocking here would stall every task."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
