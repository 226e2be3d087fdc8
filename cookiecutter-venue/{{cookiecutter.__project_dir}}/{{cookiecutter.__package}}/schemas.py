"""msgspec structs of {{ cookiecutter.venue_name }}'s wire format (WebSocket frames and REST bodies).

Frames are decoded in two steps: the envelope with its payload kept as ``msgspec.Raw``,
then the payload with the struct the envelope announces. Unknown fields are ignored
(exchanges add fields), missing required fields are errors (``ProtocolError``).

FILL IN: rename and extend these structs to match the exchange's documentation; the
sample frames in ``tests/test_parsing.py`` must be updated alongside.
"""

from __future__ import annotations

from typing import Literal

import msgspec

#: (price, size) as the exchange's exact decimal strings. FILL IN: if the venue sends
#: JSON numbers, decode them as ``decimal.Decimal`` (msgspec keeps them exact) and
#: format them back with ``format(value, "f")`` in parsing.py; never go through float.
Level = tuple[str, str]

{% if cookiecutter.protocol_style == "plain-json" %}

# -- frames we send -------------------------------------------------------------------
class Request(msgspec.Struct):
    """``{"method": "SUBSCRIBE", "params": ["btcusdt@book"], "id": 1}``"""

    method: str
    params: list[str]
    id: int


# -- frames we receive ------------------------------------------------------------------
class ErrorBody(msgspec.Struct):
    code: int
    msg: str


class Frame(msgspec.Struct, kw_only=True):
    """Any top-level object the venue sends.

    - stream data: ``{"stream": "btcusdt@book", "data": {...}}``
    - request answer: ``{"result": null, "id": 1}``
    - request error: ``{"error": {"code": 2, "msg": "..."}, "id": 1}``
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
    - heartbeat: ``{"event": "heartbeat", "time": 1700000000000}``
{% elif cookiecutter.heartbeat_style == "client-ping" %}
    - answer to our ping: ``{"pong": 1}``
{% endif %}
    """

    stream: str | None = None
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    id: int | None = None
    # UNSET when absent, Raw(b"null") for ``"result": null``
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: ErrorBody | None = None
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
    event: str | None = None
    time: int | None = None
{% elif cookiecutter.heartbeat_style == "client-ping" %}
    pong: int | None = None
{% endif %}


class BookData(msgspec.Struct, kw_only=True):
    """Payload of ``<symbol>@book``: a full snapshot (sent on subscribe) or a delta.

    ``U``..``u`` is the range of update ids the message covers; a delta continues the
    book when ``U == previous u + 1`` (see sync.py). A size of "0" deletes the level.
    """

    type: Literal["snapshot", "delta"]
    s: str  # the exchange symbol, e.g. "BTCUSDT"
    U: int
    u: int
    b: list[Level]
    a: list[Level]
    E: int | None = None  # event time, ms
    #: the venue's checksum of its book after this message (sync.CHECKSUM), if it sends one
    checksum: int | None = None


encoder = msgspec.json.Encoder()
frame_decoder = msgspec.json.Decoder(Frame)
book_decoder = msgspec.json.Decoder(BookData)
{% else %}

# -- frames we send -------------------------------------------------------------------
class RpcRequest(msgspec.Struct):
    """``{"jsonrpc": "2.0", "id": 1, "method": "public/subscribe", "params": {"channels": [...]}}``"""

    jsonrpc: str
    id: int
    method: str
    params: dict


# -- frames we receive ------------------------------------------------------------------
class RpcError(msgspec.Struct):
    code: int
    message: str


class Envelope(msgspec.Struct, kw_only=True):
    """Any top-level JSON-RPC object the venue sends.

    - response: ``{"jsonrpc": "2.0", "id": 1, "result": ["book.BTCUSDT"]}``
    - error: ``{"jsonrpc": "2.0", "id": 1, "error": {"code": 10001, "message": "..."}}``
    - notification: ``{"jsonrpc": "2.0", "method": "subscription", "params": {"channel": ..., "data": ...}}``
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
    - heartbeat: ``{"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "heartbeat" | "test_request"}}``
{% endif %}
    """

    jsonrpc: str | None = None
    id: int | None = None
    method: str | None = None
    params: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: RpcError | None = None


class Notification(msgspec.Struct):
    """``params`` of a ``subscription`` notification."""

    channel: str
    data: msgspec.Raw


class BookData(msgspec.Struct, kw_only=True):
    """Data of ``book.<symbol>``: a full snapshot (sent on subscribe) or a change.

    Each change names the id it follows (``prev_change_id``), so a gap is seen at once
    (see sync.py). A size of "0" deletes the level.
    """

    type: Literal["snapshot", "change"]
    instrument_name: str
    change_id: int
    prev_change_id: int | None = None
    bids: list[Level]
    asks: list[Level]
    timestamp: int | None = None  # ms
    #: the venue's checksum of its book after this message (sync.CHECKSUM), if it sends one
    checksum: int | None = None
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}


class HeartbeatParams(msgspec.Struct):
    type: str  # "heartbeat" (a sign of life) or "test_request" (must be answered)
{% endif %}


encoder = msgspec.json.Encoder()
envelope_decoder = msgspec.json.Decoder(Envelope)
notification_decoder = msgspec.json.Decoder(Notification)
book_decoder = msgspec.json.Decoder(BookData)
channels_decoder = msgspec.json.Decoder(list[str])
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
heartbeat_decoder = msgspec.json.Decoder(HeartbeatParams)
{% endif %}
{% endif %}


# -- REST ---------------------------------------------------------------------------
class InstrumentRow(msgspec.Struct, kw_only=True):
    """One entry of the instrument list (``config.INSTRUMENTS_PATH``).

    FILL IN: the exchange's field names; map them to ``Instrument`` in rest.py.
    """

    symbol: str
    base: str
    quote: str
    kind: Literal["spot", "perpetual", "future", "option"] = "spot"
    tick_size: str
    lot_size: str
    min_size: str = ""
    status: str = "trading"


class InstrumentList(msgspec.Struct):
    instruments: list[InstrumentRow]


instruments_decoder = msgspec.json.Decoder(InstrumentList)
