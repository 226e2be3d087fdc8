"""A tiny venue with its own simulator, for testing the runtime without any real
exchange plugin. Its protocol is deliberately small but complete:

- client ``{"op": "subscribe"|"unsubscribe", "id": N, "channels": ["book.SYM", ...]}``
  -> ``{"id": N, "result": [...]}`` or ``{"id": N, "error": "..."}``
- server ``{"ch": "book.SYM", "type": "snapshot"|"delta", "seq": S, "prev": P,
  "bids": [["price", "size"], ...], "asks": [...]}`` — a snapshot is sent on every
  subscribe (so gaps heal by resubscribing) then deltas chained by ``prev``
- server ``{"heartbeat": T}`` every ``heartbeat_interval`` seconds
- REST ``GET /instruments`` -> ``[{"symbol": ..., "base": ..., "quote": ...}]``
- a client may send at most ``ToyVenue.max_messages_per_second`` messages in any one
  second, WebSocket ping and pong frames included; the simulator closes a connection
  that sends more (1008) and records a ``LimitViolation`` in ``violations``
  (``message_limit=None`` turns the rule off)
"""

from __future__ import annotations

import contextlib
import itertools
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import anyio
import msgspec
from websockets.asyncio.server import ServerConnection

from spiceflow_core.book.policy import ChainPolicy
from spiceflow_core.model import BookDelta, BookSnapshot, Event, Feed, Heartbeat, Instrument, Level, SubscribeAck
from spiceflow_core.plugin.contract import Endpoints, ProtocolError, Request, RestApi, Simulator, Venue, WsSession
from spiceflow_core.plugin.hookspecs import hookimpl
from spiceflow_core.testkit.faults import FaultSwitches
from spiceflow_core.testkit.server import HttpAnswer, LimitViolation, LoopbackServer, MessageLimit, json_answer


class _Frame(msgspec.Struct, omit_defaults=True):
    ch: str | None = None
    type: str | None = None
    seq: int | None = None
    prev: int | None = None
    bids: list[tuple[str, str]] = []
    asks: list[tuple[str, str]] = []
    id: int | None = None
    result: list[str] | None = None
    error: str | None = None
    heartbeat: float | None = None


_decoder = msgspec.json.Decoder(_Frame)


class ToySession(WsSession):
    sends_heartbeats = True

    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._ids = itertools.count(1)

    def _request(self, op: str, channels: list[str]) -> list[Request]:
        rid = next(self._ids)
        frame = msgspec.json.encode({"op": op, "id": rid, "channels": channels}).decode()
        return [Request(frame=frame, request_id=rid, channels=channels)]

    def subscribe(self, channels: list[str]) -> list[Request]:
        return self._request("subscribe", channels)

    def unsubscribe(self, channels: list[str]) -> list[Request]:
        return self._request("unsubscribe", channels)

    def parse(self, frame: str | bytes, recv_ts_ns: int) -> list[Event]:
        try:
            msg = _decoder.decode(frame)
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"invalid frame: {exc}") from None
        if msg.heartbeat is not None:
            return [Heartbeat(venue=self.venue, recv_ts_ns=recv_ts_ns)]
        if msg.id is not None:
            return [SubscribeAck(venue=self.venue, request_id=msg.id, error=msg.error, channels=msg.result or [])]
        if msg.ch is None or msg.seq is None:
            raise ProtocolError("frame of unknown shape")
        symbol = msg.ch.partition(".")[2]
        if msg.type == "snapshot":
            return [
                BookSnapshot(
                    venue=self.venue,
                    symbol=symbol,
                    sequence=msg.seq,
                    bids=msg.bids,
                    asks=msg.asks,
                    recv_ts_ns=recv_ts_ns,
                )
            ]
        if msg.type == "delta":
            return [
                BookDelta(
                    venue=self.venue,
                    symbol=symbol,
                    first_sequence=msg.seq,
                    sequence=msg.seq,
                    prev_sequence=msg.prev,
                    bids=msg.bids,
                    asks=msg.asks,
                    recv_ts_ns=recv_ts_ns,
                )
            ]
        raise ProtocolError(f"unknown frame type {msg.type!r}")


