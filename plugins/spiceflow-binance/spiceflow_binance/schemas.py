"""msgspec structs of Binance's wire format (market-data streams and REST bodies).

Frames are decoded in two steps: the top level (:class:`Frame`) with the payload kept
as ``msgspec.Raw``, then the payload with the struct its stream name announces. That
keeps decoding typed and fast while tolerating Binance adding fields (unknown fields
are ignored, missing required fields are errors).
"""

from __future__ import annotations

import msgspec

from spiceflow_core.model import BookDelta

Level = tuple[str, str]


class ErrorBody(msgspec.Struct):
    code: int
    msg: str


class Frame(msgspec.Struct):
    """Any top-level object Binance sends on a market-data connection.

    - combined stream: ``{"stream": "btcusdt@depth@100ms", "data": {...}}``
    - request answer: ``{"result": null, "id": 1}`` (``result`` is a list for
      LIST_SUBSCRIPTIONS)
    - request error: ``{"error": {"code": 2, "msg": "..."}, "id": 1}`` (older servers:
      ``{"code": 2, "msg": "...", "id": 1}``)
    - raw stream (``/ws`` endpoints): the payload itself, with ``e``
    """

    stream: str | None = None
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    id: int | str | None = None
    # UNSET when absent, Raw(b"null") for ``result: null`` (answers always carry it)
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: ErrorBody | None = None
    code: int | None = None
    msg: str | None = None
    e: str | None = None


class DepthDelta(
    BookDelta,
    kw_only=True,
    rename={
        "symbol": "s",
        "first_sequence": "U",
        "sequence": "u",
        "prev_sequence": "pu",
        "bids": "b",
        "asks": "a",
        "exchange_ts_ms": "E",
        "event_type": "e",
    },
):
    """``<symbol>@depth@100ms`` / ``@depth``: a diff-depth payload (futures add ``pu`` and
    ``T``) decoded straight into the core's ``BookDelta``, Binance's field names renamed;
    ``venue``/``recv_ts_ns`` are set by the parser. No second object per frame on the hot
    path. msgspec renames only fields a class declares, hence BookDelta's fields restated
    here; ``e`` and ``E`` are required as Binance always sends them."""

    venue: str = ""
    symbol: str
    first_sequence: int
    sequence: int
    bids: list[Level]
    asks: list[Level]
    prev_sequence: int | None = None
    exchange_ts_ms: int  # required here (optional in BookDelta)
    event_type: str


class DepthFrame(msgspec.Struct):
    """A combined-stream diff-depth frame decoded in one pass (the hot path: see
    ``parsing.parse_frame``); anything else fails validation and takes the general path."""

    stream: str
    data: DepthDelta


class BookTicker(msgspec.Struct):
    """``<symbol>@bookTicker``. Spot sends no ``e``/``E``; futures add ``e``, ``E``, ``T``."""

    u: int
    s: str
    b: str
    B: str
    a: str
    A: str
    e: str | None = None
    E: int | None = None
    T: int | None = None


class TradeEvent(msgspec.Struct):
    """``<symbol>@trade``; ``m``: the buyer is the maker (so the aggressor sold)."""

    e: str
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool


class AggTradeEvent(msgspec.Struct):
    """``<symbol>@aggTrade``."""

    e: str
    E: int
    s: str
    a: int
    p: str
    q: str
    T: int
    m: bool
    f: int | None = None
    l: int | None = None  # noqa: E741 (Binance's field name)


class DepthSnapshot(msgspec.Struct):
    """REST ``depth`` answer. Futures add ``E`` (event time) and ``T`` (transaction time)."""

    lastUpdateId: int
    bids: list[Level]
    asks: list[Level]
    E: int | None = None
    T: int | None = None


class Filter(msgspec.Struct):
    filterType: str
    tickSize: str | None = None
    stepSize: str | None = None
    minQty: str | None = None


class SymbolInfo(msgspec.Struct):
    """One entry of ``exchangeInfo.symbols`` (spot, USD-M or COIN-M)."""

    symbol: str
    baseAsset: str
    quoteAsset: str
    filters: list[Filter] = []
    status: str | None = None  # spot, USD-M
    contractStatus: str | None = None  # COIN-M
    contractType: str | None = None  # futures: PERPETUAL, CURRENT_QUARTER, ...
    deliveryDate: int | None = None
    marginAsset: str | None = None
    contractSize: int | float | None = None  # COIN-M: USD value of one contract
    pair: str | None = None


class RateLimit(msgspec.Struct):
    rateLimitType: str
    interval: str
    intervalNum: int
    limit: int


class ExchangeInfo(msgspec.Struct):
    symbols: list[SymbolInfo]
    rateLimits: list[RateLimit] = []
    serverTime: int | None = None


class Request(msgspec.Struct, omit_defaults=True):
    """A request we send on the market-data connection."""

    method: str
    id: int
    params: list[str] | None = None


frame_decoder = msgspec.json.Decoder(Frame)
depth_decoder = msgspec.json.Decoder(DepthDelta)
depth_frame_decoder = msgspec.json.Decoder(DepthFrame)
book_ticker_decoder = msgspec.json.Decoder(BookTicker)
trade_decoder = msgspec.json.Decoder(TradeEvent)
agg_trade_decoder = msgspec.json.Decoder(AggTradeEvent)
snapshot_decoder = msgspec.json.Decoder(DepthSnapshot)
exchange_info_decoder = msgspec.json.Decoder(ExchangeInfo)
encoder = msgspec.json.Encoder()
