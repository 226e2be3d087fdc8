"""The sink contract: where published wire messages go besides (or instead of) the
built-in ZeroMQ publisher.

A sink distribution registers a module under the ``spiceflow.sinks`` entry-point group;
the module implements the ``spiceflow_sinks`` hook and returns :class:`SinkPlugin`
objects. ``[sinks.<name>]`` in spiceflow.toml turns the plugin called ``<name>`` on, its
table decoded into the plugin's ``options_type`` (unknown key: exit 2 naming it).

Every message the pipeline publishes reaches every sink's ``offer`` synchronously, on
the frame path, already stamped (``topic_seq``, ``publish_ts_ns``) and encoded once:
``topic`` is ``{channel}.{venue}.{symbol}`` and ``body`` the msgpack bytes of the wire
schema (``spiceflow_core.broadcast.wire``), the same bytes ZeroMQ consumers receive.
``offer`` must never block or await: :class:`BufferedSink` keeps a bounded buffer and
counts what does not fit (a dropped message leaves a gap in that topic's ``topic_seq``
for that sink's consumers, exactly as a ZeroMQ high-water-mark drop does); its ``run``
task writes batches with ``write``.
"""

from __future__ import annotations

import abc
from collections import deque
from typing import ClassVar

import anyio
import msgspec
import pluggy

from spiceflow_core.broadcast.wire import WireMessage

PROJECT = "spiceflow"
ENTRY_POINT_GROUP = "spiceflow.sinks"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class SinkStats(msgspec.Struct, kw_only=True):
    name: str
    offered: int = 0
    written: int = 0
    dropped: int = 0
    buffered: int = 0
    errors: int = 0
    last_error: str = ""


class Sink(abc.ABC):
    """One running sink."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = SinkStats(name=name)

    @abc.abstractmethod
    def offer(self, topic: str, body: bytes, message: WireMessage) -> None:
        """Take one message; never blocks (count a drop instead)."""

    def current_stats(self) -> SinkStats:
        return self.stats

    async def run(self) -> None:
        """The sink's own task (started by the orchestrator, cancelled at shutdown)."""
        await anyio.sleep_forever()

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Flush and release resources (called once, after ``run`` was cancelled)."""


class BufferedSink(Sink):
    """A sink that writes asynchronously: ``offer`` appends to a bounded buffer, ``run``
    hands what accumulated to ``write`` in batches (one batch per wake-up)."""

    def __init__(self, name: str, capacity: int) -> None:
        super().__init__(name)
        self.capacity = capacity
        self._buffer: deque[tuple[str, bytes, WireMessage]] = deque()
        self._wake_send, self._wake_recv = anyio.create_memory_object_stream[None](1)

    def offer(self, topic: str, body: bytes, message: WireMessage) -> None:
        stats = self.stats
        stats.offered += 1
        if len(self._buffer) >= self.capacity:
            stats.dropped += 1
            return
        self._buffer.append((topic, body, message))
        if len(self._buffer) == 1:
            try:
                self._wake_send.send_nowait(None)
            except anyio.WouldBlock:
                pass  # a wake-up is already pending

    @abc.abstractmethod
    async def write(self, batch: list[tuple[str, bytes, WireMessage]]) -> None:
        """Write one batch (in order). An exception is counted and logged by ``run``;
        the batch is lost for this sink and the sink goes on."""

    async def run(self) -> None:
        from loguru import logger

        log = logger.bind(actor="sink", sink=self.name)
        while True:
            if not self._buffer:
                await self._wake_recv.receive()
                continue
            batch = list(self._buffer)
            self._buffer.clear()
            self.stats.buffered = 0
            try:
                await self.write(batch)
                self.stats.written += len(batch)
            except Exception as exc:
                self.stats.errors += 1
                self.stats.dropped += len(batch)
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.error("sink {} failed to write {} message(s): {}", self.name, len(batch), self.stats.last_error)

    def current_stats(self) -> SinkStats:
        self.stats.buffered = len(self._buffer)
        return self.stats


class SinkPlugin(abc.ABC):
    """What a sink distribution provides: a name, a typed options struct, a factory."""

    #: the ``[sinks.<name>]`` table that turns it on
    name: ClassVar[str]
    #: a msgspec Struct (``forbid_unknown_fields=True``) the table is decoded into
    options_type: ClassVar[type[msgspec.Struct]]

    @abc.abstractmethod
    def create(self, options: msgspec.Struct) -> Sink:
        """A new sink for one run (not started yet: the orchestrator runs ``run``)."""


@hookspec
def spiceflow_sinks() -> list[SinkPlugin]:  # type: ignore[empty-body]
    """Return the sink plugins this distribution provides."""
