"""A loopback {{ cookiecutter.venue_name }} simulator built on the core test kit
(``spiceflow_core.testkit.LoopbackServer``: real WebSocket + HTTP on one port).

It speaks the protocol this plugin implements ({{ cookiecutter.protocol_style }}, {{ cookiecutter.heartbeat_style }}), so the
whole pipeline runs offline: ``spiceflow simulate --venue {{ cookiecutter.venue_slug }}``, the ``demo``
profile and the tests all use it.

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

Faults (``sim.faults``, see ``spiceflow_core.testkit.FaultSwitches``): ``gap``,
``malformed``, ``drop``, ``reset``, ``refuse_subscribe``, ``rest_errors``; ``silent``
stops every frame while True; ``paused`` holds the market (no book updates) while
keep-alives go on. A client sending more than ``config.MAX_MESSAGES_PER_SECOND``
messages in one second is disconnected and the crossing is recorded in ``violations``.

FILL IN: when the real protocol differs, change this file with parsing.py so the
simulator keeps speaking exactly what the exchange speaks.
"""

from __future__ import annotations

import contextlib
import random
import time
from decimal import Decimal
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit

import anyio
import msgspec
from spiceflow_core.plugin import Endpoints, Level
from spiceflow_core.testkit import FaultSwitches, LoopbackServer, json_answer
from spiceflow_core.testkit.server import LimitViolation, MessageLimit

from . import config

FIXTURE = Path(config.__file__).with_name("fixtures") / config.INSTRUMENTS_FIXTURE
_TICK = Decimal("0.01")


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
        """One update: a level changes or disappears on each side, never crossing."""
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


