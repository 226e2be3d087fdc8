"""One Binance combined-stream connection: SUBSCRIBE/UNSUBSCRIBE requests with ids that
the acknowledgements ``{"result": null, "id": N}`` are matched against.

Limits (Binance WebSocket market streams docs) the session helps respect:
- streams per connection (spot 1024, futures 200): the runtime shards channels over
  connections using ``Venue.max_streams_per_connection``;
- 5 incoming messages per second per connection (spot; futures 10): a request carries
  many streams (``STREAMS_PER_REQUEST``) so subscribing a full connection is a handful
  of messages, which the runtime spaces by ``Venue.max_messages_per_second``;
- the 24-hour connection lifetime: ``max_lifetime_s`` tells the runtime when to
  reconnect (before Binance's cut);
- server pings: answered by the WebSocket client library (a pong with the same payload).
"""

from __future__ import annotations

import itertools
from typing import ClassVar

from spiceflow_core.model import Event
from spiceflow_core.plugin.contract import Request, WsSession

from . import schemas
from .config import RECONNECT_BEFORE_S
from .parsing import parse_frame

#: streams per SUBSCRIBE message; keeps each frame small (Binance does not document a
#: per-request maximum, 200 streams is ~6 KB)
STREAMS_PER_REQUEST = 200


class BinanceSession(WsSession):
    sends_heartbeats: ClassVar[bool] = False
    max_lifetime_s: ClassVar[float] = RECONNECT_BEFORE_S

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._ids = itertools.count(1)
        self.pending: dict[int, list[str]] = {}

    def url(self, ws_url: str) -> str:
        # combined streams (``/stream``) wrap every payload with its stream name; a bare
        # host gets the path appended so config may give either form
        base = ws_url.rstrip("/")
        if base.endswith("/stream") or "/stream?" in base or base.endswith("/ws"):
            return base
        return base + "/stream"

    def _requests(self, method: str, channels: list[str]) -> list[Request]:
        out = []
        for start in range(0, len(channels), STREAMS_PER_REQUEST):
            chunk = channels[start : start + STREAMS_PER_REQUEST]
            request_id = next(self._ids)
            self.pending[request_id] = chunk
            frame = schemas.encoder.encode(schemas.Request(method=method, params=chunk, id=request_id)).decode()
            out.append(Request(frame=frame, request_id=request_id, channels=chunk))
        return out

    def subscribe(self, channels: list[str]) -> list[Request]:
        return self._requests("SUBSCRIBE", channels)

    def unsubscribe(self, channels: list[str]) -> list[Request]:
        return self._requests("UNSUBSCRIBE", channels)

    def list_subscriptions(self) -> Request:
        request_id = next(self._ids)
        frame = schemas.encoder.encode(schemas.Request(method="LIST_SUBSCRIPTIONS", id=request_id)).decode()
        return Request(frame=frame, request_id=request_id)

    def parse(self, frame: str | bytes, recv_ts_ns: int) -> list[Event]:
        return parse_frame(self.venue, frame, recv_ts_ns)
