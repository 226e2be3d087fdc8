"""msgspec structs of Kraken's WebSocket v2 and REST wire formats.

Kraken v2 sends prices and quantities as JSON *numbers* carrying the pair's full
precision (``0.5660``, ``18097.15470000``), and the book checksum is computed on that
text. A binary float would lose it (``0.5660`` -> ``0.566``), so book, ticker and trade
payloads are decoded with ``float_hook=number_text``: msgspec hands the hook the exact
text of every non-integer number (declared ``Any`` below), integers arrive as ``int``;
``parsing.number`` turns both into the exact decimal string. No float is ever made.
Unknown fields are ignored (Kraken adds fields); missing required fields are errors.
"""

from __future__ import annotations

from typing import Any

import msgspec

#: ``float_hook`` of the payload decoders: a JSON number's text, unchanged (``str.strip``
#: returns its argument itself: number text has no whitespace)
number_text = str.strip


# -- frames we send --------------------------------------------------------------------------
class SubscribeParams(msgspec.Struct, omit_defaults=True):
    channel: str
    symbol: list[str]
    depth: int | None = None


class Request(msgspec.Struct):
    """``{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":25},"req_id":1}``"""

    method: str
    params: SubscribeParams
    req_id: int


# -- frames we receive --------------------------------------------------------------------------
class Envelope(msgspec.Struct, kw_only=True):
    """Any frame: channel data (``channel``, ``type``, ``data``) or the answer to a
    request (``method``, ``success``, ``result``/``error``, ``req_id`` echoed)."""

    channel: str | None = None
    type: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")  # empty when absent
    method: str | None = None
    success: bool | None = None
    result: msgspec.Raw = msgspec.Raw(b"")
    error: str | None = None
    req_id: int | None = None
    #: error answers name the symbol they are about
    symbol: str | None = None


class AnswerResult(msgspec.Struct, kw_only=True):
    """``result`` of a subscribe / unsubscribe acknowledgement (one per symbol)."""

    channel: str
    symbol: str | None = None
    depth: int | None = None


class PriceLevel(msgspec.Struct):
    price: Any  # exact JSON text (str) or int
    qty: Any


class BookData(msgspec.Struct, kw_only=True):
    symbol: str
    bids: list[PriceLevel] = []
    asks: list[PriceLevel] = []
    checksum: int
    timestamp: str | None = None


class BookFrame(msgspec.Struct, kw_only=True):
    """A whole ``book`` frame in one decode (the hot path)."""

    channel: str
    type: str
    data: list[BookData]


class TickerData(msgspec.Struct, kw_only=True):
    symbol: str
    bid: Any = None
    bid_qty: Any = None
    ask: Any = None
    ask_qty: Any = None


class TradeData(msgspec.Struct, kw_only=True):
    symbol: str
    side: str
    price: Any
    qty: Any
    trade_id: int
    timestamp: str
    ord_type: str | None = None


envelope_decoder = msgspec.json.Decoder(Envelope)
answer_decoder = msgspec.json.Decoder(AnswerResult)
book_decoder = msgspec.json.Decoder(BookFrame, float_hook=number_text)
ticker_decoder = msgspec.json.Decoder(list[TickerData], float_hook=number_text)
trades_decoder = msgspec.json.Decoder(list[TradeData], float_hook=number_text)
encoder = msgspec.json.Encoder()


# -- REST: GET /0/public/AssetPairs ------------------------------------------------------------------
class AssetPair(msgspec.Struct, kw_only=True):
    """One pair of ``AssetPairs`` (the fields we use; Kraken sends many more)."""

    altname: str
    wsname: str | None = None  # absent for pairs not on the WebSocket API
    base: str
    quote: str
    aclass_base: str = "currency"
    pair_decimals: int  # price precision
    lot_decimals: int  # volume precision
    tick_size: str | None = None
    ordermin: str | None = None
    status: str = "online"


class AssetPairsResponse(msgspec.Struct):
    error: list[str]
    result: dict[str, AssetPair] = {}


asset_pairs_decoder = msgspec.json.Decoder(AssetPairsResponse)
