"""msgspec structs of OKX's v5 wire format (WebSocket frames and REST bodies).

OKX sends prices and sizes as JSON strings, kept exactly as sent; ``checksum``,
``seqId`` and ``prevSeqId`` are JSON integers. Frames are decoded in two steps: the
envelope with ``data`` kept raw, then ``data`` with the struct its ``arg.channel``
announces. Unknown fields are ignored (OKX adds fields); missing required ones are
errors.
"""

from __future__ import annotations

import msgspec

# -- frames we send ------------------------------------------------------------------------


class Arg(msgspec.Struct, omit_defaults=True):
    """``{"channel": "books", "instId": "BTC-USDT"}``"""

    channel: str
    instId: str = ""


class OpRequest(msgspec.Struct):
    """``{"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]}``"""

    op: str
    args: list[Arg]


# -- frames we receive ---------------------------------------------------------------------


class Envelope(msgspec.Struct, kw_only=True):
    """Any JSON frame OKX sends on the public endpoint:

    - ``{"event": "subscribe"|"unsubscribe", "arg": {...}, "connId": "..."}``
    - ``{"event": "error", "code": "60012", "msg": "...", "connId": "..."}``
    - ``{"event": "notice", "code": "64008", "msg": "...", "connId": "..."}``
    - ``{"arg": {...}, "action": "snapshot"|"update", "data": [...]}`` (``action`` only on books)
    """

    event: str | None = None
    arg: Arg | None = None
    action: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")  # empty when absent
    code: str | int | None = None
    msg: str = ""
    connId: str = ""


#: one book level: ``[price, size, "0" (deprecated), number of orders]``
BookLevel = list[str]


class BookData(msgspec.Struct, kw_only=True):
    asks: list[BookLevel]
    bids: list[BookLevel]
    ts: str
    #: CRC32 of the top 25 levels (signed); 0 on recent live messages: absent
    checksum: int | None = None
    seqId: int | None = None
    #: -1 on a snapshot; == seqId on a no-change update
    prevSeqId: int | None = None


class BboData(msgspec.Struct, kw_only=True):
    asks: list[BookLevel]
    bids: list[BookLevel]
    ts: str
    seqId: int | None = None


class TradeData(msgspec.Struct, kw_only=True):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str


encoder = msgspec.json.Encoder()
envelope_decoder = msgspec.json.Decoder(Envelope)
book_decoder = msgspec.json.Decoder(list[BookData])
bbo_decoder = msgspec.json.Decoder(list[BboData])
trades_decoder = msgspec.json.Decoder(list[TradeData])


# -- REST --------------------------------------------------------------------------------------


class InstrumentRow(msgspec.Struct, kw_only=True):
    """One entry of ``GET /api/v5/public/instruments`` (fields not used are ignored)."""

    instType: str
    instId: str
    uly: str = ""
    instFamily: str = ""
    baseCcy: str = ""
    quoteCcy: str = ""
    settleCcy: str = ""
    ctVal: str = ""
    ctMult: str = ""
    ctValCcy: str = ""
    optType: str = ""
    stk: str = ""
    expTime: str = ""
    tickSz: str
    lotSz: str
    minSz: str = ""
    ctType: str = ""
    alias: str = ""
    state: str = "live"


class InstrumentsResponse(msgspec.Struct):
    code: str
    data: list[InstrumentRow]
    msg: str = ""


instruments_decoder = msgspec.json.Decoder(InstrumentsResponse)
