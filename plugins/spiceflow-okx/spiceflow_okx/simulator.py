"""A loopback OKX: the v5 public WebSocket at ``/ws/v5/public`` and
``GET /api/v5/public/instruments`` over HTTP, on one port (``spiceflow_core.testkit``).

Protocol as on the live exchange (plugin README):
- text ``ping`` is answered ``pong``;
- ``{"op": "subscribe"|"unsubscribe", "args": [{"channel", "instId"}, ...]}`` is answered
  with one ``{"event": "subscribe"|"unsubscribe", "arg": {...}, "connId"}`` per arg, or
  one ``{"event": "error", "code", "msg", "connId"}`` for the whole request (unknown
  channel or instId: 60018; not a request: 60012);
- ``books``: a ``snapshot`` (``prevSeqId`` -1) on every subscribe, then ``update``s
  chained by ``seqId``/``prevSeqId`` (ids advance by 1..20, as live), each with the
  CRC32 checksum of the top 25 levels; while the market is held (``paused``) a no-change
  update (``seqId == prevSeqId``, no levels) every 0.5 s, as OKX sends on a quiet book;
- ``bbo-tbt``: the best level of each side after every change; ``trades``: occasional
  trades at the touch.

Limits (each crossing is a :class:`LimitViolation` in ``violations``): 480
subscribe/unsubscribe requests per hour per connection (answered 60014 "Requests too
frequent"), 64 KB per request (60012), and the plugin's declared
``max_messages_per_second`` per connection (LoopbackServer ``message_limit``: the
connection is closed).

The market: books start at the asset's reference price with the packaged fixtures' tick
size, lot size and contract value (``fixtures/instruments.*.json``; a price-derived tick
for instruments they do not list), sizes in the coin for spot and in contracts for
swaps, futures and options, from ``spiceflow_core.testkit.market``; ``seed`` makes them
the same every run.

The truth: every instrument's full book (``truth``/``truth_top``), updated before each
message is sent; ``on_update(symbol, seqId)`` is called after each change (the chaos
oracle keeps the truth per seqId with it).

Faults (``sim.faults``, :class:`OkxFaults`): ``drop``, ``reset``, ``stall``, ``gap`` (one
update not sent), ``duplicate`` (one update sent twice), ``malformed``,
``unknown_shape``, ``binary``, ``oversized``, ``refuse_subscribe`` (next subscribe
answered 60012), ``rest_errors``, ``slow``, and ``corrupt_checksum`` (the next book
message carries a wrong checksum). ``silent`` drops every frame while True; ``paused``
holds the market (keep-alives and no-change updates go on).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import functools
import itertools
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import anyio
import msgspec
from loguru import logger
from websockets.asyncio.server import ServerConnection

from spiceflow_core.model import Level
from spiceflow_core.plugin.contract import Endpoints
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
from .parsing import channel_name
from .sync import CHECKSUM

_FAULT_FRAMES = FaultFrames(
    malformed='{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[[',
    unknown_shape='{"surprise":{"nobody":"expects"}}',
    binary=b"\x00\x01binary\xff",
    oversized=lambda pad: '{"arg":{"channel":"books","instId":"PAD"},"pad":"' + pad + '"}',
)
_CHANNELS = (config.BOOK_CHANNEL, config.TOP_CHANNEL, config.TRADES_CHANNEL)
_FIXTURES = Path(__file__).parent / "fixtures"


@functools.cache
def _fixture_rows() -> dict[str, dict[str, str]]:
    """instId -> its row in the packaged ``instruments.<INSTTYPE>.json`` fixtures."""
    rows: dict[str, dict[str, str]] = {}
    for path in sorted(_FIXTURES.glob("instruments.*.json")):
        for row in msgspec.json.decode(path.read_bytes())["data"]:
            rows[row["instId"]] = row
    return rows


def _shape(symbol: str) -> InstrumentShape:
    """What the market generator needs of an instId: the fixture's tickSz, lotSz, minSz
    and contract value when it lists it, else values that fit the reference price
    (contracts of 100 USD for inverse, of 0.01-ish coin for linear derivatives)."""
    parts = symbol.split("-")
    base, quote = parts[0], parts[1] if len(parts) > 1 else "USDT"
    kind: Kind = "spot"
    if len(parts) > 2:
        kind = "perpetual" if parts[2] == "SWAP" else "future" if len(parts) == 3 else "option"
    inverse = kind != "spot" and quote == "USD"
    row = _fixture_rows().get(symbol)
    price = reference_price(base, quote)
    if row is not None:
        tick, lot = Decimal(row["tickSz"]), Decimal(row["lotSz"])
        min_size = Decimal(row["minSz"]) if row.get("minSz") else None
        ct_val = Decimal(row["ctVal"]) if row.get("ctVal") else Decimal(1)
    else:
        tick = default_tick(price) if kind != "option" else Decimal("0.0005")
        lot, min_size = (default_lot(price), None) if kind == "spot" else (Decimal(1), None)
        ct_val = Decimal(100) if inverse else default_lot(price) * 10 if kind != "spot" else Decimal(1)
    if kind == "spot":
        return InstrumentShape(symbol, base, quote, tick, lot, kind, min_size=min_size)
    if kind == "option":  # premium in the coin, contracts of ctVal coins
        option_type: Literal["call", "put"] = "call" if parts[4] == "C" else "put"
        strike = Decimal(parts[3])
        return InstrumentShape(
            symbol, base, base, tick, lot, kind, contract_size=ct_val, strike=strike, option_type=option_type
        )
    size_currency = quote if inverse else None  # inverse contracts are worth ctVal USD
    return InstrumentShape(
        symbol, base, quote, tick, lot, kind, size_currency=size_currency, contract_size=ct_val, min_size=min_size
    )


@dataclass
class OkxFaults(FaultSwitches):
    """The shared fault switches plus OKX's checksum fault."""

    corrupt_checksum: int = 0


