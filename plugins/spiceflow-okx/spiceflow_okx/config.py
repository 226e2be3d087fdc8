"""OKX (API v5): endpoints, channel names and documented limits, in one place so the
README, the session, the venue and the simulator agree. Every number is a documented
OKX value or a deliberate margin below one (plugin README, "Limits")."""

from __future__ import annotations

from typing import Literal

import msgspec

from spiceflow_core.plugin import Endpoints

VENUE = "okx"
EXCHANGE = "okx"
DISPLAY_NAME = "OKX"
#: name of the text captures of OKX sessions (cryptofeed's exchange id)
CAPTURE_PREFIX = "OKX"

ENDPOINTS = Endpoints(ws_url="wss://ws.okx.com:8443/ws/v5/public", rest_url="https://www.okx.com")
WS_PATH = "/ws/v5/public"

# -- reference data -------------------------------------------------------------------------
#: ``GET /api/v5/public/instruments?instType=...`` (``OPTION`` also needs ``instFamily``)
INSTRUMENTS_PATH = "/api/v5/public/instruments"
InstType = Literal["SPOT", "SWAP", "FUTURES", "OPTION"]
INST_TYPES: tuple[InstType, ...] = ("SPOT", "SWAP", "FUTURES", "OPTION")
#: option families loaded by default (one request each)
OPTION_FAMILIES: tuple[str, ...] = ("BTC-USD", "ETH-USD")
#: fixture files: ``instruments.<INSTTYPE>.json``, raw REST bodies
FIXTURE_PATTERN = "instruments.{inst_type}.json"
#: public market data: 20 requests per 2 seconds (IP + instType); spaced generously
REST_MIN_INTERVAL = 0.15

# -- channels ---------------------------------------------------------------------------------
#: 400-level snapshot, then incremental updates every 100 ms (seqId/prevSeqId chain, checksum)
BOOK_CHANNEL = "books"
#: tick-by-tick best bid/offer (one level per side)
#: channels whose messages share the ``books`` format (the tick-by-tick ones need a login)
BOOK_CHANNELS = frozenset({BOOK_CHANNEL, "books-l2-tbt", "books50-l2-tbt"})
TOP_CHANNEL = "bbo-tbt"
TRADES_CHANNEL = "trades"
FEED_CHANNELS = {"book": BOOK_CHANNEL, "top": TOP_CHANNEL, "trades": TRADES_CHANNEL}
#: our channel names are ``<okx channel>:<instId>`` (``books:BTC-USDT``)
CHANNEL_SEPARATOR = ":"
#: levels per side OKX keeps for the ``books`` channel (levels moving into the top 400
#: are pushed as updates, so the local book is cut to it after every message)
BOOK_DEPTH = 400
#: levels per side the book checksum covers
CHECKSUM_DEPTH = 25

# -- connection limits -------------------------------------------------------------------------
#: new connections: 3 per second per IP
CONNECTIONS_PER_SECOND = 3
#: subscribe + unsubscribe + login requests: 480 per hour per connection
REQUESTS_PER_HOUR = 480
#: one request's total length (all its channels) must stay below 64 KB
MAX_REQUEST_BYTES = 64 * 1024
#: args per subscribe request we send (keeps frames far below 64 KB)
ARGS_PER_REQUEST = 100
#: channels per connection before the core opens another connection. OKX documents no
#: per-connection channel cap for public channels; this bounds one connection's fan-in.
MAX_STREAMS_PER_CONNECTION = 300
#: client messages per second we allow ourselves. OKX documents no per-second cap for
#: public requests (only 480 per hour); 3/s mirrors its connection rate and keeps a burst
#: of resyncs from spending the hourly budget in seconds.
MAX_MESSAGES_PER_SECOND = 3.0
#: OKX closes a connection after 30 s without data; ``ping`` before that
IDLE_CLOSE_SECONDS = 30.0
PING_FRAME = "ping"
PONG_FRAME = "pong"

# -- error codes (WebSocket error code table) ---------------------------------------------------
INVALID_REQUEST = "60012"
INVALID_ARGS = "60013"
TOO_FREQUENT = "60014"
DOES_NOT_EXIST = "60018"

DEFAULT_INSTRUMENTS = ("BTC-USDT", "ETH-USDT")


class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[venues.okx.options]`` in spiceflow.toml."""

    #: instrument types whose reference data is loaded
    inst_types: list[InstType] = msgspec.field(default_factory=lambda: list(INST_TYPES))
    #: option families (``instFamily``) loaded when ``OPTION`` is among ``inst_types``
    option_families: list[str] = msgspec.field(default_factory=lambda: list(OPTION_FAMILIES))

    def __post_init__(self) -> None:
        if not self.inst_types:
            raise ValueError("inst_types must name at least one instrument type")
