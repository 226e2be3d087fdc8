"""One {{ cookiecutter.venue_name }} WebSocket connection: the frames we send (subscribe,
unsubscribe{% if cookiecutter.heartbeat_style != "websocket-ping" %}, keep-alive{% endif %}) and request ids matched with the acknowledgements.
A new session per connection, so ids restart at 1 and no state leaks across reconnects.

Acknowledgements. The core expects one ``SubscribeAck`` per request, with the id the
session gave it. An answer carrying that id settles its request; an error answer
without a usable id (to a frame the venue could not read) refuses the oldest request
still waiting, since one connection answers in order. FILL IN: a venue that echoes no
request id at all (OKX) or answers each channel separately (Kraken) is matched by the
echoed channels instead: keep, per pending request, the channels not yet confirmed.

Heartbeat style: {{ cookiecutter.heartbeat_style }}.
{% if cookiecutter.heartbeat_style == "websocket-ping" %}
The venue keeps the connection alive with WebSocket ping/pong frames, answered by the
client library; it sends no heartbeat message, so ``sends_heartbeats = False``: any frame
(the subscribe acknowledgement, book data) is the sign of life the WebSocketOnly
workflow waits for.
{% elif cookiecutter.heartbeat_style == "server-heartbeat" %}
The venue sends heartbeat messages ({% if cookiecutter.protocol_style == "json-rpc" %}after ``public/set_heartbeat``; a ``test_request``
must be answered with ``public/test`` or the venue closes the connection{% else %}``{"event": "heartbeat"}``{% endif %}), so
``sends_heartbeats = True``: the WebSocketOnly workflow completes at the first one.
{% else %}
The venue expects the client to ping ({% if cookiecutter.protocol_style == "json-rpc" %}``public/ping``{% else %}``config.PING_FRAME``{% endif %}) and answers pong.
``client_ping()`` gives the frame the core sends every ``runtime.ping_interval``
seconds; ``on_open()`` sends one at once so the first pong (a ``Heartbeat``) arrives
right after connecting. ``sends_heartbeats = True``: the workflow waits for that pong.
{% endif %}
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import ClassVar

from spiceflow_core.plugin import Event, Request, SubscribeAck, WsSession

from . import config, schemas
from .parsing import parse_frame


class {{ cookiecutter.__class_prefix }}Session(WsSession):
    sends_heartbeats: ClassVar[bool] = {{ "False" if cookiecutter.heartbeat_style == "websocket-ping" else "True" }}

    def __init__(self, venue: str = config.VENUE) -> None:
        self.venue = venue
        self._ids = itertools.count(1)
        #: request id -> its channels, for requests still awaiting their answer, oldest first
        self.pending: OrderedDict[int, list[str]] = OrderedDict()
{% if cookiecutter.protocol_style == "json-rpc" and cookiecutter.heartbeat_style == "server-heartbeat" %}
        #: ids of our public/test answers, whose responses are swallowed
        self._test_ids: set[int] = set()
{% endif %}

    def url(self, ws_url: str) -> str:
        # FILL IN: append a path or query the venue needs (e.g. "/stream"), if any
        return ws_url
{% if cookiecutter.protocol_style == "plain-json" %}

    def _requests(self, method: str, channels: list[str]) -> list[Request]:
        out = []
        size = config.CHANNELS_PER_REQUEST
        for start in range(0, len(channels), size):
            chunk = channels[start : start + size]
            request_id = next(self._ids)
            self.pending[request_id] = chunk
            frame = schemas.encoder.encode(schemas.Request(method=method, params=chunk, id=request_id)).decode()
            out.append(Request(frame=frame, request_id=request_id, channels=chunk))
        return out

    def subscribe(self, channels: list[str]) -> list[Request]:
        return self._requests(config.SUBSCRIBE_METHOD, channels)

    def unsubscribe(self, channels: list[str]) -> list[Request]:
        return self._requests(config.UNSUBSCRIBE_METHOD, channels)
{% if cookiecutter.heartbeat_style == "client-ping" %}

    def on_open(self) -> list[Request]:
        return [Request(frame=config.PING_FRAME)]  # no id: the pong is a Heartbeat, not an ack

    def client_ping(self) -> str | None:
        return config.PING_FRAME
{% endif %}
{% else %}

    def _request(self, method: str, params: dict, channels: list[str] | None = None) -> Request:
        request_id = next(self._ids)
        self.pending[request_id] = list(channels or [])
        request = schemas.RpcRequest(jsonrpc="2.0", id=request_id, method=method, params=params)
        frame = schemas.encoder.encode(request).decode()
        return Request(frame=frame, request_id=request_id, channels=list(channels or []))

    def _batched(self, method: str, channels: list[str]) -> list[Request]:
        size = config.CHANNELS_PER_REQUEST
        return [
            self._request(method, {"channels": channels[i : i + size]}, channels[i : i + size])
            for i in range(0, len(channels), size)
        ]

    def subscribe(self, channels: list[str]) -> list[Request]:
        return self._batched(config.SUBSCRIBE_METHOD, channels)

    def unsubscribe(self, channels: list[str]) -> list[Request]:
        return self._batched(config.UNSUBSCRIBE_METHOD, channels)
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}

    def on_open(self) -> list[Request]:
        # FILL IN: authentication (``public/auth``) would go first, if the venue needs it
        return [self._request("public/set_heartbeat", {"interval": config.HEARTBEAT_INTERVAL})]

    def test_reply(self) -> str:
        """The ``public/test`` answer to a ``test_request`` heartbeat."""
        request_id = next(self._ids)
        self._test_ids.add(request_id)
        request = schemas.RpcRequest(jsonrpc="2.0", id=request_id, method="public/test", params={})
        return schemas.encoder.encode(request).decode()
{% elif cookiecutter.heartbeat_style == "client-ping" %}

    def _ping(self) -> str:
        request = schemas.RpcRequest(jsonrpc="2.0", id=config.PING_ID, method=config.PING_METHOD, params={})
        return schemas.encoder.encode(request).decode()

    def on_open(self) -> list[Request]:
        return [Request(frame=self._ping())]  # no request_id: the pong is a Heartbeat, not an ack

    def client_ping(self) -> str | None:
        return self._ping()
{% endif %}
{% endif %}

    def parse(self, frame: str | bytes, recv_ts_ns: int) -> list[Event]:
{% if cookiecutter.protocol_style == "json-rpc" and cookiecutter.heartbeat_style == "server-heartbeat" %}
        events = parse_frame(self.venue, frame, recv_ts_ns, test_reply=self.test_reply)
{% else %}
        events = parse_frame(self.venue, frame, recv_ts_ns)
{% endif %}
        out: list[Event] = []
        for event in events:
            if isinstance(event, SubscribeAck):
{% if cookiecutter.protocol_style == "json-rpc" and cookiecutter.heartbeat_style == "server-heartbeat" %}
                if event.request_id in self._test_ids:
                    self._test_ids.discard(event.request_id)
                    continue  # the answer to our public/test: nothing to report
{% endif %}
                ack = self._matched(event)
                if ack is not None:
                    out.append(ack)
            else:
                out.append(event)
        return out

    def _matched(self, ack: SubscribeAck) -> SubscribeAck | None:
        """``ack`` for the pending request it answers, with that request's channels, or
        None when no request waits for it (it timed out already)."""
        if ack.request_id in self.pending:
            request_id = ack.request_id
        elif ack.error is not None and self.pending:
            request_id = next(iter(self.pending))  # an error without a usable id: the oldest
        else:
            return None
        channels = self.pending.pop(request_id)
        return SubscribeAck(venue=self.venue, request_id=request_id, error=ack.error, channels=channels)
