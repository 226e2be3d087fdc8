"""The venue plugin contract: everything a venue plugin implements and everything it may
use from the core. Import it as ``spiceflow_core.plugin`` (the package re-exports all
of this module's public names).

Registering
-----------
A distribution declares an entry point of group ``spiceflow.venues`` naming its
``plugin`` module; that module implements the hook and returns its venues::

    from spiceflow_core.plugin import hookimpl

    @hookimpl
    def spiceflow_venues() -> list[Venue]:
        return [AcmeVenue()]

Each venue is checked when it loads (``spiceflow_core.plugin.registry``); a venue that
breaks a rule below is refused with one line naming the distribution, its version and
the rule, and the other plugins load normally.

Files of a plugin
-----------------
One file per concern (``cookiecutter-venue`` generates this layout):

* ``plugin.py`` -- the :class:`Venue` subclass and the hook;
* ``config.py`` -- endpoints, channel names, documented limits, the options struct;
* ``rest.py`` -- reference data (``fetch_instruments``, ``parse_instruments``) and, for
  ``resync = "rest"`` venues, ``fetch_snapshot`` / ``parse_snapshot``, over :class:`RestApi`
  (answers with headers: :class:`RestResponse`; failures: :class:`RestError`);
* ``session.py`` -- the :class:`WsSession`: frames to send, acknowledgements;
* ``parsing.py`` -- frames -> events (:data:`Event`: :class:`BookSnapshot`,
  :class:`BookDelta`, :class:`Trade`, :class:`TopOfBook`, :class:`Heartbeat`,
  :class:`SubscribeAck`); bad input raises :class:`ProtocolError`;
* ``schemas.py`` -- msgspec structs of the venue's own wire format;
* ``sync.py`` -- the :class:`SequencePolicy` (or one of :class:`StraddlePolicy`,
  :class:`PrevIdPolicy`, :class:`ChainPolicy`);
* ``simulator.py`` -- a loopback simulator (:class:`Simulator`) behind ``Venue.simulator``.

What a venue declares
---------------------
Class attributes of :class:`Venue`: ``name`` (unique, no dots or spaces; the topic's
second part), ``default_endpoints`` (:class:`Endpoints`), ``resync``, the documented
limits (``max_streams_per_connection``, ``max_messages_per_second`` and what it counts,
``rate_limit_counts``, ``snapshot_depth``, ...), ``default_instruments``,
``capture_prefixes`` and ``options_type``. Methods: the abstract ones of :class:`Venue`,
plus ``fetch_snapshot`` when ``resync = "rest"``.

Feeds are :data:`FEEDS` (``book``, ``trades``, ``top``); ``Venue.channels`` maps an
instrument and a feed to the venue's channel names, and each feed is broadcast on the
channel :data:`FEED_CHANNEL` names.

Rules checked at load
---------------------
* ``name`` is a non-empty string without dots or spaces, not taken by another venue;
* ``default_endpoints`` is an :class:`Endpoints`;
* ``resync`` is ``"rest"`` or ``"resubscribe"``; ``"rest"`` needs ``fetch_snapshot``;
* limits are positive (``max_streams_per_connection``, ``max_messages_per_second``,
  ``snapshot_depth``; ``max_connection_age``, ``heartbeat_timeout`` when set) or, for
  ``min_silence_timeout`` and ``rest_min_interval``, not negative;
* ``rate_limit_counts`` is ``"messages"`` or ``"requests"``;
* ``capture_prefixes`` are upper-case names (``BINANCE_FUTURES``) claimed by no other venue;
* ``options_type`` is None or a msgspec Struct with ``forbid_unknown_fields=True`` (a
  misspelt key must be an error), and then ``configure`` is implemented.

Options
-------
``[venues.<name>.options]`` in ``spiceflow.toml`` is decoded into ``options_type``
(defaults when the table is absent) and handed to :meth:`Venue.configure`, which returns
the venue to run. A wrong key or type ends ``spiceflow run`` with exit code 2 and one
line naming the key and the file.
"""

