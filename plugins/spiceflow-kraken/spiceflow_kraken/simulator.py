"""A loopback Kraken spot WebSocket v2 (+ REST AssetPairs) that speaks the real
protocol, for the tests, the chaos suite, the ``demo`` profile and ``spiceflow simulate``.

- REST ``GET /0/public/AssetPairs``: the packaged fixture's pairs for the simulated
  symbols it knows, synthesized pairs for the others.
- WS ``/v2``: ``subscribe`` / ``unsubscribe`` of ``book`` (depth 10/25/100/500/1000),
  ``trade`` and ``ticker`` for a list of symbols, answered per symbol
  (``{"method":"subscribe","result":{"channel","symbol",...},"success":true,
  "req_id":N,...}``; a refusal ``"success":false,"error":...``); ``ping`` -> ``pong``;
  ``{"channel":"heartbeat"}`` every ``heartbeat_interval`` while subscribed.
- ``book``: a snapshot of the subscribed depth, then updates: after every market step,
  what changed in the client's top-``depth`` view (a level leaving the view is sent with
  ``qty`` 0, the level that enters it is sent too, as Kraken does), each message with the
  CRC32 checksum of the new top 10 and the step's timestamp (strictly increasing per
  symbol). Numbers go out as JSON numbers at the pair's full precision.
- Limits: more than ``config.MAX_MESSAGES_PER_SECOND`` client messages in one second on
  a connection closes it; every crossing is a ``LimitViolation`` in ``violations``.

The market: a random walk of levels per symbol at ``rate`` steps per second, advancing
whether or not anyone is subscribed, starting at the asset's reference price on the
pair's tick grid with quantities of a few thousand USD rounded to its lot decimals and
at least its ``ordermin``; the side that steps into the spread is drawn by that
module's walk (``spiceflow_core.testkit.market``). ``truth(symbol)`` is the full book and the
timestamp (in microseconds, the id the plugin's ``Sequencer`` gives that state) of the
last step; ``on_update(symbol, sequence)`` is called after every step, before it is sent.
``paused = True`` holds the market (heartbeats and answers go on).

Faults (``sim.faults``): drop, reset, stall (seconds of total silence), slow, gap (one
update a client never receives, only ever one changing its top 10 so the checksum can
see it), duplicate, malformed, unknown_shape, oversized, binary, bad_size (an update
with a negative or non-numeric quantity), refuse_subscribe, skip_heartbeats, and
``corrupt_checksum`` (the next book message carries a wrong checksum).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import msgspec

from spiceflow_core.plugin import Endpoints, Level
from spiceflow_core.testkit import FaultSwitches, LoopbackServer, json_answer
from spiceflow_core.testkit.client_requests import client_requests
from spiceflow_core.testkit.lifecycle import RunsInContext
from spiceflow_core.testkit.market import BookGenerator, InstrumentShape, instrument_rng
from spiceflow_core.testkit.server import HttpAnswer, LimitViolation, MessageLimit

from . import config
from .checksum import KrakenChecksum
from .rest import parse_instruments

FIXTURE = Path(__file__).with_name("fixtures") / config.INSTRUMENTS_FIXTURE
QTY_DECIMALS = 8
_encode = msgspec.json.Encoder(decimal_format="number").encode


@dataclass
class KrakenFaults(FaultSwitches):
    """The shared fault switches plus Kraken's checksum fault."""

    #: the next book message (snapshot or update) carries a wrong checksum
    corrupt_checksum: int = 0


def _now_us() -> int:
    return time.time_ns() // 1000


