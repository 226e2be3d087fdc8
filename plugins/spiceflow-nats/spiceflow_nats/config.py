"""``[sinks.nats]``: the sink's options (decoded by the core; an unknown key is an error
naming it)."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from .subjects import check_prefix

__all__ = ["DEFAULT_SERVER", "NAME", "NatsOptions"]

#: the sink's name: its ``[sinks.nats]`` section and its entry point
NAME = "nats"
DEFAULT_SERVER = "nats://127.0.0.1:4222"
_SCHEMES = ("nats://", "tls://", "ws://", "wss://")
# JetStream stream names: no whitespace, '.', '*', '>', path separators
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]+")


class NatsOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Where and how the sink publishes. Every wire message goes to the subject
    ``{subject_prefix}{topic}`` with the body ZeroMQ consumers get."""

    #: NATS server URLs (one cluster; nats-py fails over and reconnects among them)
    servers: list[str] = msgspec.field(default_factory=lambda: [DEFAULT_SERVER])
    #: prepended to every subject, e.g. "spiceflow" -> spiceflow.book.binance.BTCUSDT
    subject_prefix: str = ""
    #: messages held while NATS is slow or away; beyond it messages are dropped (counted)
    capacity: int = 100_000
    #: connection name shown by the server's monitoring
    name: str = "spiceflow"
    #: seconds between reconnection attempts to a server
    reconnect_wait: float = 1.0
    #: seconds a flush (PING/PONG after each batch) may take before it is reported
    flush_timeout: float = 5.0
    #: create or update the two streams below at start (and after each reconnection)
    jetstream: bool = False
    #: last book per subject (max_msgs_per_subject = 1): a late joiner gets every book at once
    books_stream: str = "SPICEFLOW_BOOKS"
    books_storage: Literal["memory", "file"] = "memory"
    #: trades kept by age and size
    trades_stream: str = "SPICEFLOW_TRADES"
    trades_storage: Literal["memory", "file"] = "file"
    trades_max_age: float = 86_400.0  # seconds; 0 = no age limit
    trades_max_bytes: int = 1 << 30  # -1 = no size limit
    #: stream replicas in a clustered JetStream
    replicas: int = 1

    def __post_init__(self) -> None:
        # msgspec turns ValueError here into a decode error naming the table
        if not self.servers:
            raise ValueError("servers: at least one server URL")
        for url in self.servers:
            if not url.startswith(_SCHEMES):
                raise ValueError(f"servers: {url!r} is not a NATS URL ({', '.join(_SCHEMES)})")
        check_prefix(self.subject_prefix)
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        if self.reconnect_wait <= 0 or self.flush_timeout <= 0:
            raise ValueError("reconnect_wait and flush_timeout must be positive")
        for field in ("books_stream", "trades_stream"):
            if not _STREAM_NAME.fullmatch(getattr(self, field)):
                raise ValueError(f"{field}: letters, digits, '-' and '_' only")
        if self.books_stream == self.trades_stream:
            raise ValueError("books_stream and trades_stream must differ")
        if self.trades_max_age < 0 or self.trades_max_bytes == 0 or self.trades_max_bytes < -1:
            raise ValueError("trades_max_age >= 0; trades_max_bytes > 0 or -1")
        if not 1 <= self.replicas <= 5:
            raise ValueError("replicas: 1 to 5")

    @property
    def prefix(self) -> str:
        """The subject prefix ending with ``.`` (or empty)."""
        return check_prefix(self.subject_prefix)
