"""A loopback {{ cookiecutter.venue_name }} simulator built on the core test kit
(``spiceflow_core.testkit.LoopbackServer``: real WebSocket + HTTP on one port).

It speaks the protocol this plugin implements ({{ cookiecutter.protocol_style }}, {{ cookiecutter.heartbeat_style }}), so the
whole pipeline runs offline: ``spiceflow simulate --venue {{ cookiecutter.venue_slug }}``, the ``demo``
profile, the tests and the chaos suite all use it.

- REST ``GET <rest base path> + config.INSTRUMENTS_PATH``: the instrument list (the packaged fixture's
  rows for the simulated symbols, synthesized rows for others)
{% if cookiecutter.protocol_style == "plain-json" %}
- WS ``{"method": "SUBSCRIBE"|"UNSUBSCRIBE", "params": ["btcusdt@book"], "id": N}`` ->
  ``{"result": null, "id": N}`` (or ``{"error": {"code", "msg"}, "id": N}``), then a
  ``{"stream": "btcusdt@book", "data": {"type": "snapshot", ...}}`` per channel and
  deltas whose ``U`` is the previous ``u + 1``
{% else %}
- WS ``{"jsonrpc": "2.0", "id": N, "method": "public/subscribe", "params": {"channels": [...]}}``
  -> ``{"jsonrpc": "2.0", "id": N, "result": [channels]}`` (or an ``error``), then a
  ``subscription`` notification with a snapshot per channel and changes chained by
  ``prev_change_id``
{% endif %}
{% if cookiecutter.heartbeat_style == "websocket-ping" %}
- keep-alive: WebSocket pings every ``heartbeat_interval`` seconds (no heartbeat message)
{% elif cookiecutter.heartbeat_style == "server-heartbeat" %}
{% if cookiecutter.protocol_style == "json-rpc" %}
- keep-alive: after ``public/set_heartbeat``, ``heartbeat`` notifications every
  ``heartbeat_interval`` seconds, alternating ``test_request`` (answered by the client
  with ``public/test``: counted in ``test_replies``) and ``heartbeat``
{% else %}
- keep-alive: ``{"event": "heartbeat", "time": ms}`` every ``heartbeat_interval`` seconds
{% endif %}
{% else %}
{% if cookiecutter.protocol_style == "json-rpc" %}
- keep-alive: ``config.PING_METHOD`` requests are answered ``{"id": PING_ID, "result": "pong"}``
{% else %}
- keep-alive: ``{"ping": n}`` is answered ``{"pong": n}``
{% endif %}
{% endif %}
- book messages carry the venue's checksum once ``sync.CHECKSUM`` is written

The market: a random walk of levels per symbol at ``rate`` steps per second, advancing
whether or not anyone is subscribed, like a real exchange. ``truth(symbol)`` is the
full book as of the last step, ``truth_top(symbol, depth)`` its best levels, and
``on_update(symbol, sequence)`` is called after every step, before it is sent (the
chaos suite's oracle keeps the truth per sequence with it). ``paused = True`` holds the
market (keep-alives and answers go on); ``silent = True`` drops every frame.

Documented limits (config.py; each crossing is a ``LimitViolation`` in ``violations``,
and the pipeline tests assert there is none): ``message_limit`` client messages per
second and connection (the connection is closed, as the venue does),
``MAX_STREAMS_PER_CONNECTION`` channels per connection and ``CHANNELS_PER_REQUEST``
channels per request (the request is refused).

Faults (``sim.faults``, :class:`{{ cookiecutter.__class_prefix }}Faults`): ``drop``, ``reset``, ``stall``
(seconds without a frame), ``slow``, ``gap`` (one update not sent), ``duplicate`` (one
update sent twice), ``malformed``, ``unknown_shape``, ``binary``, ``refuse_subscribe``,
``refuse_connect``, ``rest_errors``{% if cookiecutter.heartbeat_style != "websocket-ping" %}, ``skip_heartbeats``{% endif %} and ``corrupt_checksum`` (the next book
message carries a wrong checksum, once the venue has one).

FILL IN: when the real protocol differs, change this file with parsing.py so the
simulator keeps speaking exactly what the exchange speaks, its documented limits
included.
"""

from __future__ import annotations

import collections
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import anyio
import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from spiceflow_core.plugin import Endpoints, Level
from spiceflow_core.testkit import FaultSwitches, HttpAnswer, LoopbackServer, json_answer
from spiceflow_core.testkit.lifecycle import RunsInContext
from spiceflow_core.testkit.server import LimitViolation, MessageLimit