def _encode(obj: object) -> str:
    return msgspec.json.encode(obj).decode()


def _now_ms() -> str:
    return str(time.time_ns() // 1_000_000)


class _Book:
    """The exchange's book of one instrument (Decimal price -> Decimal size)."""

    def __init__(self, market: BookGenerator, rng: random.Random, levels: int) -> None:
        self.symbol = market.shape.symbol
        self.market = market
        self.rng = rng
        self.tick = market.shape.tick
        self.levels = levels
        self.seq = rng.randint(1_000_000, 9_000_000)
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        bids, asks = market.initial_levels(levels)
        for ticks, size in bids:
            self.bids[market.price(ticks)] = size
        for ticks, size in asks:
            self.asks[market.price(ticks)] = size

    def _size(self) -> Decimal:
        return self.market.size()

    @staticmethod
    def _text(value: Decimal) -> str:
        return format(value.normalize(), "f") if value != value.to_integral() else str(int(value))

    def sides(self) -> tuple[list[Level], list[Level]]:
        bids = [(self._text(p), self._text(self.bids[p])) for p in sorted(self.bids, reverse=True)]
        asks = [(self._text(p), self._text(self.asks[p])) for p in sorted(self.asks)]
        return bids, asks

    def step(self) -> tuple[int, int, list[Level], list[Level]]:
        """One change of 1..3 levels, never crossing: (prevSeqId, seqId, bids, asks)."""
        changed: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}
        for _ in range(self.rng.randint(1, 3)):
            op = self.rng.random()
            if op < 0.4 or op >= 0.75:
                # a new level (improving when it lands inside the spread) or a deleted one
                # (retreating): the side leans towards the walked fair value
                up = self.market.prefer_bid(int(max(self.bids) / self.tick), int(min(self.asks) / self.tick))
                is_bid = up if op < 0.4 else not up
            else:
                is_bid = self.rng.random() < 0.5
            side, other = (self.bids, self.asks) if is_bid else (self.asks, self.bids)
            best = max(side) if is_bid else min(side)
            if op < 0.4 or len(side) <= 5:
                offset = self.rng.randint(-1, 8) * self.tick
                price = best - offset if is_bid else best + offset
                other_best = min(other) if is_bid else max(other)
                if price <= 0 or (is_bid and price >= other_best) or (not is_bid and price <= other_best):
                    continue
                side[price] = self._size()
            elif op < 0.75 or len(side) <= self.levels // 2:
                price = self.rng.choice(list(side))
                side[price] = self._size()
            else:
                price = self.rng.choice(list(side))
                del side[price]
            changed["bids" if is_bid else "asks"][price] = side.get(price, Decimal(0))
        prev = self.seq
        if changed["bids"] or changed["asks"]:
            self.seq += self.rng.randint(1, 20)
        bids = [(self._text(p), self._text(s)) for p, s in sorted(changed["bids"].items(), reverse=True)]
        asks = [(self._text(p), self._text(s)) for p, s in sorted(changed["asks"].items())]
        return prev, self.seq, bids, asks