class {{ cookiecutter.__class_prefix }}Simulator:
    def __init__(
        self,
        *,
        port: int = 0,
        symbols: list[str] | None = None,
        rate: float = 50.0,
        heartbeat_interval: float = 0.5,
        seed: int = 7,
        levels: int = 20,
        **_: object,
    ) -> None:
        self.port = port
        self._symbols = list(symbols or config.DEFAULT_INSTRUMENTS)
        self.rate = rate
        self.heartbeat_interval = heartbeat_interval
        self.faults = FaultSwitches()
        self.client_frames: list[str] = []
        self.violations: list[LimitViolation] = []
        self.silent = False
        self.paused = False
        self.rng = random.Random(seed)
        self.books = {s: _Book(self.rng, Decimal(100 + 10 * i), levels) for i, s in enumerate(self._symbols)}
        self.endpoints = Endpoints(ws_url="", rest_url="")
{% if cookiecutter.heartbeat_style == "server-heartbeat" and cookiecutter.protocol_style == "json-rpc" %}
        self.test_requests = 0
        self.test_replies = 0
{% endif %}
{% if cookiecutter.heartbeat_style == "client-ping" %}
        self.pings = 0
{% endif %}

    # -- the Simulator protocol (spiceflow_core.plugin.Simulator) ------------------------
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def truth(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        book = self.books.get(symbol)
        if book is None:
            return None
        bids, asks = book.levels()
        return book.seq, bids, asks

    # -- channels -------------------------------------------------------------------------
    def channel(self, symbol: str) -> str:
        return config.BOOK_CHANNEL.format(symbol=symbol, symbol_lower=symbol.lower())

    def symbol_of(self, channel: str) -> str | None:
        for symbol in self.books:
            if self.channel(symbol) == channel:
                return symbol
        return None

    # -- REST -----------------------------------------------------------------------------
    def instrument_rows(self) -> list[dict]:
        known = {row["symbol"]: row for row in msgspec.json.decode(FIXTURE.read_bytes())["instruments"]}
        return [
            known.get(s) or {"symbol": s, "base": s, "quote": "USD", "kind": "spot", "tick_size": "0.01", "lot_size": "1", "status": "trading"}
            for s in self._symbols
        ]

    async def _http(self, path: str, query: dict[str, str]):
        status = self.faults.take_rest_error()
        if status is not None:
            return json_answer({"error": f"simulated HTTP {status}"}, status)
        if path.endswith(config.INSTRUMENTS_PATH):
            return json_answer({"instruments": self.instrument_rows()})
        return json_answer({"error": f"no such path {path}"}, 404)

    # -- WebSocket ------------------------------------------------------------------------
    async def _ws(self, conn) -> None:
        subscribed: set[str] = set()
        streaming = False
        try:
            async with anyio.create_task_group() as tg:
{% if cookiecutter.heartbeat_style == "server-heartbeat" and cookiecutter.protocol_style == "plain-json" %}
                tg.start_soon(self._heartbeats, conn)
{% endif %}
                async for raw in conn:
                    self.client_frames.append(raw)
                    try:
                        msg = msgspec.json.decode(raw)
                    except msgspec.DecodeError:
                        await self._send(conn, self._error(None, "invalid JSON"))
                        continue
                    if not isinstance(msg, dict):
                        await self._send(conn, self._error(None, "expected a JSON object"))
                        continue
                    if await self._handle(conn, msg, subscribed, tg) and not streaming:
                        streaming = True
                        tg.start_soon(self._stream, conn, subscribed)
                tg.cancel_scope.cancel()
        except Exception:  # the client went away (closed, reset): nothing to clean up
            pass

    async def _send(self, conn, obj: object) -> None:
        if not self.silent:
            await conn.send(_encode(obj))
{% if cookiecutter.protocol_style == "plain-json" %}

    def _error(self, request_id: int | None, message: str, code: int = 2) -> dict:
        return {"error": {"code": code, "msg": message}, "id": request_id}

    async def _handle(self, conn, msg: dict, subscribed: set[str], tg) -> bool:
        """Answer one client frame; True once something is subscribed."""
{% if cookiecutter.heartbeat_style == "client-ping" %}
        if "ping" in msg:
            self.pings += 1
            await self._send(conn, {"pong": msg["ping"]})
            return False
{% endif %}
        method, request_id = msg.get("method"), msg.get("id")
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            await self._send(conn, self._error(request_id, f"unknown method {method!r}", code=1))
            return False
        channels = [str(c) for c in msg.get("params") or []]
        unknown = [c for c in channels if self.symbol_of(c) is None]
        if unknown or self.faults.take("refuse_subscribe"):
            await self._send(conn, self._error(request_id, f"Invalid request: unknown stream(s) {unknown}"))
            return False
        await self._send(conn, {"result": None, "id": request_id})
        if method == "UNSUBSCRIBE":
            subscribed.difference_update(channels)
            return False
        for channel in channels:
            await self._send(conn, self._book_frame(channel, "snapshot"))
            subscribed.add(channel)
        return True

    def _book_frame(self, channel: str, kind: str, changes: tuple | None = None) -> dict:
        symbol = self.symbol_of(channel)
        book = self.books[symbol]
        if kind == "snapshot":
            bids, asks = book.levels()
            first = last = book.seq
        else:
            first, last, bids, asks = changes
        return {"stream": channel, "data": {"type": kind, "s": symbol, "U": first, "u": last, "b": bids, "a": asks, "E": _now_ms()}}
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}

    async def _heartbeats(self, conn) -> None:
        while True:
            await anyio.sleep(self.heartbeat_interval)
            if not self.faults.take("skip_heartbeats"):
                await self._send(conn, {"event": "heartbeat", "time": _now_ms()})
{% endif %}
{% else %}

    def _error(self, request_id: int | None, message: str, code: int = -32600) -> dict:
        return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}

    def _result(self, request_id: int | None, result: object) -> dict:
        return {"jsonrpc": "2.0", "id": request_id, "result": result, "usIn": time.time_ns() // 1000}

    async def _handle(self, conn, msg: dict, subscribed: set[str], tg) -> bool:
        """Answer one client frame; True once something is subscribed."""
        method, request_id = msg.get("method"), msg.get("id")
        params = msg.get("params") or {}
        if method in ("public/subscribe", "public/unsubscribe"):
            channels = [str(c) for c in params.get("channels", [])]
            unknown = [c for c in channels if self.symbol_of(c) is None]
            if unknown or self.faults.take("refuse_subscribe"):
                await self._send(conn, self._error(request_id, f"invalid channel(s) {unknown}", code=11050))
                return False
            await self._send(conn, self._result(request_id, channels))
            if method == "public/unsubscribe":
                subscribed.difference_update(channels)
                return False
            for channel in channels:
                await self._send(conn, self._book_frame(channel, "snapshot"))
                subscribed.add(channel)
            return True
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
        if method == "public/set_heartbeat":
            # a real venue uses params["interval"] (seconds); the simulator is faster
            await self._send(conn, self._result(request_id, "ok"))
            tg.start_soon(self._heartbeats, conn)
            return False
        if method == "public/test":
            self.test_replies += 1
            await self._send(conn, self._result(request_id, {"version": "simulator"}))
            return False
{% elif cookiecutter.heartbeat_style == "client-ping" %}
        if method == config.PING_METHOD:
            self.pings += 1
            await self._send(conn, self._result(request_id, "pong"))
            return False
{% endif %}
        await self._send(conn, self._error(request_id, f"Method not found: {method}", code=-32601))
        return False

    def _book_frame(self, channel: str, kind: str, changes: tuple | None = None) -> dict:
        symbol = self.symbol_of(channel)
        book = self.books[symbol]
        data: dict = {"type": kind, "instrument_name": symbol, "timestamp": _now_ms()}
        if kind == "snapshot":
            data["change_id"] = book.seq
            data["bids"], data["asks"] = book.levels()
        else:
            data["prev_change_id"], data["change_id"], data["bids"], data["asks"] = changes
        return {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}

    async def _heartbeats(self, conn) -> None:
        kinds = ("test_request", "heartbeat")
        beat = 0
        while True:
            if not self.faults.take("skip_heartbeats"):
                kind = kinds[beat % 2]
                if kind == "test_request":
                    self.test_requests += 1
                await self._send(conn, {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": kind}})
            beat += 1
            await anyio.sleep(self.heartbeat_interval)
{% endif %}
{% endif %}

    async def _stream(self, conn, subscribed: set[str]) -> None:
        """Every symbol's truth advances, subscribed or not, like a real exchange."""
        while True:
            await anyio.sleep(1 / self.rate if self.rate > 0 else 0)
            if self.silent or self.paused:
                continue
            for symbol, book in self.books.items():
                prev, seq, bids, asks = book.step()
                channel = self.channel(symbol)
                if channel not in subscribed or self.faults.take("gap"):
                    continue  # a gap: the client never sees this update
{% if cookiecutter.protocol_style == "plain-json" %}
                await self._send(conn, self._book_frame(channel, "delta", (seq, seq, bids, asks)))
{% else %}
                await self._send(conn, self._book_frame(channel, "change", (prev, seq, bids, asks)))
{% endif %}
            if self.faults.take("malformed"):
                await conn.send("{not json")
            if self.faults.take("reset"):
                conn.transport.abort()
                return
            if self.faults.take("drop"):
                await conn.close()
                return

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["{{ cookiecutter.__class_prefix }}Simulator"]:
        ping = {{ "self.heartbeat_interval" if cookiecutter.heartbeat_style == "websocket-ping" else "20.0" }}  # WebSocket pings (seconds)
        async with LoopbackServer(
            ws=self._ws,
            http=self._http,
            port=self.port,
            ping_interval=ping,
            message_limit=MessageLimit(config.MAX_MESSAGES_PER_SECOND),
            on_violation=self.violations.append,
        ) as server:
            # the live URLs' paths on the loopback host, so `--endpoint ws://127.0.0.1:PORT`
            # (which keeps the default path) reaches the same simulator
            ws_path = urlsplit(config.ENDPOINTS.ws_url).path
            rest_path = urlsplit(config.ENDPOINTS.rest_url).path.rstrip("/")
            self.endpoints = Endpoints(ws_url=f"{server.ws_url}{ws_path}", rest_url=f"{server.http_url}{rest_path}")
            yield self
