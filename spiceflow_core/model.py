"""Normalized market data types shared by the core and every venue plugin.

Prices and sizes travel as decimal *strings* exactly as the exchange sent them
(Binance sends strings; Deribit's JSON numbers keep their exact JSON text, never a
float). The order book keys levels by exact scaled integers and writes any exponent
spelling out as the exact plain decimal; see ``spiceflow_core.book.orderbook``.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

#: what a consumer subscribes to per instrument: the order book, trades, the exchange's top of book
Feed = Literal["book", "trades", "top"]
FEEDS: tuple[Feed, ...] = get_args(Feed)
#: the broadcast channel (first topic part, and the message's ``type`` tag) of each feed
FEED_CHANNEL: dict[Feed, str] = {"book": "book", "trades": "trade", "top": "top"}
#: the published state of one instrument's book feed
FeedState = Literal["pending", "synced", "stale", "resyncing", "unsubscribed"]
#: version of the broadcast schema (``spiceflow_core.broadcast.wire``), field ``v`` of every message
SCHEMA_VERSION = 1

Kind = Literal["spot", "perpetual", "future", "option"]
OptionType = Literal["call", "put"]

#: One price level: (price, size) as exact decimal strings. A size of zero deletes.
Level = tuple[str, str]

_KIND_CODES = {"spot": "spot", "perpetual": "perp", "future": "fut", "option": "option"}


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """Reference data for one tradable instrument of one venue."""

    venue: str  # the plugin's venue name, e.g. "binance-usdm"
    symbol: str  # the exchange's own symbol, e.g. "BTCUSDT", "BTC-PERPETUAL"
    kind: Kind
    base: str
    quote: str
    tick_size: str
    lot_size: str
    exchange: str = ""  # venue family used in normalized ids ("binance" for every Binance market)
    market: str = ""  # venue sub-market ("spot", "usdm", "coinm"); free-form per plugin
    settle: str = ""
    inverse: bool = False
    contract_size: str = "1"
    min_size: str = ""
    expiry_ms: int | None = None
    strike: str | None = None
    option_type: OptionType | None = None
    settlement_period: str | None = None
    active: bool = True

    @property
    def kind_code(self) -> str:
        """The kind as written in normalized ids: ``spot``, ``linperp``, ``invperp``,
        ``linfut``, ``invfut`` or ``option``."""
        code = _KIND_CODES[self.kind]
        if self.kind in ("perpetual", "future"):
            code = ("inv" if self.inverse else "lin") + code
        return code

    @property
    def normalized(self) -> str:
        """Venue-independent id, e.g. ``binance.linperp.BTC.USDT`` or
        ``deribit.option.BTC.USD.20261225.100000.C``."""
        parts = [self.exchange or self.venue, self.kind_code, self.base, self.quote]
        if self.expiry_ms is not None and self.kind in ("future", "option"):
            import datetime as _dt

            day = _dt.datetime.fromtimestamp(self.expiry_ms / 1000, tz=_dt.UTC)
            parts.append(day.strftime("%Y%m%d"))
        if self.kind == "option":
            parts.append(self.strike or "")
            parts.append("C" if self.option_type == "call" else "P")
        return ".".join(parts)


class BookSnapshot(msgspec.Struct, kw_only=True):
    """A full (possibly depth-limited) book as the exchange sent it.

    ``sequence`` is the exchange's id for this state (Binance ``lastUpdateId``,
    Deribit ``change_id``). ``depth_limit`` is the number of levels per side the
    source was truncated to (REST ``limit``), or None when the snapshot is complete.
    ``checksum`` is the venue's checksum of this book (OKX, Kraken), or None when it
    sent none. ``reset``: the snapshot replaces an in-sync book at once (a venue that
    restarts its stream with a new snapshot, e.g. Bybit) instead of being synced in a
    shadow book as a refresh.
    """

    venue: str
    symbol: str
    sequence: int
    bids: list[Level]
    asks: list[Level]
    exchange_ts_ms: int | None = None
    recv_ts_ns: int = 0
    depth_limit: int | None = None
    checksum: int | None = None
    reset: bool = False


class BookDelta(msgspec.Struct, kw_only=True):
    """An incremental book update.

    ``first_sequence``..``sequence`` is the id range the update covers (Binance
    ``U``..``u``); ``prev_sequence`` is the id the venue says came just before
    (Binance futures ``pu``, Deribit ``prev_change_id``), or None. ``checksum`` is the
    venue's checksum of the book after this update, or None when it sent none.
    """

    venue: str
    symbol: str
    first_sequence: int
    sequence: int
    bids: list[Level]
    asks: list[Level]
    prev_sequence: int | None = None
    exchange_ts_ms: int | None = None
    recv_ts_ns: int = 0
    checksum: int | None = None


class Broadcast(msgspec.Struct, kw_only=True, tag_field="type"):
    """The envelope of every broadcast message (``spiceflow_core.broadcast.wire``).

    Trades and tops are broadcast as they are, so they carry it too: a plugin sets
    ``venue`` and ``symbol`` and leaves the rest at their defaults; the broadcast fills
    ``instrument`` (the normalized id), ``topic_seq`` and ``publish_ts_ns``.
    """

    v: int = SCHEMA_VERSION
    venue: str
    symbol: str
    instrument: str = ""  # normalized id, e.g. binance.spot.BTC.USDT
    topic_seq: int = 0
    publish_ts_ns: int = 0
    #: ownership epoch of the instrument when several processes share instruments
    #: (``spiceflow_core.cluster``); 0 otherwise. Consumers drop a topic's messages whose
    #: epoch is below the highest seen (a deposed owner's late messages)
    epoch: int = 0


class Trade(Broadcast, tag=FEED_CHANNEL["trades"]):
    """One trade as the exchange reported it; on the wire as it is (``TradeMessage``)."""

    trade_id: str
    price: str
    size: str
    side: Literal["buy", "sell", ""] = ""  # the taker's side; "" when the venue does not say
    exchange_ts_ms: int | None = None
    recv_ts_ns: int = 0


class TopOfBook(Broadcast, tag=FEED_CHANNEL["top"]):
    """The exchange's own best bid/ask (Binance ``bookTicker``, Deribit ``ticker``); on the
    wire as it is (``TopMessage``)."""

    bid_price: str | None
    bid_size: str | None
    ask_price: str | None
    ask_size: str | None
    sequence: int | None = None
    exchange_ts_ms: int | None = None
    recv_ts_ns: int = 0


class Heartbeat(msgspec.Struct, kw_only=True):
    """A sign of life from the venue; ``reply`` is a frame to send back at once
    (Deribit ``test_request`` -> ``public/test``), or None."""

    venue: str
    reply: str | None = None
    recv_ts_ns: int = 0


class SubscribeAck(msgspec.Struct, kw_only=True):
    """The venue's answer to one of our requests, matched by ``request_id``."""

    venue: str
    request_id: int
    error: str | None = None
    channels: list[str] = []


#: what a session's ``parse`` returns
Event = BookSnapshot | BookDelta | Trade | TopOfBook | Heartbeat | SubscribeAck
