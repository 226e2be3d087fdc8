"""The Kraken v2 dialect of one WebSocket connection: requests, their acknowledgements,
keep-alive. A new session per connection, so request ids never leak across reconnects.

Requests: one per channel kind (``book``, ``trade``, ``ticker``) and batch of at most
``config.MAX_SYMBOLS_PER_REQUEST`` symbols, ``req_id`` from 1.

Acknowledgements: Kraken answers each *symbol* of a request separately
(``{"method":"subscribe","result":{"channel":"book","symbol":"BTC/USD",...},
"success":true,"req_id":N}``). The core expects one ``SubscribeAck`` per request, so the
session collects the per-symbol answers and reports the request once every symbol is
answered: accepted when all were, else refused with the symbols' errors. Answers are
matched by the echoed ``req_id``; an answer without one is matched by its echoed
(method, channel, symbol) against the requests still open. "Already subscribed" to a
subscribe and "Subscription Not Found" to an unsubscribe mean the channel already is
where we want it: counted as accepted.

Keep-alive: ``{"method":"ping"}`` on connect and every ``runtime.ping_interval``; the
``pong`` and the ``heartbeat`` channel are ``Heartbeat`` events.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

from spiceflow_core.plugin import Event, Request, SubscribeAck, WsSession

from . import config, schemas
from .parsing import Answer, parse_frame
from .sync import Sequencer

#: refusals that mean the channel already is in the requested state
_BENIGN = {"subscribe": ("already subscribed",), "unsubscribe": ("subscription not found",)}


@dataclass
class _Open:
    """A request whose per-symbol answers are still coming in."""

    method: str
    channel: str
    channels: list[str]
    waiting: set[str]
    errors: list[str] = field(default_factory=list)


class KrakenSession(WsSession):
    sends_heartbeats: ClassVar[bool] = True

    def __init__(
        self,
        sequencer: Sequencer | None = None,
        *,
        book_depth: int = config.DEFAULT_BOOK_DEPTH,
        max_symbols_per_request: int = config.MAX_SYMBOLS_PER_REQUEST,
    ) -> None:
        self.sequencer = sequencer if sequencer is not None else Sequencer()
        self.book_depth = book_depth
        self.max_symbols_per_request = max_symbols_per_request
        self._ids = itertools.count(1)
        #: request id -> the request's open answers
        self.pending: dict[int, _Open] = {}
        #: (method, channel, symbol) -> request id, for answers that echo no req_id
        self._by_channel: dict[tuple[str, str, str], int] = {}

    # -- frames we send ------------------------------------------------------------------
    def _requests(self, method: str, channels: list[str]) -> list[Request]:
        by_kind: dict[str, list[str]] = {}
        for name in channels:
            kind, symbol = config.split_channel(name)
            by_kind.setdefault(kind, []).append(symbol)
        out: list[Request] = []
        size = self.max_symbols_per_request
        for kind, symbols in by_kind.items():
            for start in range(0, len(symbols), size):
                chunk = symbols[start : start + size]
                request_id = next(self._ids)
                names = [config.channel_name(kind, s) for s in chunk]
                self.pending[request_id] = _Open(method, kind, names, set(chunk))
                for symbol in chunk:
                    self._by_channel[(method, kind, symbol)] = request_id
                params = schemas.SubscribeParams(
                    channel=kind, symbol=chunk, depth=self.book_depth if kind == "book" else None
                )
                frame = schemas.encoder.encode(schemas.Request(method=method, params=params, req_id=request_id))
                out.append(Request(frame=frame.decode(), request_id=request_id, channels=names))
        return out

    def subscribe(self, channels: list[str]) -> list[Request]:
        return self._requests("subscribe", channels)

    def unsubscribe(self, channels: list[str]) -> list[Request]:
        return self._requests("unsubscribe", channels)

    def on_open(self) -> list[Request]:
        return [Request(frame=config.PING_FRAME)]  # no id: the pong is a Heartbeat, not an ack

    def client_ping(self) -> str | None:
        return config.PING_FRAME

    # -- frames we receive ---------------------------------------------------------------
    def parse(self, frame: str | bytes, recv_ts_ns: int) -> list[Event]:
        events = parse_frame(frame, recv_ts_ns, self.sequencer)
        out: list[Event] = []
        for event in events:
            if isinstance(event, Answer):
                ack = self._on_answer(event)
                if ack is not None:
                    out.append(ack)
            else:
                out.append(event)
        return out

    def _request_of(self, answer: Answer) -> int | None:
        if answer.req_id is not None and answer.req_id in self.pending:
            return answer.req_id
        if answer.channel is not None and answer.symbol is not None:
            return self._by_channel.get((answer.method, answer.channel, answer.symbol))
        return None

    def _on_answer(self, answer: Answer) -> SubscribeAck | None:
        request_id = self._request_of(answer)
        if request_id is None:
            return None  # not an answer to a request of ours (or one already settled)
        pending = self.pending[request_id]
        error = answer.error
        if error is not None and any(text in error.lower() for text in _BENIGN.get(answer.method, ())):
            error = None
        if answer.symbol is None or answer.symbol not in pending.waiting:
            if error is None:
                return None  # a duplicate answer
            # an error about the whole request (e.g. a parameter Kraken refused)
            pending.errors.append(error)
            pending.waiting.clear()
        else:
            pending.waiting.discard(answer.symbol)
            if error is not None:
                pending.errors.append(f"{answer.symbol}: {error}")
        if pending.waiting:
            return None
        del self.pending[request_id]
        for name in pending.channels:
            key = (pending.method, *config.split_channel(name))
            if self._by_channel.get(key) == request_id:
                del self._by_channel[key]
        return SubscribeAck(
            venue=config.VENUE,
            request_id=request_id,
            error="; ".join(pending.errors) or None,
            channels=list(pending.channels),
        )
