"""One OKX WebSocket connection: subscribe/unsubscribe requests, their
acknowledgements, the text ``ping`` keep-alive, and the numbering of book messages that
carry no ``seqId``. A new session per connection, so nothing leaks across reconnects.

Acknowledgements. OKX answers a request with one ``{"event": "subscribe", "arg": {...}}``
per channel and echoes no request id (we send none: the plugin README says why). The
session keeps, per pending request, the channels not yet confirmed; the request is
acknowledged (one ``SubscribeAck`` with its id, as the core expects) when the last of
them is confirmed. An ``error`` event names no channel: it refuses the oldest request
still pending (requests are answered in order on one connection).

Keep-alive. OKX closes a connection after 30 s without data; the client sends the text
``ping`` (at once on connect, then every ``runtime.ping_interval`` s, 20 s by default)
and OKX answers ``pong``, which is the session's heartbeat.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import ClassVar

from loguru import logger

from spiceflow_core.model import BookDelta, BookSnapshot, Event, SubscribeAck
from spiceflow_core.plugin.contract import ProtocolError, Request, WsSession

from . import config, schemas
from .parsing import ArgEvent, parse_frame, split_channel


@dataclass
class _Pending:
    op: str
    channels: list[str]
    waiting: set[str] = field(default_factory=set)


def encode_request(op: str, channels: list[str]) -> str:
    args = [schemas.Arg(channel=c, instId=i) for c, i in map(split_channel, channels)]
    return schemas.encoder.encode(schemas.OpRequest(op=op, args=args)).decode()


class OkxSession(WsSession):
    sends_heartbeats: ClassVar[bool] = True

    def __init__(self, *, args_per_request: int = config.ARGS_PER_REQUEST) -> None:
        self.args_per_request = args_per_request
        self._ids = itertools.count(1)
        #: request id -> what it still waits for, oldest first
        self.pending: OrderedDict[int, _Pending] = OrderedDict()
        #: instId -> the number given to its last book message without seqId
        self._numbers: dict[str, int] = {}

    # -- frames we send -------------------------------------------------------------------
    def _requests(self, op: str, channels: list[str]) -> list[Request]:
        out: list[Request] = []
        for start in range(0, len(channels), self.args_per_request):
            chunk = channels[start : start + self.args_per_request]
            frame = encode_request(op, chunk)
            if len(frame.encode()) > config.MAX_REQUEST_BYTES:
                raise ValueError(f"OKX request of {len(frame)} bytes exceeds 64 KB: send fewer args per request")
            request_id = next(self._ids)
            self.pending[request_id] = _Pending(op, chunk, set(chunk))
            out.append(Request(frame=frame, request_id=request_id, channels=chunk))
        return out

    def subscribe(self, channels: list[str]) -> list[Request]:
        return self._requests("subscribe", channels)

    def unsubscribe(self, channels: list[str]) -> list[Request]:
        return self._requests("unsubscribe", channels)

    def on_open(self) -> list[Request]:
        return [Request(frame=config.PING_FRAME)]  # no id: the pong is a Heartbeat

    def client_ping(self) -> str | None:
        return config.PING_FRAME

    # -- frames we receive -------------------------------------------------------------------
    def parse(self, frame: str | bytes, recv_ts_ns: int) -> list[Event]:
        out: list[Event] = []
        for event in parse_frame(frame, recv_ts_ns):
            if isinstance(event, ArgEvent):
                ack = self._on_arg_event(event)
                if ack is not None:
                    out.append(ack)
            elif isinstance(event, BookSnapshot | BookDelta) and event.sequence < 0:
                out.append(self._numbered(event))
            else:
                out.append(event)
        return out

    def _on_arg_event(self, event: ArgEvent) -> SubscribeAck | None:
        if event.event == "error":
            if not self.pending:
                raise ProtocolError(f"OKX error with no request pending: {event.error}")
            request_id, pending = self.pending.popitem(last=False)
            return SubscribeAck(venue=config.VENUE, request_id=request_id, error=event.error, channels=pending.channels)
        for request_id, pending in self.pending.items():
            if pending.op == event.event and event.channel in pending.waiting:
                pending.waiting.discard(event.channel)
                if pending.waiting:
                    return None
                del self.pending[request_id]
                return SubscribeAck(venue=config.VENUE, request_id=request_id, channels=pending.channels)
        logger.bind(venue=config.VENUE).debug("{} of {} matches no pending request", event.event, event.channel)
        return None

    def _numbered(self, event: BookSnapshot | BookDelta) -> BookSnapshot | BookDelta:
        """A book message without ``seqId`` (older OKX): numbered so that each follows the
        previous one of its instrument; its checksum is what validates the book."""
        if isinstance(event, BookSnapshot):
            event.sequence = self._numbers[event.symbol] = 1
            return event
        last = self._numbers.get(event.symbol, 0)
        event.prev_sequence = last
        event.first_sequence = event.sequence = self._numbers[event.symbol] = last + 1
        return event
