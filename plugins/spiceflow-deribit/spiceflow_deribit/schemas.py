"""msgspec structs of Deribit's JSON-RPC 2.0 wire format.

Every price, amount and size is declared ``Decimal``: msgspec decodes a JSON number
straight from its text into a ``Decimal``, so ``0.0005`` stays exactly ``0.0005`` and
never passes through a binary float. Unknown fields are ignored (Deribit adds fields).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import msgspec

from spiceflow_core.model import BookDelta

from .config import VENUE

# -- envelope -------------------------------------------------------------------------------


class RpcError(msgspec.Struct):
    code: int
    message: str
    data: Any = None


class Envelope(msgspec.Struct):
    """Any frame: a response (``id`` + ``result``/``error``) or a notification
    (``method`` + ``params``). ``params``/``result`` stay raw until we know the shape."""

    jsonrpc: str = ""
    id: int | None = None
    result: msgspec.Raw = msgspec.Raw(b"")  # empty when absent
    error: RpcError | None = None
    method: str | None = None
    params: msgspec.Raw = msgspec.Raw(b"")  # empty when absent


class SubscriptionParams(msgspec.Struct):
    channel: str
    data: msgspec.Raw


class HeartbeatParams(msgspec.Struct):
    type: str


# -- channel payloads --------------------------------------------------------------------

#: ``["new"|"change"|"delete", price, amount]``
BookEntry = tuple[Literal["new", "change", "delete"], Decimal, Decimal]


class BookData(msgspec.Struct):
    type: Literal["snapshot", "change"]
    timestamp: int
    instrument_name: str
    change_id: int
    bids: list[BookEntry]
    asks: list[BookEntry]
    prev_change_id: int | None = None


# -- book frames without Decimal: the JSON number text kept as is --------------------------
#
# Decoding a number to ``Decimal`` and formatting it back cost ~5 us per book frame. For
# book data the parser instead decodes entries untyped with ``float_hook=number_text``:
# msgspec hands the hook each non-integer JSON number's exact text, kept as the level's
# string.
# No float is ever made. The core book validates every price/size strictly and writes an
# exponent spelling (``1e-05``) out as a plain decimal (``0.00001``); a negative or
# malformed value is a malformed delta (resync). Integers arrive as ``int`` (the parser
# formats them); any other value in a number slot is rejected by the parser.
# ``BookData`` above stays the simulator's Decimal view of the same frames.


#: ``float_hook`` of the book decoders: a JSON number's text, unchanged. ``str.strip``
#: returns its argument itself (number text has no whitespace) and is the cheapest C
#: callable that does (~25 ns per number less than ``str``; 10 numbers per frame).
number_text = str.strip

#: ``["new"|"change"|"delete", price, amount]`` with numbers as their JSON text
BookEntryText = tuple[Literal["new", "change", "delete"], Any, Any]


class BookChange(
    BookDelta,
    kw_only=True,
    rename={
        "symbol": "instrument_name",
        "sequence": "change_id",
        "prev_sequence": "prev_change_id",
        "exchange_ts_ms": "timestamp",
    },
):
    """A ``book.*`` payload decoded straight into the core's ``BookDelta`` (no second
    object per frame on the hot path). The parser completes it: ``first_sequence`` (=
    ``change_id``), ``recv_ts_ns`` and ``bids``/``asks`` as (price, size) pairs; a
    ``snapshot`` becomes a ``BookSnapshot``. msgspec renames only fields a class
    declares, hence BookDelta's fields restated here."""

    type: Literal["snapshot", "change"]
    venue: str = VENUE
    symbol: str
    sequence: int
    first_sequence: int = 0
    # decoded as Deribit's entries; the parser turns them into (price, size) pairs
    bids: list[BookEntryText]  # type: ignore[assignment]
    asks: list[BookEntryText]  # type: ignore[assignment]
    prev_sequence: int | None = None
    exchange_ts_ms: int  # required here: Deribit always sends timestamp


class BookParamsText(msgspec.Struct):
    channel: str
    data: BookChange


class BookNotification(msgspec.Struct):
    """A whole ``book.*`` subscription frame in one decode (the hot path)."""

    params: BookParamsText
    method: str | None = None


class TickerData(msgspec.Struct):
    timestamp: int
    instrument_name: str
    best_bid_price: Decimal | None = None
    best_bid_amount: Decimal | None = None
    best_ask_price: Decimal | None = None
    best_ask_amount: Decimal | None = None


class TradeData(msgspec.Struct):
    trade_id: str
    instrument_name: str
    price: Decimal
    amount: Decimal
    direction: Literal["buy", "sell"]
    timestamp: int
    trade_seq: int | None = None


# -- requests (client -> server) ---------------------------------------------------------


class RpcRequest(msgspec.Struct):
    jsonrpc: str
    id: int
    method: str
    params: dict[str, Any]


# -- reference data --------------------------------------------------------------------------


class InstrumentInfo(msgspec.Struct):
    """One entry of ``public/get_instruments``."""

    instrument_name: str
    kind: str  # future | option | spot | future_combo | option_combo
    base_currency: str
    quote_currency: str
    tick_size: Decimal
    min_trade_amount: Decimal
    contract_size: Decimal
    expiration_timestamp: int
    is_active: bool = True
    settlement_period: str | None = None
    settlement_currency: str | None = None
    counter_currency: str | None = None
    strike: Decimal | None = None
    option_type: Literal["call", "put"] | None = None
    future_type: str | None = None  # "reversed" (inverse) | "linear" (older field)
    instrument_type: str | None = None  # "reversed" | "linear" (newer field)
    creation_timestamp: int | None = None


class InstrumentsResponse(msgspec.Struct):
    result: list[InstrumentInfo]
    jsonrpc: str = "2.0"


envelope_decoder = msgspec.json.Decoder(Envelope)
subscription_decoder = msgspec.json.Decoder(SubscriptionParams)
heartbeat_decoder = msgspec.json.Decoder(HeartbeatParams)
book_decoder = msgspec.json.Decoder(BookData)
book_text_decoder = msgspec.json.Decoder(BookChange, float_hook=number_text)
book_notification_decoder = msgspec.json.Decoder(BookNotification, float_hook=number_text)
ticker_decoder = msgspec.json.Decoder(TickerData)
trades_decoder = msgspec.json.Decoder(list[TradeData])
channels_decoder = msgspec.json.Decoder(list[str])
instruments_decoder = msgspec.json.Decoder(InstrumentsResponse)
#: Decimals go out as JSON numbers, exactly as written (the simulator's wire format)
encoder = msgspec.json.Encoder(decimal_format="number")
