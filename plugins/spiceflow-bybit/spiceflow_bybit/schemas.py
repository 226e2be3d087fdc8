"""msgspec structs of Bybit's v5 wire format (public WebSocket and instruments-info).

Bybit sends every price and size as a JSON string ("17440.50"): levels are decoded as
``tuple[str, str]`` and kept exactly as sent. A number where a string belongs is a
validation error (a ProtocolError), never a float. Unknown fields are ignored (Bybit
adds fields); missing required fields are errors.
"""

from __future__ import annotations

from typing import Literal

import msgspec

#: (price, size) exactly as sent
Level = tuple[str, str]


# -- frames we send -------------------------------------------------------------------
class Op(msgspec.Struct, omit_defaults=True):
    """``{"op": "subscribe", "args": [...], "req_id": "1"}``; ``ping`` without args."""

    op: str
    req_id: str
    args: list[str] = []


# -- frames we receive ------------------------------------------------------------------
class Frame(msgspec.Struct, kw_only=True):
    """Any top-level object a public stream sends.

    - topic data: ``{"topic": "orderbook.50.BTCUSDT", "type": "snapshot", "ts": ..,
      "data": {...}, "cts": ..}``
    - a request's answer: ``{"success": true, "ret_msg": "", "conn_id": "..",
      "req_id": "1", "op": "subscribe"}`` (pong: ``"ret_msg": "pong", "op": "ping"``)
    - option/spread pong: ``{"args": ["1672916271846"], "op": "pong"}``
    """

    topic: str | None = None
    type: str | None = None
    ts: int | None = None
    data: msgspec.Raw = msgspec.Raw(b"")  # empty when absent
    cts: int | None = None
    success: bool | None = None
    ret_msg: str = ""
    op: str | None = None
    req_id: str | None = None
    conn_id: str | None = None


class BookData(msgspec.Struct, kw_only=True):
    """``data`` of ``orderbook.{depth}.{symbol}``: ``u`` the update id (continuous per
    topic; 1 after a service restart), ``seq`` the cross sequence."""

    s: str
    b: list[Level]
    a: list[Level]
    u: int
    seq: int | None = None


class BookFrame(msgspec.Struct, kw_only=True):
    """A whole ``orderbook.*`` frame in one decode (the hot path)."""

    topic: str
    type: Literal["snapshot", "delta"]
    ts: int | None = None
    data: BookData
    cts: int | None = None


class TradeData(msgspec.Struct, kw_only=True):
    """One entry of ``publicTrade.{symbol}``."""

    T: int  # trade time, ms
    s: str
    S: Literal["Buy", "Sell"]  # taker side
    v: str  # size
    p: str  # price
    i: str  # trade id
    BT: bool = False  # block trade
    seq: int | None = None


class TradeFrame(msgspec.Struct, kw_only=True):
    topic: str
    type: str = "snapshot"
    ts: int | None = None
    data: list[TradeData]


encoder = msgspec.json.Encoder()
frame_decoder = msgspec.json.Decoder(Frame)
book_frame_decoder = msgspec.json.Decoder(BookFrame)
trade_frame_decoder = msgspec.json.Decoder(TradeFrame)


# -- REST: GET /v5/market/instruments-info ----------------------------------------------
class PriceFilter(msgspec.Struct, kw_only=True):
    tickSize: str


class LotSizeFilter(msgspec.Struct, kw_only=True):
    minOrderQty: str = ""
    qtyStep: str = ""  # linear / inverse / option
    basePrecision: str = ""  # spot: the quantity step


class InstrumentInfo(msgspec.Struct, kw_only=True):
    symbol: str
    status: str  # "Trading" when open
    baseCoin: str
    quoteCoin: str
    settleCoin: str = ""
    contractType: str = ""  # LinearPerpetual | LinearFutures | InversePerpetual | InverseFutures
    optionsType: str = ""  # Call | Put
    deliveryTime: str = "0"  # ms; "0" for perpetuals
    priceFilter: PriceFilter
    lotSizeFilter: LotSizeFilter


class InstrumentsResult(msgspec.Struct, kw_only=True, rename={"rows": "list"}):
    category: str
    rows: list[InstrumentInfo]
    nextPageCursor: str = ""


class InstrumentsResponse(msgspec.Struct, kw_only=True):
    retCode: int
    retMsg: str
    result: InstrumentsResult | None = None


class ErrorResponse(msgspec.Struct, kw_only=True):
    retCode: int
    retMsg: str = ""


instruments_decoder = msgspec.json.Decoder(InstrumentsResponse)
error_decoder = msgspec.json.Decoder(ErrorResponse)
