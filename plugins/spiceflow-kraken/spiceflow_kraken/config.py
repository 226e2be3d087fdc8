"""Kraken spot (WebSocket API v2): endpoints, channel names and documented limits, in one
place so the session, the venue, the simulator and the README agree.

Sources: Kraken API Center, "Spot WebSocket v2" (``book``, ``ticker``, ``trade``,
``ping``, ``heartbeat``), "Book checksum (v2)" and "Spot REST: AssetPairs".
"""

from __future__ import annotations

from typing import Literal

import msgspec

from spiceflow_core.plugin import Endpoints

VENUE = "kraken"
DISPLAY_NAME = "Kraken"
#: venue family of normalized ids (``kraken.spot.BTC.USD``)
EXCHANGE = "kraken"
#: name of the text captures of Kraken sessions (``shared/recorded/KRAKEN.*``)
CAPTURE_PREFIX = "KRAKEN"

ENDPOINTS = Endpoints(ws_url="wss://ws.kraken.com/v2", rest_url="https://api.kraken.com")

#: REST reference data: every spot pair with its v1 ``wsname``, decimals and status
INSTRUMENTS_PATH = "/0/public/AssetPairs"
INSTRUMENTS_FIXTURE = "AssetPairs.json"
#: AssetPairs ``status`` of a pair open for trading
ONLINE = "online"
#: asset names of the REST API / WebSocket v1 that WebSocket v2 spells differently
#: (v2 symbols are ``BTC/USD``, ``DOGE/USD``; REST ``wsname`` says ``XBT/USD``, ``XDG/USD``)
V2_ASSET_NAMES = {"XBT": "BTC", "XDG": "DOGE"}

# -- channels ----------------------------------------------------------------------------
#: the v2 channel of each spiceflow feed; our channel names are ``<channel>:<symbol>``
FEED_CHANNELS = {"book": "book", "trades": "trade", "top": "ticker"}
CHANNEL_SEPARATOR = ":"
#: depths the ``book`` channel accepts (levels per side)
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
BookDepth = Literal[10, 25, 100, 500, 1000]
#: default subscribed depth: the core publishes 25 levels per side by default
DEFAULT_BOOK_DEPTH: BookDepth = 25
#: the checksum always covers the top 10 levels per side, whatever the subscribed depth
CHECKSUM_DEPTH = 10

# -- limits --------------------------------------------------------------------------------
#: Kraken documents the WebSocket message rate as dynamic (it depends on system load;
#: a client over it is answered "Exceeded msg rate"), with no fixed number. 5 per second
#: and connection keeps far below any rate a normal subscription pattern needs.
MAX_MESSAGES_PER_SECOND = 5.0
#: symbols per subscribe request (one request answers one acknowledgement per symbol)
MAX_SYMBOLS_PER_REQUEST = 50
#: channels per connection before the core opens another one (not documented: a margin
#: that keeps a connection's fan-in and its acknowledgements bounded)
MAX_STREAMS_PER_CONNECTION = 200

# -- keep-alive ------------------------------------------------------------------------------
#: the application-level ping; answered ``{"method":"pong",...}`` (sent at once on
#: connect and then every ``runtime.ping_interval`` seconds)
PING_FRAME = '{"method":"ping"}'
#: the server sends ``{"channel":"heartbeat"}`` about once a second while subscribed
HEARTBEAT_INTERVAL = 1.0

#: instruments subscribed when the config names none (demo and first runs)
DEFAULT_INSTRUMENTS = ("BTC/USD", "ETH/USD")


class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[venues.kraken.options]`` in spiceflow.toml."""

    #: levels per side of the ``book`` subscription (the local book is kept at this depth)
    book_depth: BookDepth = DEFAULT_BOOK_DEPTH


def channel_name(channel: str, symbol: str) -> str:
    return f"{channel}{CHANNEL_SEPARATOR}{symbol}"


def split_channel(name: str) -> tuple[str, str]:
    """``"book:BTC/USD"`` -> ``("book", "BTC/USD")``."""
    channel, sep, symbol = name.partition(CHANNEL_SEPARATOR)
    if not sep or not symbol:
        raise ValueError(f"not a Kraken channel name: {name!r}")
    return channel, symbol
