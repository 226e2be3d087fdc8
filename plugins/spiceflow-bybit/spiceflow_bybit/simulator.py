"""A loopback Bybit v5 public stream of one category (``/v5/public/<category>``) and
``GET /v5/market/instruments-info`` on one port (``spiceflow_core.testkit.LoopbackServer``).

Protocol as documented:
- ``{"op": "subscribe"|"unsubscribe", "args": [...], "req_id": "N"}`` answered
  ``{"success": true, "ret_msg": "", "conn_id": .., "req_id": "N", "op": ..}``; a topic
  already subscribed on the connection, an unknown symbol or topic refuses the whole
  request (``success: false``);
- ``{"op": "ping"}`` answered ``{"success": true, "ret_msg": "pong", .., "op": "ping"}``;
- ``orderbook.{depth}.{symbol}``: a ``snapshot`` on subscribe, then ``delta`` messages
  with ``u`` + 1 each; the stream is the top ``depth`` levels of a deeper book: a level
  entering the top is sent, a level pushed out by a better one is not (the client cuts
  its book at ``depth``), a level removed from the book is sent with size "0";
  ``orderbook.1`` sends snapshots only; ``publicTrade.{symbol}`` trades.

Documented limits enforced (each crossing is a ``LimitViolation`` in ``violations`` and
the request is refused): spot requests with more than 10 args, more than 21,000
characters of args on one connection. Client messages are capped at the venue's
declared budget (``config.MAX_MESSAGES_PER_SECOND``; Bybit documents none) through the
loopback server's ``message_limit``.

Faults (``sim.faults``): ``drop``, ``reset``, ``stall`` (seconds of silence, pongs
included), ``gap`` (one delta not sent), ``duplicate`` (one delta sent twice),
``malformed``, ``unknown_shape``, ``bad_size`` (a delta with a negative or non-numeric
size), ``refuse_subscribe``, ``skip_heartbeats`` (pings not answered), ``rest_errors``,
and ``restart`` (Bybit's service restart: every book topic gets a new snapshot with
``u = 1``); ``paused`` holds the market (pongs go on). There is no ``corrupt_checksum``:
Bybit sends no checksum.

The market: books start at the asset's reference price with the packaged fixture's tick
size and quantity step for the symbol (``fixtures/instruments_info.<category>.json``; a
price-derived tick and step for symbols it does not list), quantities in the coin (spot,
linear) or in USD contracts (inverse), from ``spiceflow_core.testkit.market``.

``on_update(symbol, u)`` is called after each change of the truth (the top ``depth``
levels), before it is sent: the chaos oracle keeps the truth per ``u`` with it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import msgspec
from websockets.asyncio.server import ServerConnection

from spiceflow_core.plugin import Endpoints, Level
from spiceflow_core.testkit import FaultSwitches, HttpAnswer, LoopbackServer, json_answer
from spiceflow_core.testkit.client_requests import client_requests
from spiceflow_core.testkit.connection_faults import FaultFrames
from spiceflow_core.testkit.connections import Delivery, LiveConnections, QueuedConnection
from spiceflow_core.testkit.lifecycle import RunsInContext
from spiceflow_core.testkit.market import (
    BookGenerator,
    InstrumentShape,
    Kind,
    default_lot,
    default_tick,
    instrument_rng,
    reference_price,
)
from spiceflow_core.testkit.server import LimitViolation, MessageLimit
from spiceflow_core.testkit.serving import serving

from . import config

_encode = msgspec.json.encode
_FIXTURES = Path(__file__).parent / "fixtures"


@functools.cache
def _fixture_rows(category: str) -> dict[str, dict[str, Any]]:
    """symbol -> its row in the packaged ``instruments_info.<category>.json``."""
    path = _FIXTURES / f"instruments_info.{category}.json"
    rows = msgspec.json.decode(path.read_bytes())["result"]["list"] if path.exists() else []
    return {row["symbol"]: row for row in rows}


def _shape(spec: config.CategorySpec, symbol: str) -> InstrumentShape:
    """What the market generator needs of a symbol: the fixture's tick, step and minimum
    when it lists the symbol, else values that fit the reference price."""
    row = _fixture_rows(spec.category).get(symbol)
    inverse = spec.category == "inverse"
    if row is not None:
        base, quote = row["baseCoin"], row["quoteCoin"]
        lots = row["lotSizeFilter"]
        tick = Decimal(row["priceFilter"]["tickSize"])
        lot = Decimal(lots.get("qtyStep") or lots["basePrecision"])
        min_size = Decimal(lots["minOrderQty"]) if lots.get("minOrderQty") else None
    else:
        quote = next((q for q in ("USDT", "USDC", "USD") if symbol.endswith(q) and symbol != q), "USDT")
        base = symbol.removesuffix(quote)
        price = reference_price(base, quote)
        tick, lot, min_size = default_tick(price), Decimal(1) if inverse else default_lot(price), None
    kind: Kind = "spot" if spec.category == "spot" else "future" if "-" in symbol else "perpetual"
    # inverse contracts are 1 USD each
    return InstrumentShape(
        symbol, base, quote, tick, lot, kind, size_currency="USD" if inverse else None, min_size=min_size
    )


def _text(obj: object) -> str:
    return _encode(obj).decode()


@dataclass
class BybitFaults(FaultSwitches):
    #: every book topic restarts with a snapshot at ``u = 1`` (Bybit service restart)
    restart: int = 0


@dataclass
class _View:
    """What one ``orderbook.{depth}`` topic of a symbol has published."""

    u: int
    bids: dict[int, str] = field(default_factory=dict)
    asks: dict[int, str] = field(default_factory=dict)


class _Book:
    """The exchange's full book of one symbol: price in ticks -> size string."""

    def __init__(self, market: BookGenerator, rng: random.Random, levels: int) -> None:
        self.symbol = market.shape.symbol
        self.market = market
        self.tick = market.shape.tick
        self.lot = market.shape.lot
        self.rng = rng
        self.levels = levels
        self.bids: dict[int, str] = {}
        self.asks: dict[int, str] = {}
        bids, asks = market.initial_levels(levels)
        self.bids.update((ticks, str(size)) for ticks, size in bids)
        self.asks.update((ticks, str(size)) for ticks, size in asks)
        self.views: dict[int, _View] = {}
        self._prices: dict[int, str] = {}

    def size(self) -> str:
        return str(self.market.size())

    def price(self, ticks: int) -> str:
        text = self._prices.get(ticks)
        if text is None:
            text = self._prices[ticks] = str(self.tick * ticks)
        return text

    def top(self, depth: int) -> tuple[dict[int, str], dict[int, str]]:
        bids = sorted(self.bids, reverse=True)[:depth]
        asks = sorted(self.asks)[:depth]
        return {p: self.bids[p] for p in bids}, {p: self.asks[p] for p in asks}

    def levels_of(self, view: _View) -> tuple[list[Level], list[Level]]:
        bids = [(self.price(p), view.bids[p]) for p in sorted(view.bids, reverse=True)]
        asks = [(self.price(p), view.asks[p]) for p in sorted(view.asks)]
        return bids, asks

    def step(self) -> None:
        """One random change near the top, never crossing."""
        rng = self.rng
        best_bid, best_ask = max(self.bids), min(self.asks)
        op = rng.random()
        if op < 0.45:
            is_bid = rng.random() < 0.5
        else:  # a new level (improving when inside the spread) or one leaving: towards the walked fair value
            up = self.market.prefer_bid(best_bid, best_ask)
            is_bid = up if op < 0.75 else not up
        side = self.bids if is_bid else self.asks
        if op < 0.45:  # a size change among the best levels
            keys = sorted(side, reverse=is_bid)[:20]
            side[rng.choice(keys)] = self.size()
        elif op < 0.75 or len(side) < self.levels // 2:  # a new level, inside the spread when there is room
            offset = rng.randint(-1, 30)
            price = best_bid - offset if is_bid else best_ask + offset
            crosses = price >= best_ask if is_bid else price <= best_bid
            if price > 0 and not crosses:
                side[price] = self.size()
        elif len(side) > 3:  # a level leaves the book
            keys = sorted(side, reverse=is_bid)[:30]
            del side[rng.choice(keys)]
        # the book keeps its size: trim the far end
        while len(side) > self.levels + 10:
            del side[min(side) if is_bid else max(side)]


