"""Bybit API v5: endpoints, topics and documented limits, one place for every category.

The public WebSocket differs per category (``/v5/public/spot``, ``/linear``,
``/inverse``, ``/option``), so each category is its own venue; everything that differs
between them is a field of :class:`CategorySpec`, the rest of the plugin is shared.

Sources (Bybit v5 docs): "Connect" (endpoints, heartbeat, args limits), "Rate Limit
Rules" (connection limits), "Orderbook", "Trade", "Ticker" and "Get Instruments Info".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from spiceflow_core.plugin import Endpoints

EXCHANGE = "bybit"
DISPLAY_NAME = "Bybit"
#: the name of the plugin's entry point (the venues are ``bybit-<category>``)
VENUE = "bybit"

Category = Literal["spot", "linear", "inverse", "option"]

LIVE_WS = "wss://stream.bybit.com"
LIVE_REST = "https://api.bybit.com"
WS_PATH = "/v5/public/{category}"
INSTRUMENTS_PATH = "/v5/market/instruments-info"
#: ``limit`` of one instruments-info page (documented range 1..1000)
INSTRUMENTS_PAGE_LIMIT = 1000

# -- keep-alive ("Connect": "we recommend that you send the ping heartbeat packet every
# 20 seconds"; without ping-pong or data the server cuts a connection after 10 minutes)
PING_INTERVAL_S = 20.0
#: no pong for this long -> reconnect (three missed pings)
HEARTBEAT_TIMEOUT_S = 3 * PING_INTERVAL_S

# -- args limits ("Connect", "Public channel - Args limits") ----------------------------
#: "for one public connection, you cannot have length of "args" array over 21,000
#: characters" (all categories); counted here as the JSON text of the topics
MAX_ARGS_CHARS_PER_CONNECTION = 21_000
#: "Spot can input up to 10 args for each subscription request sent to one connection"
SPOT_ARGS_PER_REQUEST = 10
#: "Options can input up to 2000 args for a single connection"
OPTION_ARGS_PER_CONNECTION = 2000
#: "No args limit for Futures": we still keep one request's frame small
ARGS_PER_REQUEST = 100
#: topics per connection: 300 topics of up to ~60 characters (quotes and comma
#: included) stay under the 21,000-character cap; the runtime opens more connections
MAX_STREAMS_PER_CONNECTION = 300

# -- connection limits ("Rate Limit Rules": no more than 500 connections within 5
# minutes per WebSocket domain, 1,000 per IP and market): the core's reconnect backoff
# and sharding stay far below both.

#: Bybit documents no per-connection cap on client messages for public streams. The
#: runtime needs a budget to space requests by: 10 per second, the simulator holds the
#: client to the same number.
MAX_MESSAGES_PER_SECOND = 10.0


@dataclass(frozen=True)
class CategorySpec:
    category: Category
    venue: str  # spiceflow venue name
    display_name: str
    #: book depths Bybit serves on ``orderbook.{depth}.{symbol}`` for this category
    depths: tuple[int, ...]
    default_depth: int
    #: depth of the top-of-book feed (``orderbook.1``: snapshots only), None: tickers
    top_depth: int | None
    args_per_request: int
    max_args_per_connection: int | None
    default_instruments: tuple[str, ...]
    capture_prefix: str

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(ws_url=LIVE_WS + WS_PATH.format(category=self.category), rest_url=LIVE_REST)

    @property
    def fixture_file(self) -> str:
        return f"instruments_info.{self.category}.json"


SPOT = CategorySpec(
    category="spot",
    venue="bybit-spot",
    display_name="Bybit spot",
    depths=(1, 50, 200, 1000),
    default_depth=50,
    top_depth=1,
    args_per_request=SPOT_ARGS_PER_REQUEST,
    max_args_per_connection=None,
    default_instruments=("BTCUSDT", "ETHUSDT"),
    capture_prefix="BYBIT_SPOT",
)
LINEAR = CategorySpec(
    category="linear",
    venue="bybit-linear",
    display_name="Bybit USDT/USDC perpetuals and futures",
    depths=(1, 50, 200, 1000),
    default_depth=50,
    top_depth=1,
    args_per_request=ARGS_PER_REQUEST,
    max_args_per_connection=None,
    default_instruments=("BTCUSDT", "ETHUSDT"),
    # cryptofeed's exchange id for Bybit derivatives: existing captures replay here
    capture_prefix="BYBIT",
)
INVERSE = CategorySpec(
    category="inverse",
    venue="bybit-inverse",
    display_name="Bybit inverse contracts",
    depths=(1, 50, 200, 1000),
    default_depth=50,
    top_depth=1,
    args_per_request=ARGS_PER_REQUEST,
    max_args_per_connection=None,
    default_instruments=("BTCUSD", "ETHUSD"),
    capture_prefix="BYBIT_INVERSE",
)
CATEGORIES = (SPOT, LINEAR, INVERSE)
BY_VENUE = {spec.venue: spec for spec in CATEGORIES}

# -- topics --------------------------------------------------------------------------
BOOK_TOPIC = "orderbook"
TRADE_TOPIC = "publicTrade"


def book_topic(depth: int, symbol: str) -> str:
    return f"{BOOK_TOPIC}.{depth}.{symbol}"


def trade_topic(symbol: str) -> str:
    return f"{TRADE_TOPIC}.{symbol}"


class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[venues.bybit-<category>.options]`` in spiceflow.toml."""

    #: levels per side of the book topic (``orderbook.{depth}``): 50 (20 ms pushes),
    #: 200 or 1000; the local book is kept at exactly that depth, as Bybit's is
    depth: int | None = None