from . import config
from .sync import CHECKSUM

FIXTURE = Path(config.__file__).with_name("fixtures") / config.INSTRUMENTS_FIXTURE
_TICK = Decimal("0.01")
#: queued in place of a frame: close the connection once what came before it is sent
_CLOSE = None


@dataclass
class {{ cookiecutter.__class_prefix }}Faults(FaultSwitches):
    """The shared fault switches plus this venue's own. FILL IN: a venue-specific event
    clients must survive (a service restart that resends snapshots, ...) is one more
    counter here, consumed where the simulator sends."""

    #: the next book message carries a wrong checksum (once ``sync.CHECKSUM`` is written)
    corrupt_checksum: int = 0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _encode(obj: object) -> str:
    return msgspec.json.encode(obj).decode()


class _Book:
    """The simulator's truth for one symbol: a random walk of levels around a mid."""

    def __init__(self, rng: random.Random, mid: Decimal, levels: int = 20) -> None:
        self.rng = rng
        self.seq = 1000
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        for i in range(1, levels + 1):
            self.bids[(mid - i * _TICK).quantize(_TICK)] = Decimal(rng.randint(1, 50))
            self.asks[(mid + i * _TICK).quantize(_TICK)] = Decimal(rng.randint(1, 50))

    def levels(self) -> tuple[list[Level], list[Level]]:
        bids = [(str(p), str(s)) for p, s in sorted(self.bids.items(), reverse=True)]
        asks = [(str(p), str(s)) for p, s in sorted(self.asks.items())]
        return bids, asks

    def step(self) -> tuple[int, int, list[Level], list[Level]]:
        """One update: a level changes or disappears on each side, never crossing.
        Returns (previous sequence, sequence, changed bids, changed asks)."""
        prev = self.seq
        self.seq += 1
        changes_b: list[Level] = []
        changes_a: list[Level] = []
        for side, out, sign in ((self.bids, changes_b, -1), (self.asks, changes_a, 1)):
            best = max(self.bids) if sign < 0 else min(self.asks)
            price = (best + sign * self.rng.randint(0, 10) * _TICK).quantize(_TICK)
            if price in side and len(side) > 5 and self.rng.random() < 0.2:
                del side[price]
                out.append((str(price), "0"))
            else:
                size = Decimal(self.rng.randint(1, 50))
                side[price] = size
                out.append((str(price), str(size)))
        return prev, self.seq, changes_b, changes_a


class _Client:
    """One connection: its channels and the frames waiting to go out. Frames are queued
    without awaiting, so "send the snapshot, then count the channel as subscribed" and
    "step the market, then send the update to every subscriber" never interleave."""

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        self.channels: set[str] = set()
        self.out: collections.deque[str | bytes | None] = collections.deque()
        self.wake = anyio.Event()
{% if cookiecutter.heartbeat_style == "server-heartbeat" and cookiecutter.protocol_style == "json-rpc" %}
        #: set by ``public/set_heartbeat``: the heartbeats start
        self.heartbeat_requested = anyio.Event()
{% endif %}

    def send(self, frame: str | bytes | None) -> None:
        self.out.append(frame)
        self.wake.set()


