"""One Bybit v5 public connection: subscribe / unsubscribe requests, the client ping,
and answers matched with requests.

- ``{"op": "subscribe", "args": [...], "req_id": "N"}``, split so no request carries more
  args than the category allows (spot: 10 per request, "Connect" page);
- the answer ``{"success": true, "ret_msg": "", "op": "subscribe", "req_id": "N"}`` echoes
  ``req_id`` but not the args. When an answer comes without a usable ``req_id`` (Bybit's
  examples show ``"req_id": ""`` for requests sent without one), it is matched with the
  oldest request of the same ``op`` still waiting: one connection answers in order.
- keep-alive: ``{"op": "ping", "req_id": "..."}`` every ``runtime.ping_interval`` (Bybit
  recommends 20 s) and once on connect; the pong is the venue's heartbeat.

A new session per connection: ids restart at 1, nothing leaks across reconnects.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import ClassVar

from spiceflow_core.plugin import Event, Heartbeat, Request, SubscribeAck, WsSession

from . import config, schemas
from .parsing import Reply, parse_frame

#: ``req_id`` of our pings: a pong is a heartbeat, never a request's answer
PING_ID = "ping"


def ping_frame() -> str:
    return schemas.encoder.encode(schemas.Op(op="ping", req_id=PING_ID)).decode()


class BybitSession(WsSession):
    sends_heartbeats: ClassVar[bool] = True

    def __init__(self, venue: str, *, args_per_request: int = config.ARGS_PER_REQUEST) -> None:
        self.venue = venue
        self.args_per_request = args_per_request
        self._ids = itertools.count(1)
        #: request id -> (op, args) of requests still awaiting their answer, oldest first
        self.pending: OrderedDict[int, tuple[str, list[str]]] = OrderedDict()

    def _requests(self, op: str, channels: list[str]) -> list[Request]:
        out = []
        size = self.args_per_request
        for start in range(0, len(channels), size):
            chunk = channels[start : start + size]
            request_id = next(self._ids)
            self.pending[request_id] = (op, chunk)
            frame = schemas.encoder.encode(schemas.Op(op=op, req_id=str(request_id), args=chunk)).decode()
            out.append(Request(frame=frame, request_id=request_id, channels=chunk))
        return out

    def subscribe(self, channels: list[str]) -> list[Request]:
        return self._requests("subscribe", channels)

    def unsubscribe(self, channels: list[str]) -> list[Request]:
        return self._requests("unsubscribe", channels)

    def on_open(self) -> list[Request]:
        # a ping at once: the first pong (a Heartbeat) arrives right after connecting
        return [Request(frame=ping_frame())]

    def client_ping(self) -> str | None:
        return ping_frame()

    # -- answers ----------------------------------------------------------------------
    def _match(self, reply: Reply) -> int | None:
        """The id of the request ``reply`` answers, or None when none waits."""
        if reply.req_id and reply.req_id.isdigit():
            request_id = int(reply.req_id)
            if request_id in self.pending:
                return request_id
        for request_id, (op, _) in self.pending.items():
            if op == reply.op:
                return request_id
        return None

    def parse(self, frame: str | bytes, recv_ts_ns: int) -> list[Event]:
        parsed = parse_frame(self.venue, frame, recv_ts_ns)
        if not isinstance(parsed, Reply):
            return parsed
        if parsed.op == "ping":
            return [Heartbeat(venue=self.venue, recv_ts_ns=recv_ts_ns)]
        request_id = self._match(parsed)
        if request_id is None:
            # an answer nobody waits for (already timed out): nothing to report
            return []
        _, channels = self.pending.pop(request_id)
        error = None if parsed.success else (parsed.ret_msg or f"{parsed.op} refused")
        return [SubscribeAck(venue=self.venue, request_id=request_id, error=error, channels=channels)]
