"""Binance markets: endpoints, REST paths and documented limits, one place for all three.

Spot, USD-M and COIN-M speak the same dialect with small differences (REST paths, the
``pu`` field and the depth procedure of futures, the depth ``limit`` values and their
weights, streams per connection). Everything market-specific is a field of
:class:`MarketSpec`; the rest of the plugin is shared code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from spiceflow_core.plugin.contract import Endpoints

Market = Literal["spot", "usdm", "coinm"]

#: Binance closes every WebSocket connection after 24 hours; reconnect a little earlier.
CONNECTION_LIFETIME_S = 24 * 3600
RECONNECT_BEFORE_S = CONNECTION_LIFETIME_S - 30 * 60


@dataclass(frozen=True)
class MarketSpec:
    market: Market
    venue: str  # spiceflow venue name
    display_name: str
    endpoints: Endpoints  # live defaults; config / --endpoint override them
    exchange_info_path: str
    depth_path: str
    #: valid ``limit`` values of the depth endpoint (None: any 1..max_depth)
    depth_limits: tuple[int, ...] | None
    max_depth: int
    #: REQUEST_WEIGHT per minute (overridden by exchangeInfo's rateLimits when known)
    weight_per_minute: int
    #: documented limits of the market-data WebSocket: streams per connection, and
    #: incoming messages per second per connection (pings, pongs and JSON requests count)
    max_streams_per_connection: int
    max_messages_per_second: float
    futures: bool  # depth events carry ``pu``; futures synchronisation rules apply
    fixture_file: str  # name of this market's exchangeInfo fixture
    capture_prefix: str  # name of this market's text captures (cryptofeed's exchange id)

    def depth_weight(self, limit: int) -> int:
        """REQUEST_WEIGHT of one depth call with ``limit`` (Binance docs, market data)."""
        if not self.futures:  # spot: 1-100 -> 5, 101-500 -> 25, 501-1000 -> 50, 1001-5000 -> 250
            if limit <= 100:
                return 5
            if limit <= 500:
                return 25
            if limit <= 1000:
                return 50
            return 250
        # USD-M / COIN-M: 5,10,20,50 -> 2; 100 -> 5; 500 -> 10; 1000 -> 20
        if limit <= 50:
            return 2
        if limit <= 100:
            return 5
        if limit <= 500:
            return 10
        return 20

    def valid_depth(self, depth: int) -> int:
        """The smallest valid ``limit`` covering ``depth`` levels (futures accept only
        5/10/20/50/100/500/1000; spot any value up to 5000)."""
        depth = max(1, min(int(depth), self.max_depth))
        if self.depth_limits is None:
            return depth
        for limit in self.depth_limits:
            if limit >= depth:
                return limit
        return self.depth_limits[-1]


_FUTURES_LIMITS = (5, 10, 20, 50, 100, 500, 1000)

SPOT = MarketSpec(
    market="spot",
    venue="binance",
    display_name="Binance spot",
    endpoints=Endpoints(ws_url="wss://stream.binance.com:9443/stream", rest_url="https://api.binance.com"),
    exchange_info_path="/api/v3/exchangeInfo",
    depth_path="/api/v3/depth",
    depth_limits=None,
    max_depth=5000,
    weight_per_minute=6000,
    max_streams_per_connection=1024,
    # spot docs: "WebSocket connections have a limit of 5 incoming messages per second"
    max_messages_per_second=5.0,
    futures=False,
    fixture_file="api_v3_exchangeInfo.json",
    capture_prefix="BINANCE",
)

USDM = MarketSpec(
    market="usdm",
    venue="binance-usdm",
    display_name="Binance USD-M futures",
    endpoints=Endpoints(ws_url="wss://fstream.binance.com/stream", rest_url="https://fapi.binance.com"),
    exchange_info_path="/fapi/v1/exchangeInfo",
    depth_path="/fapi/v1/depth",
    depth_limits=_FUTURES_LIMITS,
    max_depth=1000,
    weight_per_minute=2400,
    # futures docs: "A single connection can listen to a maximum of 200 streams"
    max_streams_per_connection=200,
    # futures docs: "WebSocket connections have a limit of 10 incoming messages per second"
    max_messages_per_second=10.0,
    futures=True,
    fixture_file="fapi_v1_exchangeInfo.json",
    capture_prefix="BINANCE_FUTURES",
)

COINM = MarketSpec(
    market="coinm",
    venue="binance-coinm",
    display_name="Binance COIN-M futures",
    endpoints=Endpoints(ws_url="wss://dstream.binance.com/stream", rest_url="https://dapi.binance.com"),
    exchange_info_path="/dapi/v1/exchangeInfo",
    depth_path="/dapi/v1/depth",
    depth_limits=_FUTURES_LIMITS,
    max_depth=1000,
    weight_per_minute=2400,
    max_streams_per_connection=200,
    max_messages_per_second=10.0,
    futures=True,
    fixture_file="dapi_v1_exchangeInfo.json",
    capture_prefix="BINANCE_DELIVERY",
)

BY_PATH: dict[str, MarketSpec] = {m.depth_path: m for m in (SPOT, USDM, COINM)} | {
    m.exchange_info_path: m for m in (SPOT, USDM, COINM)
}

#: stream suffix per feed; depth@100ms is the default diff-depth speed
DEPTH_CHANNEL = "depth@100ms"
TRADE_CHANNEL = {"spot": "trade", "usdm": "aggTrade", "coinm": "aggTrade"}
TOP_CHANNEL = "bookTicker"