class ToyVenue(Venue):
    name: ClassVar[str] = "toy"
    exchange: ClassVar[str] = "toy"
    default_endpoints: ClassVar[Endpoints] = Endpoints(ws_url="ws://127.0.0.1:9/ws", rest_url="http://127.0.0.1:9")
    resync = "resubscribe"
    max_streams_per_connection: ClassVar[int] = 100
    max_messages_per_second: ClassVar[float] = 50.0
    default_instruments: ClassVar[tuple[str, ...]] = ("AAA", "BBB")

    async def fetch_instruments(self, rest: RestApi) -> list[Instrument]:
        return self.parse_instruments({"instruments.json": await rest.get_bytes("/instruments")})

    def parse_instruments(self, files: dict[str, bytes]) -> list[Instrument]:
        rows = msgspec.json.decode(files["instruments.json"])
        return [
            Instrument(
                venue=self.name,
                exchange="toy",
                symbol=r["symbol"],
                kind="spot",
                base=r["base"],
                quote=r["quote"],
                tick_size="0.01",
                lot_size="0.001",
                active=r.get("active", True),
            )
            for r in rows
        ]

    def fixtures_dir(self) -> Path:
        return Path(__file__).with_name("toy_fixtures")

    def channels(self, instrument: Instrument, feed: Feed) -> list[str]:
        return [f"{feed}.{instrument.symbol}"]

    def new_session(self) -> WsSession:
        return ToySession(self.name)

    def sequence_policy(self, instrument: Instrument) -> ChainPolicy:
        return ChainPolicy()

    def simulator(
        self, *, recording: str | None = None, port: int = 0, **options: Any
    ) -> contextlib.AbstractAsyncContextManager[Simulator]:
        return ToySimulator(port=port, **options).running()


@hookimpl
def spiceflow_venues() -> list[Venue]:
    return [ToyVenue()]


_CENT = Decimal("0.01")