from __future__ import annotations

import abc
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import msgspec
import pluggy

from spiceflow_core.book.checksum import BookChecksum
from spiceflow_core.book.policy import ChainPolicy, PrevIdPolicy, SequencePolicy, StraddlePolicy, Verdict
from spiceflow_core.model import (
    FEED_CHANNEL,
    FEEDS,
    BookDelta,
    BookSnapshot,
    Event,
    Feed,
    Heartbeat,
    Instrument,
    Kind,
    Level,
    SubscribeAck,
    TopOfBook,
    Trade,
)
from spiceflow_core.plugin.answers import RestError, RestResponse

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.testkit.faults import FaultSwitches
    from spiceflow_core.testkit.server import LimitViolation

__all__ = [
    "FEEDS",
    "FEED_CHANNEL",
    "BookChecksum",
    "BookDelta",
    "BookSnapshot",
    "ChainPolicy",
    "Endpoints",
    "Event",
    "Feed",
    "Heartbeat",
    "Instrument",
    "Kind",
    "Level",
    "PrevIdPolicy",
    "ProtocolError",
    "Request",
    "RestApi",
    "RestError",
    "RestResponse",
    "SequencePolicy",
    "Simulator",
    "StraddlePolicy",
    "SubscribeAck",
    "TopOfBook",
    "Trade",
    "Venue",
    "Verdict",
    "WsSession",
    "hookimpl",
]

PROJECT = "spiceflow"
#: marks a plugin module's ``spiceflow_venues`` implementation (see ``hookspecs``)
hookimpl = pluggy.HookimplMarker(PROJECT)


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


