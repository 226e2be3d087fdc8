"""{{ cookiecutter.venue_name }} frames -> spiceflow events. Pure functions; the session keeps
the per-connection state.

What the core expects from the parser (``tests/test_parsing.py`` checks each point):
- a book snapshot -> ``BookSnapshot``; a book update -> ``BookDelta`` (exact decimal
  strings, exchange symbol as ``symbol``);
- the answer to a request -> ``SubscribeAck`` with the request's id (``error`` set when
  the venue refused it; the session matches answers without a usable id);
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
- a heartbeat -> ``Heartbeat`` (with ``reply`` when the venue wants an answer);
{% elif cookiecutter.heartbeat_style == "client-ping" %}
- the answer to our ping -> ``Heartbeat``;
{% else %}
- no heartbeat message: WebSocket pings keep the connection alive and any frame is a
  sign of life (``sends_heartbeats = False`` in session.py);
{% endif %}
- a book message's checksum, when the venue sends one -> ``checksum`` (sync.CHECKSUM);
- a snapshot sent on the stream while the book is in sync (a venue restarting its
  stream) -> ``BookSnapshot(reset=True)``: it replaces the book at once;
- a valid channel we do not consume -> no event (not an error);
- anything else (invalid JSON, unknown shape, missing fields) -> ``ProtocolError``,
  which the core counts and logs before moving on.
"""

from __future__ import annotations

{% if cookiecutter.protocol_style == "json-rpc" and cookiecutter.heartbeat_style == "server-heartbeat" %}
from collections.abc import Callable

{% endif %}
import msgspec

from spiceflow_core.plugin import BookDelta, BookSnapshot, Event, {% if cookiecutter.heartbeat_style != "websocket-ping" %}Heartbeat, {% endif %}ProtocolError, SubscribeAck

from . import {% if cookiecutter.protocol_style == "json-rpc" and cookiecutter.heartbeat_style == "client-ping" %}config, {% endif %}schemas

#: request id of an error answer that carries none (e.g. to a frame the venue could not
#: read); the session matches it with the oldest request still waiting
NO_REQUEST_ID = -1

{% if cookiecutter.protocol_style == "plain-json" %}

def parse_frame(venue: str, frame: str | bytes, recv_ts_ns: int = 0) -> list[Event]:
    try:
        top = schemas.frame_decoder.decode(frame)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"{venue}: undecodable frame ({exc}): {_preview(frame)}") from None

    if top.stream is not None:
        if top.data is msgspec.UNSET:
            raise ProtocolError(f"{venue}: stream frame without data: {_preview(frame)}")
        _, _, channel = top.stream.partition("@")
        if channel == "book":
            return [_book(venue, top.data, recv_ts_ns, frame)]
        # FILL IN: other feeds (trades -> Trade, ticker -> TopOfBook) go here.
        return []  # a valid stream we do not consume

    if top.error is not None:
        request_id = top.id if top.id is not None else NO_REQUEST_ID
        return [SubscribeAck(venue=venue, request_id=request_id, error=f"code {top.error.code}: {top.error.msg}")]

    if top.result is not msgspec.UNSET:
        if top.id is None:
            raise ProtocolError(f"{venue}: answer without id: {_preview(frame)}")
        value = msgspec.json.decode(top.result)
        channels = [str(v) for v in value] if isinstance(value, list) else []
        return [SubscribeAck(venue=venue, request_id=top.id, channels=channels)]
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}

    if top.event == "heartbeat":
        return [Heartbeat(venue=venue, recv_ts_ns=recv_ts_ns)]
{% elif cookiecutter.heartbeat_style == "client-ping" %}

    if top.pong is not None:
        return [Heartbeat(venue=venue, recv_ts_ns=recv_ts_ns)]
{% endif %}

    raise ProtocolError(f"{venue}: unknown frame shape: {_preview(frame)}")


def _book(venue: str, data: msgspec.Raw, recv_ts_ns: int, frame: str | bytes) -> BookSnapshot | BookDelta:
    try:
        book = schemas.book_decoder.decode(data)
    except msgspec.DecodeError as exc:  # includes ValidationError (missing/mistyped field)
        raise ProtocolError(f"{venue}: bad book payload ({exc}): {_preview(frame)}") from None
    if book.type == "snapshot":
        # FILL IN: ``depth_limit`` = levels per side if the venue truncates its snapshots
        return BookSnapshot(
            venue=venue,
            symbol=book.s,
            sequence=book.u,
            bids=book.b,
            asks=book.a,
            exchange_ts_ms=book.E,
            recv_ts_ns=recv_ts_ns,
            depth_limit=None,
            checksum=book.checksum,
        )
    return BookDelta(
        venue=venue,
        symbol=book.s,
        first_sequence=book.U,
        sequence=book.u,
        bids=book.b,
        asks=book.a,
        exchange_ts_ms=book.E,
        recv_ts_ns=recv_ts_ns,
        checksum=book.checksum,
    )
{% else %}