class _Book:
    """The simulator's truth for one symbol: random walk of levels around a mid."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seq = 1000
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        for i in range(1, 21):
            self.bids[(Decimal(100) - Decimal(i) / 100).quantize(_CENT)] = Decimal(rng.randint(1, 50))
            self.asks[(Decimal(100) + Decimal(i) / 100).quantize(_CENT)] = Decimal(rng.randint(1, 50))

    def levels(self) -> tuple[list[Level], list[Level]]:
        bids = [(str(p), str(s)) for p, s in sorted(self.bids.items(), reverse=True)]
        asks = [(str(p), str(s)) for p, s in sorted(self.asks.items())]
        return bids, asks

    def step(self) -> tuple[int, int, list[Level], list[Level]]:
        prev = self.seq
        self.seq += 1
        changes_b: list[Level] = []
        changes_a: list[Level] = []
        for side, out, sign in ((self.bids, changes_b, -1), (self.asks, changes_a, 1)):
            best = max(self.bids) if sign < 0 else min(self.asks)
            price = (best + sign * Decimal(self.rng.randint(0, 25)) / 100).quantize(_CENT)
            if price in side and self.rng.random() < 0.2 and len(side) > 5:
                del side[price]
                out.append((str(price), "0"))
            else:
                size = Decimal(self.rng.randint(1, 50))
                side[price] = size
                out.append((str(price), str(size)))
        return prev, self.seq, changes_b, changes_a


class ToySimulator:
    def __init__(
        self,
        *,
        port: int = 0,
        symbols: list[str] | None = None,
        rate: float = 200.0,
        heartbeat_interval: float = 0.2,
        seed: int = 7,
        message_limit: float | None = ToyVenue.max_messages_per_second,
        **_: object,
    ) -> None:
        self.port = port
        self._symbols = list(symbols or ToyVenue.default_instruments)
        self.rate = rate
        self.heartbeat_interval = heartbeat_interval
        self.faults = FaultSwitches()
        self.client_frames: list[str] = []
        #: client messages allowed per connection in any one second (control frames
        #: included), None for no limit
        self.message_limit = message_limit
        self.violations: list[LimitViolation] = []
        self.rng = random.Random(seed)
        self.books = {s: _Book(self.rng) for s in self._symbols}
        self.connections: dict[ServerConnection, set[str]] = {}  # connection -> its subscribed channels
        self.silent = False  # stop sending anything (frames and heartbeats) while True
        self.paused = False  # freeze the market (no updates) while heartbeats go on
        self.endpoints = Endpoints(ws_url="", rest_url="")

    def symbols(self) -> list[str]:
        return list(self._symbols)

    @property
    def limit_disconnects(self) -> list[LimitViolation]:
        """The connections closed because a client crossed a limit."""
        return [v for v in self.violations if v.disconnected]

    def truth(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        book = self.books.get(symbol)
        if book is None:
            return None
        bids, asks = book.levels()
        return book.seq, bids, asks

    async def _http(self, path: str, query: dict[str, str]) -> HttpAnswer:
        if path == "/instruments":
            rows: list[dict[str, object]] = [{"symbol": s, "base": s, "quote": "USD"} for s in self._symbols]
            rows.append({"symbol": "HALT", "base": "HALT", "quote": "USD", "active": False})  # a halted one
            return json_answer(rows)
        return json_answer({"error": "not found"}, 404)

    async def _ws(self, conn: ServerConnection) -> None:
        subscribed: set[str] = set()
        self.connections[conn] = subscribed
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeats, conn)
                async for message in conn:
                    raw = message if isinstance(message, str) else message.decode("utf-8", "replace")
                    self.client_frames.append(raw)
                    req = msgspec.json.decode(raw)
                    channels = [c for c in req.get("channels", [])]
                    unknown = [c for c in channels if c.partition(".")[2] not in self.books]
                    if unknown or self.faults.take("refuse_subscribe"):
                        await conn.send(
                            msgspec.json.encode({"id": req["id"], "error": f"unknown channel {unknown}"}).decode()
                        )
                        continue
                    await conn.send(msgspec.json.encode({"id": req["id"], "result": channels}).decode())
                    if req["op"] == "subscribe":
                        for ch in channels:
                            book = self.books[ch.partition(".")[2]]
                            bids, asks = book.levels()
                            subscribed.add(ch)  # from here on the driver sends its deltas
                            await conn.send(
                                msgspec.json.encode(
                                    {"ch": ch, "type": "snapshot", "seq": book.seq, "bids": bids, "asks": asks}
                                ).decode()
                            )
                    else:
                        subscribed.difference_update(channels)
                tg.cancel_scope.cancel()
        except Exception:
            pass
        finally:
            self.connections.pop(conn, None)

    async def _heartbeats(self, conn: ServerConnection) -> None:
        while True:
            await anyio.sleep(self.heartbeat_interval)
            if not self.silent:
                await conn.send(msgspec.json.encode({"heartbeat": self.heartbeat_interval}).decode())

    async def _driver(self) -> None:
        """One market for all connections: every update goes to each subscriber."""
        while True:
            await anyio.sleep(1 / self.rate)
            if self.silent or self.paused or not self.connections:
                continue
            # every symbol's truth advances, subscribed or not: like a real exchange
            for symbol, book in self.books.items():
                prev, seq, bids, asks = book.step()
                ch = f"book.{symbol}"
                skip = self.faults.take("gap")  # nobody sees this update
                frame = msgspec.json.encode(
                    {"ch": ch, "type": "delta", "seq": seq, "prev": prev, "bids": bids, "asks": asks}
                ).decode()
                for conn, subscribed in list(self.connections.items()):
                    if ch in subscribed and not skip:
                        await self._send(conn, frame)
            for conn in list(self.connections):
                if self.faults.take("malformed"):
                    await self._send(conn, "{not json")
                if self.faults.take("reset"):
                    conn.transport.abort()
                elif self.faults.take("drop"):
                    await conn.close()

    @staticmethod
    async def _send(conn: ServerConnection, frame: str) -> None:
        try:
            await conn.send(frame)
        except Exception:
            pass  # that connection is going away; its handler cleans up

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ToySimulator]:
        async with (
            LoopbackServer(
                ws=self._ws,
                http=self._http,
                port=self.port,
                message_limit=MessageLimit(self.message_limit) if self.message_limit is not None else None,
                on_violation=self.violations.append,
                refuse_upgrade=lambda: self.faults.take("refuse_connect"),
            ) as server,
            anyio.create_task_group() as tg,
        ):
            self.endpoints = Endpoints(ws_url=f"{server.ws_url}/ws", rest_url=server.http_url)
            tg.start_soon(self._driver)
            yield self
            tg.cancel_scope.cancel()