def _rfc3339(ts_us: int) -> str:
    seconds, micros = divmod(ts_us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


class _Book:
    """One symbol's truth: a random walk of levels on the pair's tick grid."""

    def __init__(self, rng: random.Random, market: BookGenerator, levels: int) -> None:
        self.rng = rng
        self.market = market
        self.tick = market.shape.tick
        self.qty_unit = Decimal(1).scaleb(-QTY_DECIMALS)
        self.min_levels = levels
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        bids, asks = market.initial_levels(levels)
        for ticks, qty in bids:
            self.bids[market.price(ticks)] = self._exact(qty)
        for ticks, qty in asks:
            self.asks[market.price(ticks)] = self._exact(qty)
        self.ts_us = _now_us()

    def _qty(self) -> Decimal:
        return self._exact(self.market.size())

    def trade_qty(self, at_most: Decimal) -> Decimal:
        return self._exact(self.market.trade_size(at_most=at_most))

    def _exact(self, qty: Decimal) -> Decimal:
        # at QTY_DECIMALS places, and at least 0.000001: smaller Decimals print with an exponent (1E-8)
        return max(qty, Decimal("0.000001")).quantize(self.qty_unit)

    def top(self, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return bids, asks

    def step(self) -> None:
        """A few level changes per side near the top; never crossing, never thin."""
        for side, sign in ((self.bids, -1), (self.asks, 1)):
            for _ in range(self.rng.randint(1, 3)):
                best = max(self.bids) if sign < 0 else min(self.asks)
                price = best + sign * self.rng.randint(0, 12) * self.tick
                if price <= 0:
                    continue  # a cheap pair's bids end above zero
                if price in side and len(side) > self.min_levels and self.rng.random() < 0.3:
                    del side[price]
                else:
                    side[price] = self._qty()
            # the far end refills, so every subscribed depth stays full
            while len(side) < self.min_levels:
                worst = min(side) if sign < 0 else max(side)
                if worst + sign * self.tick <= 0:
                    break  # a cheap pair's bids end above zero
                side[worst + sign * self.tick] = self._qty()
        # a step inside the spread now and then moves the mid (towards the walked fair value)
        if self.rng.random() < 0.2:
            bid, ask = max(self.bids), min(self.asks)
            if ask - bid > self.tick:
                up = self.market.prefer_bid(int(bid / self.tick), int(ask / self.tick))
                side, price = (self.bids, bid + self.tick) if up else (self.asks, ask - self.tick)
                side[price] = self._qty()
        self.ts_us = max(_now_us(), self.ts_us + 1)


def _text(levels: list[tuple[Decimal, Decimal]]) -> list[Level]:
    return [(str(p), str(q)) for p, q in levels]


@dataclass
class _Client:
    """One WebSocket connection: its subscriptions and the book view it was sent."""

    conn: Any
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    books: dict[str, int] = field(default_factory=dict)  # symbol -> subscribed depth
    trades: set[str] = field(default_factory=set)
    tickers: set[str] = field(default_factory=set)
    views: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = field(default_factory=dict)
    last_book_frame: str | None = None


class KrakenSimulator(RunsInContext):
    def __init__(
        self,
        *,
        port: int = 0,
        symbols: list[str] | int | None = None,
        rate: float = 20.0,
        heartbeat_interval: float = config.HEARTBEAT_INTERVAL,
        seed: int = 7,
        levels: int = 60,
        **_: object,
    ) -> None:
        self.port = port
        if isinstance(symbols, int):
            symbols = [f"S{i:02d}/USD" for i in range(symbols)]
        self._symbols = list(symbols or config.DEFAULT_INSTRUMENTS)
        self.rate = rate
        self.heartbeat_interval = heartbeat_interval
        self.faults = KrakenFaults()
        self.client_frames: list[str] = []
        self.violations: list[LimitViolation] = []
        self.paused = False
        self.on_update: Callable[[str, int], None] | None = None
        self.endpoints = Endpoints(ws_url="", rest_url="")
        self.rng = random.Random(seed)
        self.pairs = self._pairs()
        self.books: dict[str, _Book] = {}
        self.checksums: dict[str, KrakenChecksum] = {}
        for symbol in self._symbols:
            market = BookGenerator(self._shape(symbol), instrument_rng(seed, config.VENUE, symbol))
            self.books[symbol] = _Book(self.rng, market, levels)
            self.checksums[symbol] = KrakenChecksum()
        self._clients: list[_Client] = []
        self._stall_until = 0.0

    # -- the Simulator protocol ------------------------------------------------------------
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def truth(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        book = self.books.get(symbol)
        if book is None:
            return None
        bids, asks = book.top(len(book.bids) + len(book.asks))
        return book.ts_us, _text(bids), _text(asks)

    def truth_top(self, symbol: str, depth: int) -> tuple[int | None, list[Level], list[Level]]:
        book = self.books.get(symbol)
        if book is None:
            return None, [], []
        bids, asks = book.top(depth)
        return book.ts_us, _text(bids), _text(asks)

    def requests(self, method: str) -> list[dict[str, Any]]:
        """The client requests of ``method`` received so far (decoded)."""
        return client_requests(self.client_frames, "method", method)

    def _shape(self, symbol: str) -> InstrumentShape:
        """The pair's tick, lot (``lot_decimals``) and ``ordermin`` for the market generator."""
        pair = self.pairs[symbol]
        base, _, quote = symbol.partition("/")
        lot = Decimal(1).scaleb(-min(int(pair.get("lot_decimals", QTY_DECIMALS)), QTY_DECIMALS))
        minimum = Decimal(str(pair["ordermin"])) if pair.get("ordermin") else None
        return InstrumentShape(symbol, base, quote or "USD", Decimal(pair["tick_size"]), lot, min_size=minimum)

    # -- REST ---------------------------------------------------------------------------------
    def _pairs(self) -> dict[str, dict[str, Any]]:
        rows = msgspec.json.decode(FIXTURE.read_bytes())["result"]
        known = {}
        for key, row in rows.items():
            for ins in parse_instruments(msgspec.json.encode({"error": [], "result": {key: row}})):
                known[ins.symbol] = row
        out = {}
        for symbol in self._symbols:
            row = known.get(symbol)
            if row is None:
                base, _, quote = symbol.partition("/")
                row = {"altname": base + quote, "wsname": symbol, "aclass_base": "currency", "base": base,
                       "aclass_quote": "currency", "quote": quote, "pair_decimals": 2, "lot_decimals": 8,
                       "ordermin": "0.1", "tick_size": "0.01", "status": "online"}  # fmt: skip
            row = dict(row, wsname=symbol, status="online")
            row.setdefault("tick_size", str(Decimal(1).scaleb(-row["pair_decimals"])))
            out[symbol] = row
        return out

    async def _http(self, path: str, query: dict[str, str]) -> HttpAnswer:
        status = self.faults.take_rest_error()
        if status is not None:
            return json_answer({"error": [f"EGeneral:Simulated HTTP {status}"]}, status)
        if path.endswith(config.INSTRUMENTS_PATH):
            result = {row["altname"]: row for row in self.pairs.values()}
            return json_answer({"error": [], "result": result})
        return json_answer({"error": [f"EGeneral:Unknown path {path}"]}, 404)

    # -- WebSocket -------------------------------------------------------------------------------
    async def _ws(self, conn: Any) -> None:
        client = _Client(conn)
        self._clients.append(client)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeats, client)
                async for raw in conn:
                    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                    self.client_frames.append(text)
                    await self._handle(client, text)
                tg.cancel_scope.cancel()
        except Exception:  # the client went away (closed, reset): nothing to clean up
            pass
        finally:
            self._clients.remove(client)

    async def _send(self, client: _Client, obj: object | str) -> None:
        if time.monotonic() < self._stall_until:
            return
        frame = obj if isinstance(obj, str) else _encode(obj).decode()
        await client.conn.send(frame)

    def _ack(self, method: str, req_id: Any, result: dict[str, Any] | None, error: str | None = None) -> dict:
        now = _rfc3339(_now_us())
        answer: dict[str, Any] = {"method": method, "success": error is None, "time_in": now, "time_out": now}
        if result is not None and error is None:
            answer["result"] = result
        if error is not None:
            answer["error"] = error
            if result is not None and "symbol" in result:
                answer["symbol"] = result["symbol"]
        if req_id is not None:
            answer["req_id"] = req_id
        return answer

    async def _handle(self, client: _Client, text: str) -> None:
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            async with client.lock:
                await self._send(client, {"error": "Malformed request", "method": "", "success": False})
            return
        if not isinstance(msg, dict):
            return
        method, req_id = msg.get("method"), msg.get("req_id")
        async with client.lock:
            if method == "ping":
                await self._send(client, self._ack("pong", req_id, None) | {"success": True})
                return
            if method not in ("subscribe", "unsubscribe"):
                await self._send(client, self._ack(str(method), req_id, None, f"Method not found {method!r}"))
                return
            params = msg.get("params") or {}
            channel = params.get("channel")
            symbols = [str(s) for s in params.get("symbol") or []]
            depth = int(params.get("depth") or 10)
            if channel not in ("book", "trade", "ticker") or (channel == "book" and depth not in config.BOOK_DEPTHS):
                await self._send(client, self._ack(method, req_id, None, "Invalid channel or depth"))
                return
            refuse = method == "subscribe" and self.faults.take("refuse_subscribe")
            for symbol in symbols:
                result: dict[str, Any] = {"channel": channel, "symbol": symbol}
                if channel == "book":
                    result["depth"] = depth
                if symbol not in self.books:
                    await self._send(client, self._ack(method, req_id, result, f"Currency pair not supported {symbol}"))
                    continue
                if refuse:
                    await self._send(client, self._ack(method, req_id, result, "Subscription refused (simulated)"))
                    continue
                await self._send(client, self._ack(method, req_id, result | {"snapshot": True}))
                if method == "unsubscribe":
                    client.books.pop(symbol, None) if channel == "book" else None
                    client.views.pop(symbol, None) if channel == "book" else None
                    (client.trades if channel == "trade" else client.tickers).discard(symbol)
                elif channel == "book":
                    client.books[symbol] = depth
                    await self._send(client, self._book_frame(client, symbol, snapshot=True))
                elif channel == "trade":
                    client.trades.add(symbol)
                else:
                    client.tickers.add(symbol)
                    await self._send(client, self._ticker_frame(symbol, "snapshot"))

    def _book_frame(self, client: _Client, symbol: str, *, snapshot: bool) -> str:
        """The next book message for ``client`` (its view becomes the truth's top)."""
        book = self.books[symbol]
        depth = client.books[symbol]
        bids, asks = book.top(depth)
        new = (dict(bids), dict(asks))
        if snapshot:
            send_bids, send_asks = bids, asks
        else:
            old = client.views[symbol]
            send_bids = _diff(old[0], new[0], reverse=True)
            send_asks = _diff(old[1], new[1], reverse=False)
        client.views[symbol] = new
        checksum = self.checksums[symbol].compute(_text(bids), _text(asks))
        if self.faults.take("corrupt_checksum"):
            checksum = (checksum + 1) & 0xFFFFFFFF
        data: dict[str, Any] = {
            "symbol": symbol,
            "bids": [{"price": p, "qty": q or 0} for p, q in send_bids],
            "asks": [{"price": p, "qty": q or 0} for p, q in send_asks],
            "checksum": checksum,
            "timestamp": _rfc3339(book.ts_us),
        }
        if not snapshot and send_bids and self.faults.take("bad_size"):
            price, _ = send_bids[0]
            data["bids"][0] = {"price": price, "qty": Decimal("-1") if self.rng.random() < 0.5 else "abc"}
        frame = _encode({"channel": "book", "type": "snapshot" if snapshot else "update", "data": [data]}).decode()
        client.last_book_frame = frame
        return frame

    def _ticker_frame(self, symbol: str, kind: str = "update") -> dict[str, Any]:
        bids, asks = self.books[symbol].top(1)
        data = {"symbol": symbol, "bid": bids[0][0], "bid_qty": bids[0][1], "ask": asks[0][0], "ask_qty": asks[0][1]}
        return {"channel": "ticker", "type": kind, "data": [data]}

    async def _heartbeats(self, client: _Client) -> None:
        while True:
            await anyio.sleep(self.heartbeat_interval)
            if not (client.books or client.trades or client.tickers) or self.faults.take("skip_heartbeats"):
                continue
            async with client.lock:
                await self._send(client, {"channel": "heartbeat"})

    # -- the market --------------------------------------------------------------------------------
    async def _market(self) -> None:
        trade_id = 1
        while True:
            await anyio.sleep(1 / self.rate if self.rate > 0 else 0.05)
            if self.faults.stall:
                self._stall_until = time.monotonic() + self.faults.stall
                self.faults.stall = 0.0
            if self.paused:
                continue
            for symbol, book in self.books.items():
                before = book.top(1)
                book.step()
                if self.on_update is not None:
                    self.on_update(symbol, book.ts_us)
                trade_id += 1
                for client in list(self._clients):
                    with contextlib.suppress(Exception):  # a client going away
                        await self._publish(client, symbol, before, trade_id)
            await self._connection_faults()

    async def _publish(self, client: _Client, symbol: str, before: Any, trade_id: int) -> None:
        async with client.lock:
            if symbol in client.books:
                if self.faults.gap and self._checksum_sees_step(client, symbol) and self.faults.take("gap"):
                    self._book_frame(client, symbol, snapshot=False)  # computed, never sent
                elif client.views.get(symbol) != tuple(map(dict, self.books[symbol].top(client.books[symbol]))):
                    # (a client whose snapshot already holds this step gets no empty update:
                    # Kraken sends updates only for changes)
                    frame = self._book_frame(client, symbol, snapshot=False)
                    await self._send(client, frame)
                    if self.faults.take("duplicate"):
                        await self._send(client, frame)
                if self.faults.slow:
                    await anyio.sleep(self.faults.slow)
            if symbol in client.tickers and self.books[symbol].top(1) != before:
                await self._send(client, self._ticker_frame(symbol))
            if symbol in client.trades:
                bids, _ = self.books[symbol].top(1)
                qty = self.books[symbol].trade_qty(at_most=bids[0][1])
                trade = {"symbol": symbol, "side": "sell", "price": bids[0][0], "qty": qty,
                         "ord_type": "market", "trade_id": trade_id, "timestamp": _rfc3339(self.books[symbol].ts_us)}  # fmt: skip
                await self._send(client, {"channel": "trade", "type": "update", "data": [trade]})

    def _checksum_sees_step(self, client: _Client, symbol: str) -> bool:
        """Whether what changed for this client is all inside the checksum's top 10 (a
        lost update outside it is invisible to any Kraken client)."""
        old = client.views[symbol]
        bids, asks = self.books[symbol].top(client.books[symbol])
        new = (dict(bids), dict(asks))
        changed = _diff(old[0], new[0], reverse=True) + _diff(old[1], new[1], reverse=False)
        top = {p for p, _ in bids[: config.CHECKSUM_DEPTH] + asks[: config.CHECKSUM_DEPTH]}
        old_top = set(sorted(old[0], reverse=True)[: config.CHECKSUM_DEPTH]) | set(
            sorted(old[1])[: config.CHECKSUM_DEPTH]
        )
        return bool(changed) and all(p in top or p in old_top for p, _ in changed)

    async def _connection_faults(self) -> None:
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                async with client.lock:
                    if self.faults.take("malformed"):
                        await self._send(client, '{"channel":"book","type":')
                    if self.faults.take("unknown_shape"):
                        await self._send(client, '{"surprise":true}')
                    if self.faults.take("binary"):
                        await client.conn.send(b"\x00\x01binary")
                    if self.faults.take("oversized"):
                        await self._send(
                            client, '{"channel":"status","pad":"' + "x" * self.faults.oversized_bytes + '"}'
                        )
        if self.faults.take("reset"):
            for client in list(self._clients):
                client.conn.transport.abort()
        if self.faults.take("drop"):
            for client in list(self._clients):
                with contextlib.suppress(Exception):
                    await client.conn.close()

    # -- running -------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[KrakenSimulator]:
        async with (
            LoopbackServer(
                ws=self._ws,
                http=self._http,
                port=self.port,
                ping_interval=20.0,
                max_size=2**20,
                message_limit=MessageLimit(config.MAX_MESSAGES_PER_SECOND),
                on_violation=self.violations.append,
            ) as server,
            anyio.create_task_group() as tg,
        ):
            ws_path = urlsplit(config.ENDPOINTS.ws_url).path
            self.endpoints = Endpoints(ws_url=f"{server.ws_url}{ws_path}", rest_url=server.http_url)
            tg.start_soon(self._market)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()


def _diff(old: dict[Decimal, Decimal], new: dict[Decimal, Decimal], *, reverse: bool) -> list[tuple[Decimal, Decimal]]:
    """Levels to send so a client holding ``old`` gets ``new``: removed ones with qty 0
    (sent as the JSON integer ``0``, like Kraken), changed and new ones, best first."""
    out = [(p, Decimal(0)) for p in old if p not in new]
    out += [(p, q) for p, q in new.items() if old.get(p) != q]
    return sorted(out, key=lambda level: level[0], reverse=reverse)