def error_text(error: schemas.RpcError) -> str:
    return f"{error.code}: {error.message}"


def parse_frame(
    venue: str,
    frame: str | bytes,
    recv_ts_ns: int = 0,
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
    *,
    test_reply: Callable[[], str] | None = None,
{% endif %}
) -> list[Event]:
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
    """``test_reply`` builds the answer to a ``test_request`` (the session supplies it
    with a fresh request id)."""
{% endif %}
    try:
        env = schemas.envelope_decoder.decode(frame)
        if env.method == "subscription":
            if env.params is msgspec.UNSET:
                raise ProtocolError("subscription notification without params")
            note = schemas.notification_decoder.decode(env.params)
            return parse_notification(venue, note.channel, note.data, recv_ts_ns)
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
        if env.method == "heartbeat":
            if env.params is msgspec.UNSET:
                raise ProtocolError("heartbeat without params")
            beat = schemas.heartbeat_decoder.decode(env.params)
            reply = test_reply() if beat.type == "test_request" and test_reply is not None else None
            return [Heartbeat(venue=venue, reply=reply, recv_ts_ns=recv_ts_ns)]
{% endif %}
        if env.id is not None and env.method is None:
{% if cookiecutter.heartbeat_style == "client-ping" %}
            if env.id == config.PING_ID:
                return [Heartbeat(venue=venue, recv_ts_ns=recv_ts_ns)]  # the answer to our ping
{% endif %}
            if env.error is not None:
                return [SubscribeAck(venue=venue, request_id=env.id, error=error_text(env.error))]
            if env.result is msgspec.UNSET:
                raise ProtocolError(f"response {env.id} with neither result nor error")
            try:
                channels = schemas.channels_decoder.decode(env.result)
            except msgspec.ValidationError:
                channels = []  # "ok" and other non-list results
            return [SubscribeAck(venue=venue, request_id=env.id, channels=channels)]
        if env.error is not None:
            return [SubscribeAck(venue=venue, request_id=NO_REQUEST_ID, error=error_text(env.error))]
        raise ProtocolError(f"unknown frame shape (method={env.method!r}, id={env.id!r}): {_preview(frame)}")
    except msgspec.DecodeError as exc:  # includes ValidationError (missing/mistyped field)
        raise ProtocolError(f"{venue}: bad frame ({exc}): {_preview(frame)}") from None


def parse_notification(venue: str, channel: str, data: msgspec.Raw, recv_ts_ns: int) -> list[Event]:
    kind = channel.split(".", 1)[0]
    if kind == "book":
        book = schemas.book_decoder.decode(data)
        if book.type == "snapshot":
            # FILL IN: ``depth_limit`` = levels per side if the venue truncates its snapshots
            snapshot = BookSnapshot(
                venue=venue,
                symbol=book.instrument_name,
                sequence=book.change_id,
                bids=book.bids,
                asks=book.asks,
                exchange_ts_ms=book.timestamp,
                recv_ts_ns=recv_ts_ns,
                depth_limit=None,
                checksum=book.checksum,
            )
            return [snapshot]
        if book.prev_change_id is None:
            raise ProtocolError(f"book change without prev_change_id on {channel}")
        delta = BookDelta(
            venue=venue,
            symbol=book.instrument_name,
            first_sequence=book.change_id,
            sequence=book.change_id,
            prev_sequence=book.prev_change_id,
            bids=book.bids,
            asks=book.asks,
            exchange_ts_ms=book.timestamp,
            recv_ts_ns=recv_ts_ns,
            checksum=book.checksum,
        )
        return [delta]
    # FILL IN: other feeds (trades -> Trade, ticker -> TopOfBook) go here.
    return []  # a valid channel we do not consume
{% endif %}


def _preview(frame: str | bytes, n: int = 160) -> str:
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes | bytearray) else frame
    return text if len(text) <= n else text[:n] + "..."