class RestApi(Protocol):
    """What a plugin may call on the core's REST client
    (``spiceflow_core.plugin.rest.RestClient``), which spaces requests by
    ``Venue.rest_min_interval``, retries transient failures and honours the exchange's
    rate-limit answers (429 + Retry-After, 418). ``path`` is relative to the venue's
    REST base URL (or absolute); a call that fails for good raises :class:`RestError`."""

    async def get(self, path: str, params: dict[str, Any] | None = None) -> RestResponse:
        """GET and return the 2xx answer: ``status``, ``headers`` (``header(name)`` for
        e.g. a used-weight header), ``body``."""
        ...

    async def get_bytes(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        """GET and return the body of the 2xx answer."""
        ...


class Simulator(Protocol):
    """What ``Venue.simulator()`` yields, so tests, the chaos suite, ``spiceflow simulate``
    and the ``demo`` profile drive every venue the same way."""

    endpoints: Endpoints  # loopback ws_url / rest_url to point the pipeline at
    faults: FaultSwitches  # tests and the chaos suite arm faults here
    paused: bool  # True holds the market (no book updates; heartbeats go on)
    client_frames: list[str]  # every frame clients sent, in order
    #: every documented venue limit a client crossed (tests assert it stays empty)
    violations: list[LimitViolation]

    def symbols(self) -> list[str]:
        """The symbols this simulator streams."""
        ...

    def truth(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        """The exchange's full book (sequence, bids best-first, asks best-first) as of
        the last update sent for ``symbol``, or None if nothing was sent yet."""
        ...


class WsSession(abc.ABC):
    """The venue's WebSocket dialect for one connection. A new one per connection,
    so request ids and per-connection state never leak across reconnects."""

    #: the venue sends its own heartbeats (Deribit); otherwise any data frame or
    #: server ping counts as a heartbeat for the WebSocketOnly workflow.
    sends_heartbeats: ClassVar[bool] = False

    def url(self, ws_url: str) -> str:
        """The URL to connect to, given the configured ``ws_url``."""
        return ws_url

    def on_open(self) -> list[Request]:
        """Frames to send right after connecting (e.g. Deribit ``public/set_heartbeat``)."""
        return []

    @abc.abstractmethod
    def subscribe(self, channels: list[str]) -> list[Request]:
        """Frames subscribing ``channels`` (at most ``max_streams_per_connection``)."""

    @abc.abstractmethod
    def unsubscribe(self, channels: list[str]) -> list[Request]:
        """Frames unsubscribing ``channels``."""

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
    #: venue family used in normalized ids (several venues of one exchange share it)
    exchange: ClassVar[str] = ""
    default_endpoints: ClassVar[Endpoints]
    #: how a sequence gap is healed: a REST snapshot, or resubscribing the channel
    resync: ClassVar[Literal["rest", "resubscribe"]] = "rest"
    max_streams_per_connection: ClassVar[int] = 1024
    #: client messages per second and connection (the venue's documented limit)
    max_messages_per_second: ClassVar[float] = 5.0
    #: what that limit counts: every message the client sends ("messages": Binance counts
    #: its PING/PONG frames too) or only subscription requests ("requests": Deribit's
    #: credit pool, which heartbeat answers do not draw on)
    rate_limit_counts: ClassVar[Literal["messages", "requests"]] = "messages"
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
    #: names of the text captures (``shared/recorded/<PREFIX>.*``) holding this venue's
    #: sessions, so ``spiceflow replay <dir>/<PREFIX>`` finds the venue without --venue
    capture_prefixes: ClassVar[tuple[str, ...]] = ()
    #: the type of ``[venues.<name>.options]`` (a msgspec Struct with
    #: ``forbid_unknown_fields=True``), or None when the venue takes no options
    options_type: ClassVar[type[msgspec.Struct] | None] = None

    def configure(self, options: Any) -> Venue:
        """The venue to run with ``options`` (an ``options_type`` instance decoded from
        ``[venues.<name>.options]``, or its defaults). Return a new venue rather than
        changing this one. Raise ValueError for a combination the type cannot rule out;
        the message is reported against the options table. Implemented by venues that
        declare ``options_type``."""
        raise NotImplementedError(f"{self.name} takes no options")

    # -- reference data ---------------------------------------------------
    @abc.abstractmethod
    async def fetch_instruments(self, rest: RestApi) -> list[Instrument]:
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
    def new_session(self) -> WsSession:
        """The session of one new connection."""

    @abc.abstractmethod
    def sequence_policy(self, instrument: Instrument) -> SequencePolicy:
        """How update ids of this instrument's book continue each other."""

    def book_checksum(self, instrument: Instrument) -> BookChecksum | None:
        """The venue's book checksum (verified on every snapshot or update whose
        ``checksum`` is not None; a mismatch is a gap), or None when it sends none."""
        return None

    def maintained_depth(self, instrument: Instrument) -> int | None:
        """Levels per side the venue maintains for this book (the local book is cut to it
        after every message, as the venue's is: Kraken), or None for a full book."""
        return None

    async def fetch_snapshot(self, rest: RestApi, instrument: Instrument, depth: int) -> BookSnapshot:
        """A REST book snapshot (required with ``resync = "rest"``)."""
        raise NotImplementedError(f"{self.name} has no REST snapshots")

    def parse_snapshot(self, url: str, body: bytes, recv_ts_ns: int) -> BookSnapshot | None:
        """A recorded REST answer (``url`` with its query string, raw ``body``) as a book
        snapshot, or None when it is not a depth snapshot of this venue. Used by
        ``spiceflow replay`` so the replay engine needs no venue-specific code; venues
        whose snapshots come over the WebSocket keep this default."""
        return None

    # -- simulator --------------------------------------------------------
    def simulator(
        self, *, recording: str | None = None, port: int = 0, **options: Any
    ) -> contextlib.AbstractAsyncContextManager[Simulator]:
        """An async context manager running a loopback simulator of this venue and
        yielding it (a :class:`Simulator`). Options understood by convention: ``symbols``
        (list of names), ``rate`` (updates per second). Venues without one raise
        NotImplementedError."""
        raise NotImplementedError(f"{self.name} ships no simulator")
