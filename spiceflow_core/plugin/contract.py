"""What a venue plugin provides to the core.

A plugin distribution registers a module under the ``spiceflow.venues`` entry-point
group; that module implements the ``spiceflow_venues`` hook (see ``hookspecs``) and
returns one or more :class:`Venue` objects. The core never imports venue code by name.

One file per concern in a plugin: ``config`` (endpoints, limits), ``rest`` (reference
data and snapshots), ``session`` (a :class:`WsSession`: frames we send, acks), ``parsing``
(frames -> events), ``schemas`` (msgspec structs of the venue's wire format), ``sync``
(the :class:`~spiceflow_core.book.SequencePolicy`), ``simulator``.
"""

from __future__ import annotations

import abc
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import msgspec

from spiceflow_core.model import BookSnapshot, Event, Instrument, SubscribeAck

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.book import SequencePolicy
    from spiceflow_core.plugin.rest import RestClient

Feed = Literal["book", "trades", "top"]
FEEDS: tuple[Feed, ...] = ("book", "trades", "top")


class Endpoints(msgspec.Struct, kw_only=True):
    """Where a venue lives. Live URLs are the plugin's defaults; config overrides."""

    ws_url: str
    rest_url: str


class Request(msgspec.Struct, kw_only=True):
    """A frame we send; ``request_id`` is matched with the venue's acknowledgement
    (None when the venue sends none for it)."""

    frame: str
    request_id: int | None = None
    channels: list[str] = []


class ProtocolError(Exception):
    """A frame the venue's parser could not understand (counted, logged, skipped)."""


class WsSession(abc.ABC):
    """The venue's WebSocket dialect for one connection. A new one per connection,
    so request ids and per-connection state never leak across reconnects."""

    #: the venue sends its own heartbeats (Deribit); otherwise any data frame or
    #: server ping counts as a heartbeat for the WebSocketOnly workflow.
    sends_heartbeats: ClassVar[bool] = False

    def url(self, ws_url: str) -> str:
        return ws_url

    def on_open(self) -> list[Request]:
        """Frames to send right after connecting (e.g. Deribit ``public/set_heartbeat``)."""
        return []

    @abc.abstractmethod
    def subscribe(self, channels: list[str]) -> list[Request]: ...

    @abc.abstractmethod
    def unsubscribe(self, channels: list[str]) -> list[Request]: ...

    @abc.abstractmethod
    def parse(self, frame: str | bytes, recv_ts_ns: int) -> list[Event]:
        """Decode one frame into typed events; raise ProtocolError for bad input."""

    def retry_after(self, ack: SubscribeAck) -> float | None:
        """Seconds to wait before sending a refused request again when the refusal is
        transient (Deribit ``too_many_requests``); None when it is final (default)."""
        return None

    def resend(self, request_id: int) -> Request | None:
        """A fresh copy (new id) of a refused request to send again, or None to resend
        the same frame."""
        return None

    def client_ping(self) -> str | None:
        """A client keep-alive frame to send periodically, or None (WebSocket pings are
        sent by the core either way)."""
        return None


class Venue(abc.ABC):
    """A venue (one exchange market with one protocol). Subclass and fill in."""

    name: ClassVar[str]
    display_name: ClassVar[str] = ""
    exchange: ClassVar[str] = ""
    default_endpoints: ClassVar[Endpoints]
    #: how a sequence gap is healed: a REST snapshot, or resubscribing the channel
    resync: ClassVar[Literal["rest", "resubscribe"]] = "rest"
    max_streams_per_connection: ClassVar[int] = 1024
    max_messages_per_second: ClassVar[float] = 5.0
    #: default depth of REST snapshots (levels per side)
    snapshot_depth: ClassVar[int] = 1000
    #: instruments subscribed when the config names none (demo and first runs)
    default_instruments: ClassVar[tuple[str, ...]] = ()
    #: seconds after which a connection is replaced (the venue's lifetime limit), or None
    max_connection_age: ClassVar[float | None] = None
    #: the silence timeout never goes below this (venues with slow heartbeats)
    min_silence_timeout: ClassVar[float] = 0.0
    #: seconds without one of the venue's own heartbeat messages before reconnecting
    #: (sessions with ``sends_heartbeats``), or None
    heartbeat_timeout: ClassVar[float | None] = None
    #: minimum spacing of REST requests in seconds (rate-limit courtesy)
    rest_min_interval: ClassVar[float] = 0.0

    # -- reference data ---------------------------------------------------
    @abc.abstractmethod
    async def fetch_instruments(self, rest: RestClient) -> list[Instrument]:
        """Load reference data from the venue's REST API."""

    @abc.abstractmethod
    def parse_instruments(self, files: dict[str, bytes]) -> list[Instrument]:
        """Map fixture files (name -> raw REST body) to instruments."""

    def fixtures_dir(self) -> Path | None:
        """The plugin's packaged default fixtures (used when ./fixtures/<venue> is absent)."""
        return None

    # -- streams ------------------------------------------------------------
    @abc.abstractmethod
    def channels(self, instrument: Instrument, feed: Feed) -> list[str]:
        """Exchange channel names for one instrument and feed."""

    @abc.abstractmethod
    def new_session(self) -> WsSession: ...

    @abc.abstractmethod
    def sequence_policy(self, instrument: Instrument) -> SequencePolicy: ...

    async def fetch_snapshot(self, rest: RestClient, instrument: Instrument, depth: int) -> BookSnapshot:
        """A REST book snapshot (venues with ``resync = "rest"``)."""
        raise NotImplementedError(f"{self.name} has no REST snapshots")

    def parse_snapshot(self, url: str, body: bytes, recv_ts_ns: int) -> BookSnapshot | None:
        """A recorded REST answer (``url`` with its query string, raw ``body``) as a book
        snapshot, or None when it is not a depth snapshot of this venue. Used by
        ``spiceflow replay`` so the replay engine needs no venue-specific code; venues
        whose snapshots come over the WebSocket keep this default."""
        return None

    # -- simulator --------------------------------------------------------
    def simulator(
        self, *, recording: str | None = None, port: int = 0, **options
    ) -> contextlib.AbstractAsyncContextManager:
        """An async context manager running a loopback simulator of this venue and
        yielding it (see ``testkit.simulator.Simulator``: ``.endpoints``, ``.faults``,
        ``.truth()``). Options understood by convention: ``symbols`` (list of names),
        ``rate`` (updates per second). Venues without one raise NotImplementedError."""
        raise NotImplementedError(f"{self.name} ships no simulator")