class _Conn(QueuedConnection):
    def __init__(self, conn_id: int, ws: ServerConnection) -> None:
        super().__init__(conn_id, ws)
        self.topics: set[str] = set()
        self.args_chars = 0


_FAULT_FRAMES = FaultFrames(malformed='{"topic":"orderbook.50.', unknown_shape='{"surprise":{"nobody":"expects"}}')


class BybitSimulator(RunsInContext):
    """``async with BybitSimulator(config.LINEAR, symbols=[...]) as sim: sim.endpoints``"""

    def __init__(
        self,
        spec: config.CategorySpec = config.LINEAR,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        symbols: list[str] | int | None = None,
        rate: float = 20.0,
        depth: int | None = None,
        levels: int = 60,
        seed: int | None = 7,
        message_limit: float | None = config.MAX_MESSAGES_PER_SECOND,
        **_: object,
    ) -> None:
        self.spec = spec
        self.rate = rate
        #: the book depth whose truth ``truth``/``truth_top``/``on_update`` report
        self.depth = depth or spec.default_depth
        self.rng = random.Random(seed)
        # typed as the protocol's FaultSwitches; ``restart`` is reached through take()
        self.faults: FaultSwitches = BybitFaults()
        self.client_frames: list[str] = []
        self.violations: list[LimitViolation] = []
        self.paused = False
        self.on_update: Callable[[str, int], None] | None = None
        self.pings = 0
        if symbols is None:
            names = list(spec.default_instruments)
        elif isinstance(symbols, int):
            base = list(spec.default_instruments)
            names = (base + [f"SIM{i}USDT" for i in range(symbols)])[:symbols]
        else:
            names = list(symbols)
        self._books: dict[str, _Book] = {}
        for i, name in enumerate(names):
            market = BookGenerator(_shape(spec, name), instrument_rng(seed, spec.venue, name))
            book = _Book(market, self.rng, levels)
            self._books[name] = book
            book.views[self.depth] = _View(u=1_000_000 + 10_000 * i)
            book.views[self.depth].bids, book.views[self.depth].asks = book.top(self.depth)
        self._trade_ids = itertools.count(1)
        self._delivery = Delivery(self.faults)
        self._connections = LiveConnections(
            path=config.WS_PATH.format(category=spec.category),
            accept=_Conn,
            on_frame=self._on_request,
            delivery=self._delivery,
            client_frames=self.client_frames,
        )
        self._server = LoopbackServer(
            ws=self._connections.serve,
            http=self._http,
            host=host,
            port=port,
            message_limit=MessageLimit(message_limit) if message_limit else None,
            on_violation=self.violations.append,
        )
        self.endpoints = Endpoints(ws_url="", rest_url="")

    # -- lifecycle --------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[BybitSimulator]:
        async with serving(self._server, self._connections, _FAULT_FRAMES) as tg:
            server = self._server
            self.endpoints = Endpoints(ws_url=f"{server.ws_url}{self._connections.path}", rest_url=server.http_url)
            tg.start_soon(self._generate)
            yield self

    @property
    def connections_total(self) -> int:
        return self._connections.total

    # -- what tests look at -------------------------------------------------------------
    def symbols(self) -> list[str]:
        return list(self._books)

    def truth(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        book = self._books.get(symbol)
        if book is None:
            return None
        view = book.views[self.depth]
        bids, asks = book.levels_of(view)
        return view.u, bids, asks

    def truth_top(self, symbol: str, depth: int) -> tuple[int | None, list[Level], list[Level]]:
        u, bids, asks = self.truth(symbol)  # type: ignore[misc]
        return u, bids[:depth], asks[:depth]

    def connections(self) -> int:
        return len(self._connections)

    def requests(self, op: str) -> list[dict[str, Any]]:
        """Decoded client requests of one ``op``, in order."""
        return client_requests(self.client_frames, "op", op)

    # -- REST -------------------------------------------------------------------------------
    def _row(self, book: _Book) -> dict[str, Any]:
        category = self.spec.category
        base = book.symbol.removesuffix("USDT").removesuffix("USD").removesuffix("USDC") or book.symbol
        quote = "USD" if category == "inverse" else "USDT"
        row: dict[str, Any] = {
            "symbol": book.symbol,
            "status": "Trading",
            "baseCoin": base,
            "quoteCoin": quote,
            "priceFilter": {"tickSize": str(book.tick)},
        }
        minimum = str(book.market.shape.min_size or book.lot)
        if category == "spot":
            row["lotSizeFilter"] = {"basePrecision": str(book.lot), "minOrderQty": minimum}
        else:
            row.update(
                contractType="InversePerpetual" if category == "inverse" else "LinearPerpetual",
                deliveryTime="0",
                settleCoin=base if category == "inverse" else quote,
                lotSizeFilter={"qtyStep": str(book.lot), "minOrderQty": minimum},
            )
        return row

    async def _http(self, path: str, query: dict[str, str]) -> HttpAnswer:
        status = self.faults.take_rest_error()
        if status is not None:
            return json_answer({"retCode": 10006, "retMsg": "Too many visits!"}, status)
        if path != config.INSTRUMENTS_PATH:
            return json_answer({"retCode": 10001, "retMsg": f"no such path {path}"}, 404)
        if query.get("category") != self.spec.category:
            return json_answer({"retCode": 10001, "retMsg": "params error: category"})
        # two pages, so clients must follow the cursor
        rows = [self._row(book) for book in self._books.values()]
        half = (len(rows) + 1) // 2
        page, cursor = (rows[half:], "") if query.get("cursor") == "page2" else (rows[:half], "page2")
        if not rows[half:]:
            cursor = ""
        result = {"category": self.spec.category, "list": page, "nextPageCursor": cursor}
        return json_answer({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 0})

    # -- WebSocket ----------------------------------------------------------------------------
    def _answer(self, conn: _Conn, op: str, req_id: Any, success: bool, ret_msg: str) -> None:
        body: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": f"sim-{conn.id}"}
        if not (self.spec.category == "spot" and op == "ping"):  # the spot pong echoes no req_id
            body["req_id"] = req_id if isinstance(req_id, str) else ""
        body["op"] = op
        conn.send(_text(body))

    def _violation(self, conn: _Conn, limit: str, detail: str) -> None:
        self.violations.append(LimitViolation(limit, f"connection {conn.id}: {detail}", disconnected=False))

    def _on_request(self, conn: _Conn, text: str) -> None:
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            self._answer(conn, "", "", False, "error:request not json")
            return
        if not isinstance(req, dict):
            self._answer(conn, "", "", False, "error:request not json object")
            return
        op, req_id, args = req.get("op"), req.get("req_id"), req.get("args") or []
        if op == "ping":
            self.pings += 1
            if not self.faults.take("skip_heartbeats"):
                self._answer(conn, "ping", req_id, True, "pong")
            return
        if op not in ("subscribe", "unsubscribe") or not all(isinstance(a, str) for a in args):
            self._answer(conn, str(op), req_id, False, f"error:unknown op {op!r}")
            return
        if op == "unsubscribe":
            for topic in args:
                if topic in conn.topics:
                    conn.topics.discard(topic)
                    conn.args_chars -= len(_encode(topic)) + 1
            self._answer(conn, op, req_id, True, "")
            return
        if self.spec.category == "spot" and len(args) > config.SPOT_ARGS_PER_REQUEST:
            self._violation(conn, "args_per_request", f"{len(args)} args in one spot request")
            self._answer(conn, op, req_id, False, f"error:args size >{config.SPOT_ARGS_PER_REQUEST}")
            return
        chars = conn.args_chars + sum(len(_encode(a)) + 1 for a in args)
        if chars > config.MAX_ARGS_CHARS_PER_CONNECTION:
            self._violation(conn, "args_chars_per_connection", f"{chars} characters of args")
            self._answer(conn, op, req_id, False, "error:args length exceeds 21000")
            return
        for topic in args:
            problem = self._check_topic(conn, topic)
            if problem:
                self._answer(conn, op, req_id, False, problem)
                return
        if self.faults.take("refuse_subscribe"):
            self._answer(conn, op, req_id, False, "error:subscription refused (fault)")
            return
        self._answer(conn, op, req_id, True, "")
        for topic in args:
            conn.topics.add(topic)
            conn.args_chars += len(_encode(topic)) + 1
            parts = topic.split(".")
            if parts[0] == config.BOOK_TOPIC:
                book = self._books[parts[2]]
                depth = int(parts[1])
                view = self._view(book, depth)
                conn.send(self._book_frame(topic, "snapshot", book, view))

    def _check_topic(self, conn: _Conn, topic: str) -> str | None:
        parts = topic.split(".")
        if topic in conn.topics:
            return f"error:already subscribed,topic:{topic}"
        if len(parts) == 3 and parts[0] == config.BOOK_TOPIC and parts[1].isdigit():
            if int(parts[1]) not in self.spec.depths:
                return f"error:handler not found,topic:{topic}"
            symbol = parts[2]
        elif len(parts) == 2 and parts[0] == config.TRADE_TOPIC:
            symbol = parts[1]
        else:
            return f"error:handler not found,topic:{topic}"
        if symbol not in self._books:
            return f"Invalid symbol :[{topic}]"
        return None

    def _view(self, book: _Book, depth: int) -> _View:
        view = book.views.get(depth)
        if view is None:
            view = book.views[depth] = _View(u=1)
            view.bids, view.asks = book.top(depth)
        return view

    @staticmethod
    def _book_frame(topic: str, kind: str, book: _Book, view: _View, bids=None, asks=None) -> str:
        if bids is None:
            bids, asks = book.levels_of(view)
        ts = time.time_ns() // 1_000_000
        data = {"s": book.symbol, "b": bids, "a": asks, "u": view.u, "seq": view.u * 7}
        return _text({"topic": topic, "type": kind, "ts": ts, "data": data, "cts": ts - 2})

    def _subscribers(self, topic: str) -> list[_Conn]:
        return [conn for conn in self._connections if topic in conn.topics]

    # -- the market ----------------------------------------------------------------------------
    def _publish(self, book: _Book, restart: bool) -> None:
        for depth, view in list(book.views.items()):
            topic = config.book_topic(depth, book.symbol)
            new_bids, new_asks = book.top(depth)
            if restart:
                view.u = 1
                view.bids, view.asks = new_bids, new_asks
                if depth == self.depth and self.on_update is not None:
                    self.on_update(book.symbol, view.u)
                for conn in self._subscribers(topic):
                    conn.send(self._book_frame(topic, "snapshot", book, view))
                continue
            changes: list[tuple[list[Level], dict[int, str], dict[int, str], dict[int, str]]] = []
            entries_b: list[Level] = []
            entries_a: list[Level] = []
            for entries, old, new, full in (
                (entries_b, view.bids, new_bids, book.bids),
                (entries_a, view.asks, new_asks, book.asks),
            ):
                for price, size in new.items():
                    if old.get(price) != size:
                        entries.append((book.price(price), size))
                for price in old:
                    # pushed out by better levels: not sent, the client cuts its book
                    if price not in new and price not in full:
                        entries.append((book.price(price), "0"))
                changes.append((entries, old, new, full))
            if not entries_b and not entries_a:
                continue
            view.u += 1
            view.bids, view.asks = new_bids, new_asks
            if depth == self.depth and self.on_update is not None:
                self.on_update(book.symbol, view.u)
            subscribers = self._subscribers(topic)
            if depth == 1:  # level 1: snapshots only
                for conn in subscribers:
                    conn.send(self._book_frame(topic, "snapshot", book, view))
                continue
            if self.faults.take("gap"):
                continue  # this u is never sent
            if self.faults.take("bad_size"):
                side = entries_b if entries_b else entries_a
                side.append((side[0][0], "-3" if self.rng.random() < 0.5 else "abc"))
            frame = self._book_frame(topic, "delta", book, view, entries_b, entries_a)
            repeat = 2 if self.faults.take("duplicate") else 1
            for conn in subscribers:
                for _ in range(repeat):
                    conn.send(frame)

    def _trade(self, book: _Book) -> None:
        topic = config.trade_topic(book.symbol)
        subscribers = self._subscribers(topic)
        if not subscribers:
            return
        buy = self.rng.random() < 0.5
        price = min(book.asks) if buy else max(book.bids)
        now = time.time_ns() // 1_000_000
        trade = {
            "T": now,
            "s": book.symbol,
            "S": "Buy" if buy else "Sell",
            "v": str(book.market.trade_size()),
            "p": book.price(price),
            "L": "PlusTick",
            "i": f"sim-{next(self._trade_ids)}",
            "BT": False,
        }
        frame = _text({"topic": topic, "type": "snapshot", "ts": now, "data": [trade]})
        for conn in subscribers:
            conn.send(frame)

    async def _generate(self) -> None:
        while True:
            await anyio.sleep(1 / self.rate if self.rate > 0 else 0.05)
            if self.paused or self._delivery.stalled():
                continue
            restart = self.faults.take("restart")
            for book in self._books.values():
                if not restart:
                    book.step()
                self._publish(book, restart)
                if self.rng.random() < 0.1:
                    self._trade(book)
