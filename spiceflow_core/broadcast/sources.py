"""Broadcast sources besides ZeroMQ, for :class:`~spiceflow_core.broadcast.subscriber.Subscriber`,
:class:`~spiceflow_core.broadcast.subscriber.SyncSubscriber` and ``spiceflow tail``.

An address whose scheme ZeroMQ does not speak (``nats://host:4222``) is served by the
distribution that registers that scheme in the ``spiceflow.subscribers`` entry-point
group: the entry point's name is the scheme, its object a :class:`SourceFactory`::

    [project.entry-points."spiceflow.subscribers"]
    myscheme = "my_sink.subscriber:source"

A source only moves raw messages in ZeroMQ's shape, ``[topic, body, ...]`` (the topic
as UTF-8 bytes, each body the msgpack wire message the sink received), so decoding,
malformed-frame counting and ``topic_seq`` gap detection stay in ``subscriber.py`` and
behave the same whatever the transport. Topic prefixes keep ZeroMQ's meaning: a message
is delivered once when its topic starts with any of them.

The entry point is loaded only when such an address is used: ZeroMQ consumers import
nothing more.
"""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Sequence
from typing import Protocol, cast

__all__ = [
    "ENTRY_POINT_GROUP",
    "ZMQ_SCHEMES",
    "AsyncSource",
    "SourceError",
    "SourceFactory",
    "SyncSource",
    "find_source",
    "scheme_of",
]

ENTRY_POINT_GROUP = "spiceflow.subscribers"
#: transports libzmq connects to itself
ZMQ_SCHEMES = frozenset({"tcp", "ipc", "inproc", "pgm", "epgm", "norm", "vmci", "udp", "ws", "wss"})


class SourceError(OSError):
    """A source cannot be opened: no plugin for the scheme, a bad address, no server."""


class AsyncSource(Protocol):
    async def open(self) -> None:
        """Connect and subscribe (raise :class:`SourceError` when that fails)."""

    async def receive_many(self) -> list[list[bytes]]:
        """Wait for at least one message; return every one already received."""

    async def aclose(self) -> None:
        """Release the connection (idempotent)."""


class SyncSource(Protocol):
    def open(self) -> None:
        """Connect and subscribe (raise :class:`SourceError` when that fails)."""

    def receive_many(self, timeout_ms: int | None) -> list[list[bytes]]:
        """Like ``AsyncSource.receive_many``, blocking; ``[]`` when ``timeout_ms`` passes."""

    def close(self) -> None:
        """Release the connection (idempotent)."""


class SourceFactory(Protocol):
    """What a ``spiceflow.subscribers`` entry point names. ``capacity`` bounds what is
    held for a consumer that does not keep up (ZeroMQ's ``RCVHWM``): beyond it messages
    are dropped, which consumers see as ``topic_seq`` gaps."""

    def async_source(self, address: str, topics: Sequence[str], *, capacity: int) -> AsyncSource: ...

    def sync_source(self, address: str, topics: Sequence[str], *, capacity: int) -> SyncSource: ...


def scheme_of(address: str) -> str:
    scheme, sep, _ = address.partition("://")
    return scheme.lower() if sep else ""


def find_source(address: str) -> SourceFactory | None:
    """The factory serving ``address``, or None when ZeroMQ does (a ZeroMQ scheme, or
    no scheme at all: libzmq reports that). SourceError when no installed distribution
    registers the scheme."""
    scheme = scheme_of(address)
    if not scheme or scheme in ZMQ_SCHEMES:
        return None
    entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in entry_points:
        if ep.name.lower() == scheme:
            try:
                return cast("SourceFactory", ep.load())
            except Exception as exc:
                dist = ep.dist.name if ep.dist is not None else "?"
                raise SourceError(f"{scheme}:// subscriber plugin ({dist}) failed to load: {exc}") from exc
    known = sorted({ep.name for ep in entry_points} | {"tcp", "ipc"})
    raise SourceError(f"no installed subscriber plugin for {scheme}:// addresses (known schemes: {', '.join(known)})")
