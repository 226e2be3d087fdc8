"""A loopback Binance that speaks the real protocol, for tests, the demo profile and
``spiceflow simulate``.

- WebSocket ``/stream`` (combined streams): streams from the URL (``?streams=a/b``) and
  from ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` requests, answered like
  Binance (``{"result": null, "id": N}``; errors ``{"error": {"code", "msg"}, "id": N}``);
  only subscribed streams are sent.
- Binance's market-stream limits per connection: more than ``spec.max_messages_per_second``
  incoming messages in any one second (5 spot, 10 futures), WebSocket PING and PONG
  frames counted like JSON requests, closes the connection with 1008 "Too many
  requests"; a ``SUBSCRIBE`` beyond ``spec.max_streams_per_connection`` (1024 spot, 200
  futures) is refused, a URL asking for more closes the connection. Every breach is a
  :class:`~spiceflow_core.testkit.server.LimitViolation` in ``violations`` (those that
  closed the connection also in ``limit_disconnects``), so a test can assert none.
- REST ``/api/v3|fapi/v1|dapi/v1`` ``exchangeInfo`` and ``depth?symbol=&limit=``, the
  depth answered from the simulator's truth at the moment of the request (its
  ``lastUpdateId`` is the last update id sent), with ``X-MBX-USED-WEIGHT-1M``.

Two drivers feed it:

- a recording (``recording="/.../BINANCE"``): the recorded frames in timestamp order,
  as fast as the clients take them (``speed=None``) or at ``speed`` x recorded time;
  the replay starts with the first subscription (``start="subscribe"``) so a client
  sees the session from its beginning. Until the replay reaches a symbol's recorded
  REST snapshot, depth requests get that recorded snapshot; afterwards the truth.
- a generator (default): an endless consistent diff-depth stream for ``symbols`` (a
  count or names) at ``rate`` depth frames per second in total, 1,000 levels a side,
  a few level changes per frame, with ``bookTicker`` and trades derived from the truth.
  Books start at the asset's reference price on the symbol's tick grid with sizes in
  its lot (COIN-M: in contracts), from ``spiceflow_core.testkit.market``; the side a
  level improves or retreats on leans towards that module's walked fair value.

Soak knobs: ``weight_limit`` sets the REQUEST_WEIGHT/min the served exchangeInfo
announces; ``burst`` (seconds) sends the generator's updates in bursts instead of evenly
spaced (``benchmarks/soak.py``).

``sim.paused = True`` holds the driver before its next update (``truth`` stays what
the clients were sent) until it is set back to False.

Fault switches (``sim.faults``): drop, reset, stall, gap (a depth update applied to the
truth but never sent), malformed, duplicate, reorder, unknown_shape, rest_errors
(429 + Retry-After, 418 + Retry-After, 5xx), slow, refuse_subscribe; for the chaos
suite also oversized (a frame of ``oversized_bytes``), binary, bad_size (the next depth
update sent with a negative or non-numeric size instead of the real one), stale_snapshot
(the next depth answer is the previous one served for that symbol: older than anything
the client buffers) and rest_faults ("timeout": answer after ``rest_timeout_s``;
"invalid_json": a 200 whose body is not JSON).

``on_update`` (a callable ``(symbol, sequence)``) is called after every generated update
is applied to the truth, before it is sent: the chaos suite keeps the truth per sequence
with it (``truth_top``) to judge every published book, not only the last one.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import anyio
import msgspec
from loguru import logger
from sortedcontainers import SortedDict
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from spiceflow_core.model import Level
from spiceflow_core.plugin.contract import Endpoints
from spiceflow_core.recording.capture import read_capture
from spiceflow_core.testkit import FaultSwitches, LoopbackServer, json_answer
from spiceflow_core.testkit.lifecycle import RunsInContext
from spiceflow_core.testkit.market import BookGenerator, InstrumentShape, Kind, instrument_rng
from spiceflow_core.testkit.server import HttpAnswer, LimitViolation, MessageLimit

from . import schemas
from .config import BY_PATH, COINM, SPOT, USDM, MarketSpec

FIXTURES = Path(__file__).parent / "fixtures"
_STREAM_RE = re.compile(r"^[a-z0-9_\-]+@[A-Za-z0-9_@]+$")
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
#: quote assets a generated symbol's name may end with (``SIM0USDT``)
_QUOTES = ("USDT", "BUSD", "USDC", "USD", "BTC", "ETH", "BNB", "EUR")


def _error(code: int, msg: str, request_id: object) -> str:
    return json.dumps({"error": {"code": code, "msg": msg}, "id": request_id}, separators=(",", ":"))


# -- a book with exact decimal strings -----------------------------------------------


class Book:
    """The exchange's book for one symbol: price string -> size string, sorted exactly."""

    def __init__(self, sequence: int = 0) -> None:
        self.sequence = sequence
        self.bids: SortedDict = SortedDict(lambda k: -k)  # Decimal key -> (price, size)
        self.asks: SortedDict = SortedDict()

    @classmethod
    def from_levels(cls, sequence: int, bids: list[Level], asks: list[Level]) -> Book:
        book = cls(sequence)
        book.apply(bids, asks)
        return book

    def apply(self, bids: list[Level], asks: list[Level]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                key = Decimal(price)
                if Decimal(size) == 0:
                    side.pop(key, None)
                else:
                    side[key] = (price, size)

    def levels(self, limit: int | None = None) -> tuple[list[Level], list[Level]]:
        bids = [v for _, v in (self.bids.items() if limit is None else self.bids.items()[:limit])]
        asks = [v for _, v in (self.asks.items() if limit is None else self.asks.items()[:limit])]
        return bids, asks


# -- generator ----------------------------------------------------------------------------


@dataclass
class _GenSymbol:
    symbol: str
    tick: Decimal
    lot: Decimal
    book: Book
    market: BookGenerator  # prices and sizes
    next_id: int
    trade_id: int = 1
    pending_trade: tuple[str, str, bool] | None = None


def _fmt(value: Decimal, step: Decimal) -> str:
    exp = step.as_tuple().exponent  # as many places as the exchange's own tick string
    places = max(0, -int(exp)) if isinstance(exp, int) else 0
    return f"{value:.{places}f}"


class Generator:
    """Endless, self-consistent diff-depth streams (plus bookTicker and trades)."""

    def __init__(self, spec: MarketSpec, symbols: list[InstrumentShape], *, levels: int = 1000, seed: int = 7) -> None:
        self.spec = spec
        self.rng = random.Random(seed)
        self.seed = seed
        self.levels = levels
        self.symbols: dict[str, _GenSymbol] = {}
        for shape in symbols:
            self.add(shape)

    def add(self, shape: InstrumentShape) -> _GenSymbol:
        """Start generating one more symbol (also on demand, when a client subscribes)."""
        t, step = shape.tick, shape.lot
        market = BookGenerator(shape, instrument_rng(self.seed, self.spec.market, shape.symbol))
        start_id = 1_000_000 * (len(self.symbols) + 1) + self.rng.randint(0, 1000)
        g = _GenSymbol(shape.symbol, t, step, Book(start_id), market, start_id + 1)
        bid_levels, ask_levels = market.initial_levels(self.levels)
        bids = [(_fmt(market.price(k), t), _fmt(size, step)) for k, size in bid_levels]
        asks = [(_fmt(market.price(k), t), _fmt(size, step)) for k, size in ask_levels]
        g.book.apply(bids, asks)
        self.symbols[shape.symbol] = g
        return g

    def _size(self, g: _GenSymbol) -> str:
        return _fmt(g.market.size(), g.lot)

    def step(self, symbol: str) -> tuple[dict, dict, dict | None]:
        """One depth event (applied to the truth), the bookTicker after it, maybe a trade."""
        g = self.symbols[symbol]
        book, rng = g.book, self.rng
        bids: dict[str, str] = {}
        asks: dict[str, str] = {}
        trade = None

        def put(on_bid: bool, price: str, size: str) -> None:
            # applied at once, so every later choice of this step sees the new book
            (bids if on_bid else asks)[price] = size
            book.apply([(price, size)], []) if on_bid else book.apply([], [(price, size)])

        if g.pending_trade is not None:  # the trade of the previous step eats its level
            price, size, on_bid = g.pending_trade
            side = book.bids if on_bid else book.asks
            key = Decimal(price)
            if key in side:
                left = Decimal(side[key][1]) - Decimal(size)
                put(on_bid, price, _fmt(max(left, Decimal(0)), g.lot))
            g.pending_trade = None
        for _ in range(rng.randint(1, 4)):
            best_bid = int(book.bids.keys()[0] / g.tick)
            best_ask = int(book.asks.keys()[0] / g.tick)
            r = rng.random()
            if r < 0.55:
                on_bid = rng.random() < 0.5
            else:  # the book leans towards the walked fair value: up = bids improve, asks retreat
                up = g.market.prefer_bid(best_bid, best_ask)
                on_bid = up if r >= 0.75 else not up
            side = book.bids if on_bid else book.asks
            if r < 0.55:  # change the size of a level near the top
                k = min(int(rng.expovariate(0.2)), len(side) - 1)
                put(on_bid, side.values()[k][0], self._size(g))
            elif r < 0.75:  # remove a level near the top, refill the far end
                if len(side) > 2:
                    k = min(int(rng.expovariate(0.3)), len(side) - 1)
                    far = int(side.keys()[-1] / g.tick) + (-1 if on_bid else 1)
                    put(on_bid, side.values()[k][0], _fmt(Decimal(0), g.lot))
                    if far > 0:
                        put(on_bid, _fmt(far * g.tick, g.tick), self._size(g))
            else:  # add a level inside the spread when there is room, else just behind
                if best_ask - best_bid > 1:
                    ticks = rng.randint(best_bid + 1, best_ask - 1)
                else:
                    ticks = (best_bid - rng.randint(1, 3)) if on_bid else (best_ask + rng.randint(1, 3))
                if ticks > 0:
                    put(on_bid, _fmt(ticks * g.tick, g.tick), self._size(g))
            for on, sd in ((True, book.bids), (False, book.asks)):
                while len(sd) > self.levels:  # keep ~1,000 levels a side: trim the far end
                    put(on, sd.values()[-1][0], _fmt(Decimal(0), g.lot))
        first = g.next_id
        count = rng.randint(1, 5)
        last = first + count - 1
        prev = book.sequence
        b_levels, a_levels = list(bids.items()), list(asks.items())
        self._uncross(g, book)
        book.sequence = last
        # futures ids are not contiguous (other books share the counter): leave holes
        g.next_id = last + 1 + (rng.randint(0, 50) if self.spec.futures else 0)
        now = int(time.time() * 1000)
        depth = {
            "e": "depthUpdate",
            "E": now,
            "s": symbol,
            "U": first,
            "u": last,
            "b": [list(x) for x in b_levels],
            "a": [list(x) for x in a_levels],
        }
        if self.spec.futures:
            depth = {
                "e": "depthUpdate",
                "E": now,
                "T": now,
                "s": symbol,
                "U": first,
                "u": last,
                "pu": prev,
                "b": depth["b"],
                "a": depth["a"],
            }
        bp, bq = book.bids.values()[0]
        ap, aq = book.asks.values()[0]
        ticker: dict = {"u": last, "s": symbol, "b": bp, "B": bq, "a": ap, "A": aq}
        if self.spec.futures:
            ticker = {"e": "bookTicker", **ticker, "T": now, "E": now}
        if rng.random() < 0.3:  # a trade against the top of one side
            on_bid = rng.random() < 0.5
            price, size = (bp, bq) if on_bid else (ap, aq)
            qty = _fmt(g.market.trade_size(at_most=Decimal(size)), g.lot)
            g.pending_trade = (price, qty, on_bid)
            tid, g.trade_id = g.trade_id, g.trade_id + 1
            if self.spec.futures:
                trade = {
                    "e": "aggTrade",
                    "E": now,
                    "a": tid,
                    "s": symbol,
                    "p": price,
                    "q": qty,
                    "f": tid,
                    "l": tid,
                    "T": now,
                    "m": on_bid,
                }
            else:
                trade = {"e": "trade", "E": now, "s": symbol, "t": tid, "p": price, "q": qty, "T": now, "m": on_bid}
        return depth, ticker, trade

    @staticmethod
    def _uncross(g: _GenSymbol, book: Book) -> None:
        # defensive: a generator bug must never leave the truth crossed
        if book.bids and book.asks and book.bids.keys()[0] >= book.asks.keys()[0]:
            raise AssertionError(f"generator crossed {g.symbol}: {book.bids.keys()[0]} >= {book.asks.keys()[0]}")


# -- recording ------------------------------------------------------------------------


@dataclass
class Recording:
    frames: list[tuple[float, str, str]]  # (ts, stream, text) server -> client
    snapshots: dict[str, tuple[float, bytes]]  # symbol -> (ts, body)
    exchange_info: bytes | None
    symbols: list[str]

    @classmethod
    def load(cls, prefix: str) -> Recording:
        frames: list[tuple[float, str, str]] = []
        snapshots: dict[str, tuple[float, bytes]] = {}
        exchange_info = None
        for rec in read_capture(prefix):
            if rec.kind == "rest" and "/depth" in rec.url:
                symbol = re.search(r"symbol=([A-Z0-9_]+)", rec.url)
                if symbol:
                    snapshots[symbol.group(1)] = (rec.ts, rec.body.encode())
            elif rec.kind == "rest" and "exchangeInfo" in rec.url:
                exchange_info = rec.body.encode()
            elif rec.kind == "recv":
                m = re.match(r'\{"stream":"([^"]+)"', rec.body)
                frames.append((rec.ts, m.group(1) if m else "", rec.body))
        symbols = sorted(snapshots) or sorted({s.split("@")[0].upper() for _, s, _ in frames if s})
        return cls(frames, snapshots, exchange_info, symbols)


# -- the server ---------------------------------------------------------------------------


@dataclass
class _Client:
    conn: ServerConnection
    streams: set[str] = field(default_factory=set)
    lock: anyio.Lock = field(default_factory=anyio.Lock)


class BinanceSimulator(RunsInContext):
    """``async with BinanceSimulator(SPOT) as sim: sim.endpoints.ws_url``"""

    def __init__(
        self,
        spec: MarketSpec = SPOT,
        *,
        recording: str | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        symbols: int | list[str] | None = None,
        rate: float = 50.0,
        speed: float | None = None,
        levels: int = 1000,
        seed: int = 7,
        start: str = "subscribe",
        max_requests_per_second: float | None = None,
        ping_interval: float | None = 20.0,
        weight_limit: int | None = None,
        burst: float = 0.0,
    ) -> None:
        self.spec = spec
        self.faults = FaultSwitches()
        self.client_frames: list[str] = []
        self.rest_requests: list[str] = []
        #: every documented limit a client crossed (see the module docstring)
        self.violations: list[LimitViolation] = []
        self.sent: dict[str, int] = {}  # frames sent per stream kind
        self.rate = rate
        #: generator pacing: run up to ``burst`` seconds ahead of the schedule before
        #: sleeping, so updates leave in bursts of ~``rate * burst`` frames (as Binance's
        #: ``@100ms`` streams arrive) instead of one per timer wake-up; 0 = evenly spaced
        self.burst = burst
        self.speed = speed
        self.start = start
        #: incoming messages per connection and second, pings and pongs included
        #: (default: the market's documented limit)
        self.max_requests_per_second = (
            spec.max_messages_per_second if max_requests_per_second is None else max_requests_per_second
        )
        self._host, self._port, self._ping_interval = host, port, ping_interval
        self._clients: list[_Client] = []
        self._subscribed = anyio.Event()
        self.finished = anyio.Event()  # a recording was served completely
        self._weights: deque[tuple[float, int]] = deque()
        self._held: dict[str, str] = {}  # reorder: symbol -> held depth frame
        self._served_depth: dict[str, bytes] = {}  # stale_snapshot: last depth body per symbol
        self._bad_sizes = 0
        #: called with (symbol, sequence) after each generated update hits the truth
        self.on_update = None
        #: True stops the driver (no new updates) so tests can compare with the truth
        self.paused = False
        self._exchange_info = {
            m.exchange_info_path: (FIXTURES / m.fixture_file).read_bytes() for m in (SPOT, USDM, COINM)
        }
        if weight_limit is not None:
            self._set_weight_limit(weight_limit)
        self._books: dict[str, Book] = {}
        self.recording: Recording | None = None
        self.generator: Generator | None = None
        self._seed, self._levels = seed, levels
        if recording is not None:
            self.recording = Recording.load(recording)
            if self.recording.exchange_info is not None:
                self._exchange_info[spec.exchange_info_path] = self.recording.exchange_info
            self._symbols = list(self.recording.symbols)
        else:
            self._symbols = self._pick_symbols(symbols)
        self.endpoints = Endpoints(ws_url="ws://{host}:{port}/stream", rest_url="http://{host}:{port}")
        self._server: LoopbackServer | None = None

    def _set_weight_limit(self, limit: int) -> None:
        """``weight_limit``: the REQUEST_WEIGHT per minute the served exchangeInfo
        announces (the fixture says 1,200; Binance spot says 6,000 today). Soak runs
        with hundreds of symbols use it: a reconnect can cost a snapshot per symbol."""
        path = self.spec.exchange_info_path
        info = json.loads(self._exchange_info[path])
        for rl in info.get("rateLimits", []):
            if (
                rl.get("rateLimitType") == "REQUEST_WEIGHT"
                and rl.get("interval") == "MINUTE"
                and rl.get("intervalNum") == 1
            ):
                rl["limit"] = int(limit)
        self._exchange_info[path] = json.dumps(info).encode()

    def _pick_symbols(self, symbols: int | list[str] | None) -> list[str]:
        info = schemas.exchange_info_decoder.decode(self._exchange_info[self.spec.exchange_info_path])
        trading = [s.symbol for s in info.symbols if (s.status or s.contractStatus) == "TRADING"]
        if isinstance(symbols, list):
            return symbols
        preferred = [s for s in ("BTCUSDT", "ETHUSDT", "BTCUSD_PERP", "ETHUSD_PERP") if s in trading]
        ordered = preferred + [s for s in trading if s not in preferred]
        n = 2 if symbols is None else int(symbols)
        if n <= len(ordered):
            return ordered[:n]
        return ordered + [f"SIM{i}USDT" for i in range(n - len(ordered))]

    # -- protocol surface ---------------------------------------------------------------
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def truth(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        book = self._books.get(symbol)
        if book is None:
            return None
        bids, asks = book.levels()
        return book.sequence, bids, asks

    def truth_top(self, symbol: str, depth: int) -> tuple[int, list[Level], list[Level]]:
        """The best ``depth`` levels per side of the truth, and its sequence (cheap)."""
        book = self._books[symbol]
        bids, asks = book.levels(depth)
        return book.sequence, bids, asks

    @property
    def limit_disconnects(self) -> list[LimitViolation]:
        """The connections closed because a client crossed a limit."""
        return [v for v in self.violations if v.disconnected]

    @property
    def client_messages(self) -> dict[str, int]:
        """Frames clients sent by kind (``text``, ``binary``, ``ping``, ``pong``)."""
        return dict(self._server.client_messages) if self._server is not None else {}

    # -- lifecycle ------------------------------------------------------------------------
    def _list_generated_symbols(self) -> None:
        """Generated symbols beyond the fixture's (``SIM0USDT`` ...) are added to the
        served exchangeInfo, cloned from a trading symbol, so a client can subscribe
        them like real ones."""
        path = self.spec.exchange_info_path
        info = json.loads(self._exchange_info[path])
        known = {s["symbol"] for s in info["symbols"]}
        missing = [s for s in self._symbols if s not in known]
        if not missing:
            return
        template = next(s for s in info["symbols"] if (s.get("status") or s.get("contractStatus")) == "TRADING")
        for name in missing:
            entry = json.loads(json.dumps(template))
            entry["symbol"] = name
            entry["baseAsset"] = name.removesuffix(entry.get("quoteAsset", "")) or name
            if "pair" in entry:
                entry["pair"] = name.split("_")[0]
            info["symbols"].append(entry)
        self._exchange_info[path] = json.dumps(info).encode()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[BinanceSimulator]:
        if self.recording is None:
            self._list_generated_symbols()
            shapes = self._shapes()
            self.generator = Generator(
                self.spec,
                [shapes.get(s) or self._shape(s, "0.01", "0.001") for s in self._symbols],
                levels=self._levels,
                seed=self._seed,
            )
            self._books = {s: g.book for s, g in self.generator.symbols.items()}
        self._server = LoopbackServer(
            ws=self._serve_ws,
            http=self._serve_http,
            host=self._host,
            port=self._port,
            ping_interval=self._ping_interval,
            max_size=2**22,
            message_limit=MessageLimit(self.max_requests_per_second),
            on_violation=self.violations.append,
        )
        async with self._server, anyio.create_task_group() as tg:
            self.endpoints = Endpoints(ws_url=self._server.ws_url + "/stream", rest_url=self._server.http_url)
            tg.start_soon(self._drive)
            yield self
            tg.cancel_scope.cancel()

    def _generate_on_demand(self, streams: list[str]) -> None:
        """Generator mode: a subscription to a listed symbol that is not generated yet
        starts it, so instruments can be added at runtime (demo + control API)."""
        if self.generator is None:
            return
        shapes = None
        for stream in streams:
            symbol = stream.partition("@")[0].upper()
            if symbol in self._books:
                continue
            shapes = shapes if shapes is not None else self._shapes()
            if symbol in shapes:
                self._books[symbol] = self.generator.add(shapes[symbol]).book
                self._symbols.append(symbol)

    def _shapes(self) -> dict[str, InstrumentShape]:
        """What the generator needs of each listed symbol: the served exchangeInfo's
        tick and lot, its assets, and (COIN-M) the USD value of a contract."""
        info = schemas.exchange_info_decoder.decode(self._exchange_info[self.spec.exchange_info_path])
        out = {}
        for s in info.symbols:
            price = next((f.tickSize for f in s.filters if f.filterType == "PRICE_FILTER"), None)
            lot = next((f.stepSize for f in s.filters if f.filterType == "LOT_SIZE"), None)
            if price and lot:
                out[s.symbol] = self._shape(s.symbol, price, lot, s)
        return out

    def _shape(self, symbol: str, tick: str, lot: str, info: schemas.SymbolInfo | None = None) -> InstrumentShape:
        base, quote = (info.baseAsset, info.quoteAsset) if info is not None else ("", "")
        if not symbol.startswith(base + quote):  # a generated symbol (cloned entry): read its name
            quote = next((q for q in _QUOTES if symbol.endswith(q) and symbol != q), "USDT")
            base = symbol.removesuffix(quote)
        if not self.spec.futures:
            return InstrumentShape(symbol, base, quote, Decimal(tick), Decimal(lot))
        kind: Kind = "perpetual" if info is None or info.contractType in (None, "", "PERPETUAL") else "future"
        if info is not None and info.contractSize:  # COIN-M: quantities are contracts worth contractSize USD
            size = Decimal(str(info.contractSize))
            return InstrumentShape(
                symbol, base, quote, Decimal(tick), Decimal(lot), kind, size_currency=quote, contract_size=size
            )
        return InstrumentShape(symbol, base, quote, Decimal(tick), Decimal(lot), kind)

    # -- WebSocket ------------------------------------------------------------------------
    async def _serve_ws(self, conn: ServerConnection) -> None:
        path = conn.request.path if conn.request is not None else "/"
        if not (path.startswith("/stream") or path.startswith("/ws")):
            await conn.close(1008, "unknown path")
            return
        client = _Client(conn)
        if "streams=" in path:
            client.streams.update(s for s in path.split("streams=", 1)[1].split("&")[0].split("/") if s)
            limit = self.spec.max_streams_per_connection
            if len(client.streams) > limit:
                # Binance documents the cap, not its answer; with no request to answer,
                # refusing the connection is the only signal
                self.violations.append(
                    LimitViolation(
                        "streams_per_connection", f"{len(client.streams)} streams in the URL, limit {limit}", True
                    )
                )
                await conn.close(1008, f"more than {limit} streams")
                return
            self._subscribed.set()
        self._clients.append(client)
        try:
            async for message in conn:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                self.client_frames.append(text)
                answer = self._answer(client, text)
                if answer is not None:
                    async with client.lock:
                        await conn.send(answer)
        except ConnectionClosed:
            pass
        finally:
            self._clients.remove(client)

    def _answer(self, client: _Client, text: str) -> str | None:
        try:
            request = json.loads(text)
        except ValueError as exc:
            return _error(3, f"Invalid JSON: {exc}", None)
        if not isinstance(request, dict):
            return _error(2, "Invalid request: request must be an object", None)
        request_id = request.get("id")
        if (request_id is not None and not isinstance(request_id, (int, str))) or isinstance(request_id, bool):
            return _error(2, "Invalid request: id must be an integer or a string", None)
        method = request.get("method")
        if method not in _METHODS:
            return _error(
                2, f"Invalid request: unknown variant `{method}`, expected one of {', '.join(_METHODS)}", request_id
            )
        params = request.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return _error(1, "Invalid value type: expected a list of stream names", request_id)
            bad = [p for p in params if not _STREAM_RE.match(p)]
            if bad:
                return _error(2, f"Invalid request: invalid stream name {bad[0]!r}", request_id)
            if method == "SUBSCRIBE":
                if self.faults.take("refuse_subscribe"):
                    return _error(2, "Invalid request: subscription refused (fault switch)", request_id)
                wanted = len(client.streams | set(params))
                if wanted > self.spec.max_streams_per_connection:
                    self.violations.append(
                        LimitViolation(
                            "streams_per_connection",
                            f"SUBSCRIBE to {wanted} streams, limit {self.spec.max_streams_per_connection}",
                            disconnected=False,
                        )
                    )
                    return _error(
                        2, f"Invalid request: more than {self.spec.max_streams_per_connection} streams", request_id
                    )
                self._generate_on_demand(params)
                client.streams.update(params)
                self._subscribed.set()
            else:
                client.streams.difference_update(params)
            return json.dumps({"result": None, "id": request_id}, separators=(",", ":"))
        if method == "LIST_SUBSCRIPTIONS":
            return json.dumps({"result": sorted(client.streams), "id": request_id}, separators=(",", ":"))
        if method == "GET_PROPERTY":
            return json.dumps({"result": False, "id": request_id}, separators=(",", ":"))
        return json.dumps({"result": None, "id": request_id}, separators=(",", ":"))

    # -- REST -----------------------------------------------------------------------------
    async def _serve_http(self, path: str, query: dict[str, str]) -> HttpAnswer:
        self.rest_requests.append(path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""))
        fault = self.faults.take_rest_fault()
        # Decided on arrival: a request held by a timeout fault is answered after its client
        # gave up, so it must not consume an error or a stale snapshot armed in the meantime.
        status = None if fault else self.faults.take_rest_error()
        if fault == "timeout":
            await anyio.sleep(self.faults.rest_timeout_s)
            self._count("rest_timeout")
        elif fault == "invalid_json":
            self._count("rest_invalid_json")
            return HttpAnswer(200, b'{"lastUpdateId": 12, "bids": [["1.0", ', {"Content-Type": "application/json"})
        if status is not None:
            return self._rest_error(status)
        spec = BY_PATH.get(path)
        if spec is None:
            return json_answer({"code": -1, "msg": f"unknown path {path}"}, 404)
        if path == spec.exchange_info_path:
            return self._weighted(json_answer(self._exchange_info[path]), 10 if not spec.futures else 1)
        symbol = query.get("symbol", "")
        try:
            limit = int(query.get("limit", "100"))
        except ValueError:
            return json_answer({"code": -1100, "msg": "Illegal characters found in parameter 'limit'."}, 400)
        if (spec.depth_limits is not None and limit not in spec.depth_limits) or not 1 <= limit <= spec.max_depth:
            return json_answer({"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}, 400)
        if symbol not in self._symbols:
            return json_answer({"code": -1121, "msg": "Invalid symbol."}, 400)
        body = self._depth_body(spec, symbol, limit)
        stale = fault is None and self.faults.stale_snapshot > 0 and symbol in self._served_depth
        if stale and self.faults.take("stale_snapshot"):
            self._count("stale_snapshot")
            body = self._served_depth[symbol]  # older than every delta sent since
        else:
            self._served_depth[symbol] = body
        return self._weighted(json_answer(body), spec.depth_weight(limit))

    def _depth_body(self, spec: MarketSpec, symbol: str, limit: int) -> bytes:
        book = self._books.get(symbol)
        if book is None and self.recording is not None:
            # the replay has not reached the recorded snapshot yet: answer it as recorded
            body = self.recording.snapshots.get(symbol, (0.0, b""))[1]
            if body:
                snap = schemas.snapshot_decoder.decode(body)
                return schemas.encoder.encode(
                    {**msgspec.structs.asdict(snap), "bids": snap.bids[:limit], "asks": snap.asks[:limit]}
                )
        if book is None:
            book = Book(0)
        bids, asks = book.levels(limit)
        answer: dict = {"lastUpdateId": book.sequence}
        if spec.futures:
            now = int(time.time() * 1000)
            answer.update(E=now, T=now)
        answer.update(bids=bids, asks=asks)
        return schemas.encoder.encode(answer)

    def _weighted(self, answer: HttpAnswer, weight: int) -> HttpAnswer:
        now = time.monotonic()
        self._weights.append((now, weight))
        while self._weights and self._weights[0][0] <= now - 60:
            self._weights.popleft()
        answer.headers["X-MBX-USED-WEIGHT-1M"] = str(sum(w for _, w in self._weights))
        return answer

    @staticmethod
    def _rest_error(status: int) -> HttpAnswer:
        if status == 429:
            return json_answer(
                {"code": -1003, "msg": "Too many requests; please use the websocket for live updates."},
                429,
                {"Retry-After": "1"},
            )
        if status == 418:
            return json_answer(
                {"code": -1003, "msg": "Way too many requests; IP banned until later."}, 418, {"Retry-After": "2"}
            )
        return json_answer({"code": -1000, "msg": "An unknown error occurred while processing the request."}, status)

    # -- driving ------------------------------------------------------------------------------
    async def _drive(self) -> None:
        if self.start == "subscribe":
            await self._subscribed.wait()
        if self.recording is not None:
            await self._replay(self.recording)
        else:
            await self._generate()

    async def _replay(self, rec: Recording) -> None:
        snapshot_points = sorted((ts, symbol) for symbol, (ts, _) in rec.snapshots.items())
        started = time.monotonic()
        first_ts = rec.frames[0][0] if rec.frames else 0.0
        for ts, stream, text in rec.frames:
            await self._pauses()
            while snapshot_points and snapshot_points[0][0] <= ts:
                _, symbol = snapshot_points.pop(0)
                snap = schemas.snapshot_decoder.decode(rec.snapshots[symbol][1])
                self._books[symbol] = Book.from_levels(snap.lastUpdateId, snap.bids, snap.asks)
            if self.speed:
                delay = (ts - first_ts) / self.speed - (time.monotonic() - started)
                if delay > 0:
                    await anyio.sleep(delay)
            await self._emit(stream, text)
        self.finished.set()
        logger.info("binance simulator: recording served ({} frames)", len(rec.frames))

    async def _generate(self) -> None:
        assert self.generator is not None
        gen = self.generator
        order = list(gen.symbols)
        i = 0
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        while True:
            await self._pauses()
            if len(order) != len(gen.symbols):  # symbols added on demand
                order = list(gen.symbols)
            symbol = order[i % len(order)]
            i += 1
            depth, ticker, trade = gen.step(symbol)
            if self.on_update is not None:
                self.on_update(symbol, depth["u"])
            low = symbol.lower()
            d_stream = f"{low}@depth@100ms"
            await self._emit(d_stream, _frame(d_stream, depth))
            # tickers and trades nobody subscribed are not encoded (a book-only client
            # at thousands of frames/s would pay for two JSON encodings per update)
            t_stream = f"{low}@bookTicker"
            if self._wanted(t_stream):
                await self._emit(t_stream, _frame(t_stream, ticker))
            if trade is not None:
                tr_stream = f"{low}@{trade['e']}"
                if self._wanted(tr_stream):
                    await self._emit(tr_stream, _frame(tr_stream, trade))
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > self.burst:
                    await anyio.sleep(delay)
                elif delay > 0:
                    pass  # within the burst window: the next update goes out back to back
                else:
                    next_at = time.monotonic()
                    await anyio.sleep(0)
            else:
                await anyio.sleep(0)

    def _wanted(self, stream: str) -> bool:
        return any(stream in c.streams for c in self._clients)

    async def _pauses(self) -> None:
        """stall / slow, taken before the next update exists, so ``truth`` during a
        stall is exactly what the clients were sent."""
        f = self.faults
        while self.paused:  # frozen by a test comparing with the truth
            await anyio.sleep(0.005)
        if f.stall > 0:
            stall, f.stall = f.stall, 0.0
            await anyio.sleep(stall)
        if f.slow > 0:
            await anyio.sleep(f.slow)

    async def _emit(self, stream: str, text: str) -> None:
        """Send one frame to every client subscribed to ``stream``; consume faults and
        keep the truth of recorded sessions (generated books are updated by the generator)."""
        f = self.faults
        if f.take("drop"):
            for c in list(self._clients):
                await c.conn.close(1001, "simulated drop")
        if f.take("reset"):
            for c in list(self._clients):
                c.conn.transport.abort()
        if f.take("malformed"):
            await self._broadcast(None, '{"stream":"' + stream + '","data":{"e":"depthUpd')
        if f.take("unknown_shape"):
            await self._broadcast(None, '{"foo":"bar","baz":[1,2,3]}')
        if f.take("oversized"):
            pad = "x" * max(0, f.oversized_bytes - len(stream) - 40)
            await self._broadcast(None, '{"stream":"' + stream + '","data":{"pad":"' + pad + '"}}')
        if f.take("binary"):
            await self._broadcast(None, b"\x00\x01binary\xff")
        is_depth = "@depth" in stream
        if is_depth and self.recording is not None:
            self._apply_recorded(text)
        if is_depth:
            symbol = stream.split("@", 1)[0]
            if symbol in self._held:  # reorder: the held frame goes out after this one
                held = self._held.pop(symbol)
                await self._broadcast(stream, text)
                await self._broadcast(stream, held)
                return
            if f.take("gap"):  # skip an update: the truth has it, the clients never will
                self._count("gap")
                return
            if f.take("reorder"):
                self._held[symbol] = text
                return
            if f.take("bad_size"):  # the real update is replaced by a broken copy
                self._bad_sizes += 1
                data = json.loads(text)
                bad = "-1.00000000" if self._bad_sizes % 2 else "abc"
                side = "b" if data["data"]["b"] else "a"
                data["data"][side] = data["data"][side] + [
                    [data["data"][side][0][0] if data["data"][side] else "1.00", bad]
                ]
                self._count("bad_size")
                await self._broadcast(stream, json.dumps(data, separators=(",", ":")))
                return
            if f.take("duplicate"):
                await self._broadcast(stream, text)
        await self._broadcast(stream, text)

    def _apply_recorded(self, text: str) -> None:
        data = json.loads(text)["data"]
        book = self._books.get(data["s"])
        if book is None:
            return
        u = data["u"]
        if self.spec.futures:
            if u < book.sequence:
                return
        elif u <= book.sequence:
            return
        book.apply([tuple(x) for x in data["b"]], [tuple(x) for x in data["a"]])
        book.sequence = u

    async def _broadcast(self, stream: str | None, text: str | bytes) -> None:
        kind = stream.split("@", 1)[1] if stream else "fault"
        for client in list(self._clients):
            if stream is not None and stream not in client.streams:
                continue
            try:
                async with client.lock:
                    await client.conn.send(text)
            except ConnectionClosed:
                continue
            self._count(kind)

    def _count(self, kind: str) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1


def _frame(stream: str, data: dict) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def iter_recording_frames(prefix: str) -> Iterator[str]:
    """Server -> client frames of a recording, in timestamp order (tests, benchmarks)."""
    for _, _, text in Recording.load(prefix).frames:
        yield text