class {{ cookiecutter.__class_prefix }}Simulator(RunsInContext):
    """``async with {{ cookiecutter.__class_prefix }}Simulator(symbols=["BTCUSDT"]) as sim: sim.endpoints``"""

    def __init__(
        self,
        *,
        port: int = 0,
        symbols: list[str] | int | None = None,
        rate: float = 50.0,
        heartbeat_interval: float = 0.5,
        seed: int = 7,
        levels: int = 20,
        message_limit: float | None = config.MAX_MESSAGES_PER_SECOND,
        **_: object,
    ) -> None:
        self.port = port
        if isinstance(symbols, int):  # a number of instruments (the chaos suite asks for many)
            symbols = [*config.DEFAULT_INSTRUMENTS, *(f"SIM{i}USDT" for i in range(symbols))][:symbols]
        self._symbols = list(symbols or config.DEFAULT_INSTRUMENTS)
        self.rate = rate
        self.heartbeat_interval = heartbeat_interval
        #: client messages per second and connection (None: unlimited)
        self.message_limit = message_limit
        self.faults: FaultSwitches = {{ cookiecutter.__class_prefix }}Faults()
        self.client_frames: list[str] = []
        self.violations: list[LimitViolation] = []
        self.silent = False
        self.paused = False
        #: called with (symbol, sequence) after each step of the market, before it is sent
        self.on_update: Callable[[str, int], None] | None = None
        self.rng = random.Random(seed)
        self.books = {s: _Book(self.rng, Decimal(100 + 10 * i), levels) for i, s in enumerate(self._symbols)}
        self._channels = {self.channel(s): s for s in self._symbols}
        self.endpoints = Endpoints(ws_url="", rest_url="")
        self._clients: list[_Client] = []
        self._stall_until = 0.0
{% if cookiecutter.heartbeat_style == "server-heartbeat" and cookiecutter.protocol_style == "json-rpc" %}
        self.test_requests = 0
        self.test_replies = 0
{% endif %}
{% if cookiecutter.heartbeat_style == "client-ping" %}
        self.pings = 0
{% endif %}

    # -- the Simulator protocol (spiceflow_core.plugin.Simulator) and what tests read ------
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def truth(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        book = self.books.get(symbol)
        if book is None:
            return None
        bids, asks = book.levels()
        return book.seq, bids, asks

    def truth_top(self, symbol: str, depth: int) -> tuple[int | None, list[Level], list[Level]]:
        truth = self.truth(symbol)
        if truth is None:
            return None, [], []
        seq, bids, asks = truth
        return seq, bids[:depth], asks[:depth]

    def requests(self, method: str) -> list[dict[str, Any]]:
        """The client requests of ``method`` received so far, decoded, in order."""
        out = []
        for frame in self.client_frames:
            with contextlib.suppress(msgspec.DecodeError):
                msg = msgspec.json.decode(frame)
                if isinstance(msg, dict) and msg.get("method") == method:
                    out.append(msg)
        return out

    # -- channels -------------------------------------------------------------------------
    def channel(self, symbol: str) -> str:
        return config.BOOK_CHANNEL.format(symbol=symbol, symbol_lower=symbol.lower())

    def symbol_of(self, channel: str) -> str | None:
        return self._channels.get(channel)

    # -- REST -----------------------------------------------------------------------------
    def instrument_rows(self) -> list[dict[str, Any]]:
        known = {row["symbol"]: row for row in msgspec.json.decode(FIXTURE.read_bytes())["instruments"]}
        synthesized = {"quote": "USD", "kind": "spot", "tick_size": "0.01", "lot_size": "1", "status": "trading"}
        return [known.get(s) or {"symbol": s, "base": s, **synthesized} for s in self._symbols]

    async def _http(self, path: str, query: dict[str, str]) -> HttpAnswer:
        status = self.faults.take_rest_error()
        if status is not None:
            return json_answer({"error": f"simulated HTTP {status}"}, status)
        if path.endswith(config.INSTRUMENTS_PATH):
            return json_answer({"instruments": self.instrument_rows()})
        return json_answer({"error": f"no such path {path}"}, 404)

    # -- WebSocket ------------------------------------------------------------------------
    async def _ws(self, conn: ServerConnection) -> None:
        client = _Client(conn)
        self._clients.append(client)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer, client)
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
                tg.start_soon(self._heartbeats, client)
{% endif %}
                with contextlib.suppress(ConnectionClosed):
                    async for raw in conn:
                        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                        self.client_frames.append(text)
                        self._on_message(client, text)
                tg.cancel_scope.cancel()
        finally:
            self._clients.remove(client)

    async def _writer(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                if not client.out:
                    client.wake = anyio.Event()
                    await client.wake.wait()
                    continue
                stall = self._stall_until - time.monotonic()
                if stall > 0:
                    await anyio.sleep(stall)
                    continue
                if self.faults.slow > 0:
                    await anyio.sleep(self.faults.slow)
                frame = client.out.popleft()
                if frame is _CLOSE:
                    await client.conn.close(1001, "going away (simulated)")
                    return
                if not self.silent:
                    await client.conn.send(frame)

    def _on_message(self, client: _Client, text: str) -> None:
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            client.send(self._error(None, "invalid JSON"))
            return
        if not isinstance(msg, dict):
            client.send(self._error(None, "expected a JSON object"))
            return
{% if cookiecutter.protocol_style == "plain-json" %}
{% if cookiecutter.heartbeat_style == "client-ping" %}
        if "ping" in msg:
            self.pings += 1
            client.send(_encode({"pong": msg["ping"]}))
            return
{% endif %}
        method, request_id = msg.get("method"), msg.get("id")
        if method in (config.SUBSCRIBE_METHOD, config.UNSUBSCRIBE_METHOD):
            self._on_request(client, method, request_id, [str(c) for c in msg.get("params") or []])
            return
        client.send(self._error(request_id, f"unknown method {method!r}", code=1))
{% else %}
        method, request_id = msg.get("method"), msg.get("id")
        params = msg.get("params") or {}
        if method in (config.SUBSCRIBE_METHOD, config.UNSUBSCRIBE_METHOD):
            self._on_request(client, method, request_id, [str(c) for c in params.get("channels", [])])
            return
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
        if method == "public/set_heartbeat":
            # a real venue uses params["interval"] (seconds); the simulator is faster
            client.send(self._result(request_id, "ok"))
            client.heartbeat_requested.set()
            return
        if method == "public/test":
            self.test_replies += 1
            client.send(self._result(request_id, {"version": "simulator"}))
            return
{% elif cookiecutter.heartbeat_style == "client-ping" %}
        if method == config.PING_METHOD:
            self.pings += 1
            client.send(self._result(request_id, "pong"))
            return
{% endif %}
        client.send(self._error(request_id, f"Method not found: {method}", code=-32601))
{% endif %}

    def _on_request(self, client: _Client, method: str, request_id: Any, channels: list[str]) -> None:
        unknown = [c for c in channels if self.symbol_of(c) is None]
        if unknown:
            client.send(self._error(request_id, f"unknown channel(s) {unknown}"))
            return
        if len(channels) > config.CHANNELS_PER_REQUEST:
            self._violation("channels_per_request", f"{len(channels)} channels in one request")
            client.send(self._error(request_id, f"at most {config.CHANNELS_PER_REQUEST} channels per request"))
            return
        if method == config.UNSUBSCRIBE_METHOD:
            client.channels.difference_update(channels)
            client.send(self._ack(request_id, channels))
            return
        if len(client.channels | set(channels)) > config.MAX_STREAMS_PER_CONNECTION:
            self._violation("streams_per_connection", f"over {config.MAX_STREAMS_PER_CONNECTION} channels")
            client.send(self._error(request_id, f"at most {config.MAX_STREAMS_PER_CONNECTION} channels per connection"))
            return
        if self.faults.take("refuse_subscribe"):
            client.send(self._error(request_id, "subscription refused (simulated)"))
            return
        client.send(self._ack(request_id, channels))
        for channel in channels:
            symbol = self._channels[channel]
            client.send(self._snapshot_frame(symbol))
            client.channels.add(channel)

    def _violation(self, limit: str, detail: str) -> None:
        self.violations.append(LimitViolation(limit, detail, disconnected=False))
{% if cookiecutter.protocol_style == "plain-json" %}

    # -- frames ---------------------------------------------------------------------------
    def _error(self, request_id: Any, message: str, code: int = 2) -> str:
        return _encode({"error": {"code": code, "msg": message}, "id": request_id})

    def _ack(self, request_id: Any, channels: list[str]) -> str:
        return _encode({"result": None, "id": request_id})

    def _snapshot_frame(self, symbol: str) -> str:
        book = self.books[symbol]
        bids, asks = book.levels()
        data = {"type": "snapshot", "s": symbol, "U": book.seq, "u": book.seq, "b": bids, "a": asks, "E": _now_ms()}
        return self._book_frame(symbol, data)

    def _update_frame(self, symbol: str, prev: int, seq: int, bids: list[Level], asks: list[Level]) -> str:
        data = {"type": "delta", "s": symbol, "U": prev + 1, "u": seq, "b": bids, "a": asks, "E": _now_ms()}
        return self._book_frame(symbol, data)

    def _book_frame(self, symbol: str, data: dict[str, Any]) -> str:
        checksum = self._checksum(symbol)
        if checksum is not None:
            data["checksum"] = checksum
        return _encode({"stream": self.channel(symbol), "data": data})
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}

    async def _heartbeats(self, client: _Client) -> None:
        while True:
            await anyio.sleep(self.heartbeat_interval)
            if not self.faults.take("skip_heartbeats"):
                client.send(_encode({"event": "heartbeat", "time": _now_ms()}))
{% endif %}
{% else %}

    # -- frames ---------------------------------------------------------------------------
    def _error(self, request_id: Any, message: str, code: int = 11050) -> str:
        return _encode({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})

    def _result(self, request_id: Any, result: object) -> str:
        return _encode({"jsonrpc": "2.0", "id": request_id, "result": result, "usIn": time.time_ns() // 1000})

    def _ack(self, request_id: Any, channels: list[str]) -> str:
        return self._result(request_id, channels)

    def _snapshot_frame(self, symbol: str) -> str:
        book = self.books[symbol]
        bids, asks = book.levels()
        data = {"type": "snapshot", "instrument_name": symbol, "change_id": book.seq, "bids": bids, "asks": asks}
        return self._book_frame(symbol, data)

    def _update_frame(self, symbol: str, prev: int, seq: int, bids: list[Level], asks: list[Level]) -> str:
        data = {"type": "change", "instrument_name": symbol, "prev_change_id": prev, "change_id": seq}
        return self._book_frame(symbol, {**data, "bids": bids, "asks": asks})

    def _book_frame(self, symbol: str, data: dict[str, Any]) -> str:
        data["timestamp"] = _now_ms()
        checksum = self._checksum(symbol)
        if checksum is not None:
            data["checksum"] = checksum
        params = {"channel": self.channel(symbol), "data": data}
        return _encode({"jsonrpc": "2.0", "method": "subscription", "params": params})
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}

    async def _heartbeats(self, client: _Client) -> None:
        await client.heartbeat_requested.wait()
        kinds = ("test_request", "heartbeat")
        beat = 0
        while True:
            if not self.faults.take("skip_heartbeats"):
                kind = kinds[beat % 2]
                if kind == "test_request":
                    self.test_requests += 1
                client.send(_encode({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": kind}}))
            beat += 1
            await anyio.sleep(self.heartbeat_interval)
{% endif %}
{% endif %}

    def _checksum(self, symbol: str) -> int | None:
        """The checksum sent with a book message: None while the venue has none
        (``sync.CHECKSUM``); wrong once when ``corrupt_checksum`` is armed."""
        if CHECKSUM is None:
            return None
        bids, asks = self.books[symbol].levels()
        value = CHECKSUM.compute(bids[: CHECKSUM.depth], asks[: CHECKSUM.depth])
        return value + 1 if self.faults.take("corrupt_checksum") else value

    # -- the market -----------------------------------------------------------------------
    async def _market(self) -> None:
        while True:
            await anyio.sleep(1 / self.rate if self.rate > 0 else 0.05)
            self._connection_faults()
            if self.paused:
                continue
            for symbol, book in self.books.items():
                prev, seq, bids, asks = book.step()
                if self.on_update is not None:
                    self.on_update(symbol, seq)
                self._publish(symbol, prev, seq, bids, asks)

    def _publish(self, symbol: str, prev: int, seq: int, bids: list[Level], asks: list[Level]) -> None:
        channel = self.channel(symbol)
        clients = [c for c in self._clients if channel in c.channels]
        if not clients or self.faults.take("gap"):
            return  # a gap: the clients never see this update
        frame = self._update_frame(symbol, prev, seq, bids, asks)
        repeat = 2 if self.faults.take("duplicate") else 1
        for client in clients:
            for _ in range(repeat):
                client.send(frame)

    def _connection_faults(self) -> None:
        if self.faults.stall > 0:
            self._stall_until = time.monotonic() + self.faults.stall
            self.faults.stall = 0.0
        clients = list(self._clients)
        if not clients:
            return
        if self.faults.take("malformed"):
            for client in clients:
                client.send("{not json")
        if self.faults.take("unknown_shape"):
            for client in clients:
                client.send('{"surprise":{"nobody":"expects"}}')
        if self.faults.take("binary"):
            for client in clients:
                client.send(b"\x00\x01binary\xff")
        if self.faults.take("reset"):
            for client in clients:
                client.conn.transport.abort()
        if self.faults.take("drop"):
            for client in clients:
                client.send(_CLOSE)

    # -- running --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        ping = {{ "self.heartbeat_interval" if cookiecutter.heartbeat_style == "websocket-ping" else "20.0" }}  # WebSocket pings (seconds)
        limit = None
        if self.message_limit is not None:
            limit = MessageLimit(self.message_limit, control_frames=config.LIMIT_COUNTS_CONTROL_FRAMES)
        server = LoopbackServer(
            ws=self._ws,
            http=self._http,
            port=self.port,
            ping_interval=ping,
            message_limit=limit,
            on_violation=self.violations.append,
            refuse_upgrade=lambda: self.faults.take("refuse_connect"),
        )
        async with server, anyio.create_task_group() as tg:
            # the live URLs' paths on the loopback host, so `--endpoint ws://127.0.0.1:PORT`
            # (which keeps the default path) reaches the same simulator
            ws_path = urlsplit(config.ENDPOINTS.ws_url).path
            rest_path = urlsplit(config.ENDPOINTS.rest_url).path.rstrip("/")
            self.endpoints = Endpoints(ws_url=f"{server.ws_url}{ws_path}", rest_url=f"{server.http_url}{rest_path}")
            tg.start_soon(self._market)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()