class _Conn(QueuedConnection):
    def __init__(self, conn_id: int, ws: ServerConnection) -> None:
        super().__init__(conn_id, ws)
        self.conn_id = f"{conn_id:08x}"
        self.subs: set[str] = set()
        self.requests: collections.deque[float] = collections.deque()  # subscribe/unsubscribe times


def _default_symbols(n: int) -> list[str]:
    bases = ["BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "LTC", "DOT", "LINK", "AVAX", "TRX", "BCH", "UNI", "ATOM"]
    out = ["BTC-USDT", "ETH-USDT", "BTC-USDT-SWAP", "BTC-USD-SWAP", "ETH-USDT-SWAP"]
    for base in bases[2:]:
        out += [f"{base}-USDT", f"{base}-USDT-SWAP"]
    return out[:n] if n <= len(out) else out + [f"SIM{i}-USDT" for i in range(n - len(out))]


class OkxSimulator(RunsInContext):
    """``async with OkxSimulator(symbols=["BTC-USDT"]) as sim: sim.endpoints``"""

    def __init__(
        self,
        *,
        symbols: int | list[str] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        update_interval: float = 0.05,
        seed: int | None = None,
        levels: int = 30,
        checksums: bool = True,
        requests_per_hour: int = config.REQUESTS_PER_HOUR,
        max_messages_per_second: float = config.MAX_MESSAGES_PER_SECOND,
        quiet_interval: float = 0.5,
        **_: object,
    ) -> None:
        spec = symbols if symbols is not None else list(config.DEFAULT_INSTRUMENTS)
        self._symbols = _default_symbols(spec) if isinstance(spec, int) else list(spec)
        self.update_interval = update_interval
        self.checksums = checksums
        self.requests_per_hour = requests_per_hour
        self.quiet_interval = quiet_interval
        self.rng = random.Random(seed)
        self.faults: FaultSwitches = OkxFaults()
        self.client_frames: list[str] = []
        self.violations: list[LimitViolation] = []
        self.paused = False
        self.pings = 0
        #: called with (symbol, seqId) after each book change hits the truth
        self.on_update: Any = None
        self.books: dict[str, _Book] = {}
        for symbol in self._symbols:
            market = BookGenerator(_shape(symbol), instrument_rng(seed, config.VENUE, symbol))
            self.books[symbol] = _Book(market, self.rng, levels)
        self._trade_ids = itertools.count(100_000)
        self._delivery = Delivery(self.faults)
        self._connections = LiveConnections(
            path=config.WS_PATH,
            accept=_Conn,
            on_frame=self._on_message,
            delivery=self._delivery,
            client_frames=self.client_frames,
        )
        self._server = LoopbackServer(
            ws=self._connections.serve,
            http=self._http,
            host=host,
            port=port,
            # OKX counts requests, not WebSocket control frames
            message_limit=MessageLimit(max_messages_per_second, control_frames=False),
            on_violation=self.violations.append,
            refuse_upgrade=lambda: self.faults.take("refuse_connect"),
        )
        self.endpoints = Endpoints(ws_url="", rest_url="")

    # -- lifecycle ---------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[OkxSimulator]:
        async with serving(self._server, self._connections, _FAULT_FRAMES) as tg:
            server = self._server
            self.endpoints = Endpoints(ws_url=f"{server.ws_url}{config.WS_PATH}", rest_url=server.http_url)
            tg.start_soon(self._generate)
            logger.bind(venue=config.VENUE).info("OKX simulator on {}", self.endpoints.ws_url)
            yield self

    @property
    def silent(self) -> bool:
        """While True every frame is dropped instead of sent."""
        return self._delivery.silent

    @silent.setter
    def silent(self, value: bool) -> None:
        self._delivery.silent = value

    @property
    def connections_total(self) -> int:
        return self._connections.total

    # -- what tests look at ----------------------------------------------------------------------
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def truth(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        book = self.books.get(symbol)
        if book is None:
            return None
        bids, asks = book.sides()
        return book.seq, bids, asks

    def truth_top(self, symbol: str, depth: int) -> tuple[int | None, list[Level], list[Level]]:
        seq, bids, asks = self.truth(symbol)  # type: ignore[misc]
        return seq, bids[:depth], asks[:depth]

    def connections(self) -> int:
        return len(self._connections)

    def requests(self, op: str) -> list[dict]:
        """Decoded client requests of one op, in order."""
        return client_requests(self.client_frames, "op", op)

    # -- REST ---------------------------------------------------------------------------------------
    async def _http(self, path: str, query: dict[str, str]) -> HttpAnswer:
        status = self.faults.take_rest_error()
        if status is not None:
            return json_answer({"code": "50011", "msg": "Too Many Requests", "data": []}, status)
        if path != config.INSTRUMENTS_PATH:
            return json_answer({"code": "404", "msg": f"no such path {path}", "data": []}, 404)
        inst_type = query.get("instType", "")
        if inst_type not in config.INST_TYPES:
            return json_answer({"code": "51000", "msg": "Parameter instType error", "data": []}, 400)
        if inst_type == "OPTION" and not (query.get("instFamily") or query.get("uly")):
            return json_answer({"code": "51000", "msg": "Parameter instFamily error", "data": []}, 400)
        rows = [row for s in self._symbols if (row := self._row(s))["instType"] == inst_type]
        if inst_type == "OPTION":
            family = query.get("instFamily") or query.get("uly")
            rows = [row for row in rows if row["instFamily"] == family]
        return json_answer({"code": "0", "msg": "", "data": rows})

    def _row(self, symbol: str) -> dict[str, str]:
        parts = symbol.split("-")
        shape = self.books[symbol].market.shape
        lot, min_size = str(shape.lot), str(shape.min_size or shape.lot)
        row = {"instId": symbol, "tickSz": str(shape.tick), "lotSz": lot, "minSz": min_size, "state": "live"}
        row |= {"baseCcy": "", "quoteCcy": "", "instFamily": "", "uly": "", "settleCcy": "", "ctVal": ""}
        row |= {"ctType": "", "ctValCcy": "", "expTime": "", "stk": "", "optType": "", "alias": ""}
        family = f"{parts[0]}-{parts[1]}" if len(parts) > 1 else parts[0]
        inverse = len(parts) > 1 and parts[1] == "USD"
        derivative = {"instFamily": family, "uly": family, "settleCcy": parts[0] if inverse else parts[1]}
        derivative |= {"ctType": "inverse" if inverse else "linear", "ctVal": str(shape.contract_size)}
        if len(parts) == 2:
            return row | {"instType": "SPOT", "baseCcy": parts[0], "quoteCcy": parts[1]}
        if parts[2] == "SWAP":
            return row | {"instType": "SWAP"} | derivative
        expiry = dt.datetime.strptime(parts[2], "%y%m%d").replace(hour=8, tzinfo=dt.UTC)
        expiry_ms = str(int(expiry.timestamp() * 1000))
        if len(parts) == 3:
            return row | {"instType": "FUTURES", "expTime": expiry_ms, "alias": "quarter"} | derivative
        option = {"instType": "OPTION", "expTime": expiry_ms, "stk": parts[3], "optType": parts[4]}
        return row | derivative | option | {"ctType": "", "settleCcy": parts[0]}

    # -- WebSocket ---------------------------------------------------------------------------------
    def _error(self, conn: _Conn, code: str, msg: str) -> None:
        conn.send(_encode({"event": "error", "code": code, "msg": msg, "connId": conn.conn_id}))

    def _on_message(self, conn: _Conn, text: str) -> None:
        if text == config.PING_FRAME:
            self.pings += 1
            conn.send(config.PONG_FRAME)
            return
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            self._error(conn, config.INVALID_REQUEST, f"Invalid request: {text[:60]}")
            return
        op = req.get("op") if isinstance(req, dict) else None
        if op not in ("subscribe", "unsubscribe"):
            self._error(conn, config.INVALID_REQUEST, f"Invalid request: {text[:60]}")
            return
        if not self._within_limits(conn, op, text):
            return
        args = req.get("args")
        parsed: list[tuple[dict, str]] = []
        for arg in args if isinstance(args, list) and args else [None]:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            inst_id = arg.get("instId") if isinstance(arg, dict) else None
            if channel not in _CHANNELS or inst_id not in self.books:
                self._error(
                    conn, config.DOES_NOT_EXIST, f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist"
                )
                return
            parsed.append(({"channel": channel, "instId": inst_id}, channel_name(channel, inst_id)))
        if op == "subscribe" and self.faults.take("refuse_subscribe"):
            self._error(conn, config.INVALID_REQUEST, "Invalid request: subscription refused (fault)")
            return
        for arg, name in parsed:
            conn.send(_encode({"event": op, "arg": arg, "connId": conn.conn_id}))
            if op == "unsubscribe":
                conn.subs.discard(name)
                continue
            conn.subs.add(name)
            if arg["channel"] == config.BOOK_CHANNEL:
                conn.send(self._snapshot_frame(arg["instId"]))

    def _within_limits(self, conn: _Conn, op: str, text: str) -> bool:
        if len(text.encode()) > config.MAX_REQUEST_BYTES:
            self.violations.append(
                LimitViolation("request_bytes", f"{op} of {len(text.encode())} bytes on connection {conn.id}", False)
            )
            self._error(conn, config.INVALID_REQUEST, "Invalid request: request exceeds 64 KB")
            return False
        now = time.monotonic()
        while conn.requests and now - conn.requests[0] >= 3600.0:
            conn.requests.popleft()
        if len(conn.requests) >= self.requests_per_hour:
            self.violations.append(
                LimitViolation(
                    "requests_per_hour",
                    f"{op} #{len(conn.requests) + 1} within an hour on connection {conn.id}, "
                    f"limit {self.requests_per_hour}",
                    False,
                )
            )
            self._error(conn, config.TOO_FREQUENT, "Requests too frequent.")
            return False
        conn.requests.append(now)
        return True

    # -- publishing ----------------------------------------------------------------------------------
    def _checksum(self, symbol: str) -> int:
        if not self.checksums:
            return 0
        bids, asks = self.books[symbol].sides()
        value = CHECKSUM.compute(bids[: CHECKSUM.depth], asks[: CHECKSUM.depth])
        if self.faults.take("corrupt_checksum"):
            value = value + 1 if value < 2**31 - 1 else value - 1
        return value

    @staticmethod
    def _wire(levels: list[Level]) -> list[list[str]]:
        return [[p, s, "0", "1" if s != "0" else "0"] for p, s in levels]

    def _snapshot_frame(self, symbol: str) -> str:
        book = self.books[symbol]
        bids, asks = book.sides()
        data = {
            "asks": self._wire(asks[: config.BOOK_DEPTH]),
            "bids": self._wire(bids[: config.BOOK_DEPTH]),
            "ts": _now_ms(),
            "checksum": self._checksum(symbol),
            "prevSeqId": -1,
            "seqId": book.seq,
        }
        arg = {"channel": config.BOOK_CHANNEL, "instId": symbol}
        return _encode({"arg": arg, "action": "snapshot", "data": [data]})

    def _update_frame(self, symbol: str, prev: int, seq: int, bids: list[Level], asks: list[Level]) -> str:
        data = {
            "asks": self._wire(asks),
            "bids": self._wire(bids),
            "ts": _now_ms(),
            "checksum": self._checksum(symbol),
            "prevSeqId": prev,
            "seqId": seq,
        }
        return _encode({"arg": {"channel": config.BOOK_CHANNEL, "instId": symbol}, "action": "update", "data": [data]})

    def _subscribers(self, channel: str, symbol: str) -> list[_Conn]:
        name = channel_name(channel, symbol)
        return [conn for conn in self._connections if name in conn.subs]

    def _publish_change(self, symbol: str) -> None:
        book = self.books[symbol]
        prev, seq, bids, asks = book.step()
        if seq == prev:
            return
        if self.on_update is not None:
            self.on_update(symbol, seq)
        conns = self._subscribers(config.BOOK_CHANNEL, symbol)
        if conns and not self.faults.take("gap"):
            frame = self._update_frame(symbol, prev, seq, bids, asks)
            repeat = 2 if self.faults.take("duplicate") else 1
            for conn in conns:
                for _ in range(repeat):
                    conn.send(frame)
        top_conns = self._subscribers(config.TOP_CHANNEL, symbol)
        if top_conns:
            all_bids, all_asks = book.sides()
            bbo = {
                "asks": self._wire(all_asks[:1]),
                "bids": self._wire(all_bids[:1]),
                "ts": _now_ms(),
                "seqId": seq,
            }
            frame = _encode({"arg": {"channel": config.TOP_CHANNEL, "instId": symbol}, "data": [bbo]})
            for conn in top_conns:
                conn.send(frame)
        trade_conns = self._subscribers(config.TRADES_CHANNEL, symbol)
        if trade_conns and self.rng.random() < 0.2:
            buy = self.rng.random() < 0.5
            all_bids, all_asks = book.sides()
            price, available = (all_asks if buy else all_bids)[0]
            size = book.market.trade_size(at_most=Decimal(available))
            trade = {
                "instId": symbol,
                "tradeId": str(next(self._trade_ids)),
                "px": price,
                "sz": _Book._text(size),
                "side": "buy" if buy else "sell",
                "ts": _now_ms(),
                "count": "1",
            }
            frame = _encode({"arg": {"channel": config.TRADES_CHANNEL, "instId": symbol}, "data": [trade]})
            for conn in trade_conns:
                conn.send(frame)

    def _publish_quiet(self) -> None:
        """A no-change update per subscribed book (``seqId == prevSeqId``), as OKX sends
        when a book has been quiet for a while."""
        for symbol, book in self.books.items():
            conns = self._subscribers(config.BOOK_CHANNEL, symbol)
            if conns:
                frame = self._update_frame(symbol, book.seq, book.seq, [], [])
                for conn in conns:
                    conn.send(frame)

    async def _generate(self) -> None:
        quiet_at = time.monotonic() + self.quiet_interval
        while True:
            await anyio.sleep(self.update_interval)
            if self._delivery.stalled():
                continue
            if self.paused:
                if time.monotonic() >= quiet_at:
                    quiet_at = time.monotonic() + self.quiet_interval
                    self._publish_quiet()
                continue
            for symbol in self._symbols:
                self._publish_change(symbol)
