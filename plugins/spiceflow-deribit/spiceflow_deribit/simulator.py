"""A loopback Deribit: JSON-RPC 2.0 over a real WebSocket at ``/ws/api/v2`` and
``public/get_instruments`` over HTTP at ``/api/v2``.

Protocol as on the live exchange:
- ``public/set_heartbeat`` (interval >= 10 s) starts ``heartbeat`` notifications of
  type ``test_request`` every interval; a test_request not answered by ``public/test``
  before the next one closes the connection. Every test_request and the delay of its
  answer is recorded in ``heartbeats`` so tests can assert on them.
- ``public/subscribe`` / ``public/unsubscribe`` answer with the channel list; unknown
  instruments or channel shapes are JSON-RPC errors (-32602); a credit bucket (3000
  credits per request, 30000 max, 10000/s refill) answers ``10028 too_many_requests``.
  Deribit's rate-limits article says it then terminates the session;
  ``close_on_rate_limit=True`` does that too (close 1008), by default the connection
  stays open so a client's retry can be watched. Every refused request is a
  :class:`~spiceflow_core.testkit.server.LimitViolation` in ``violations`` (with
  ``disconnected`` set when the connection was closed for it; those are also in
  ``limit_disconnects``), so a test can assert none. WebSocket ping/pong frames cost
  nothing: Deribit's limits count API requests, not frames.
  ``raw`` channels need ``public/auth`` first (any non-empty client credentials, or the
  ones given to the simulator).
- Book channels: the first notification is a ``snapshot``, then ``change`` notifications
  chained by ``prev_change_id``. ``100ms`` and ``raw`` carry the same notifications here
  (the simulator's updates are already ~100 ms apart).

Drivers:
- ``recording="/work/shared/recorded/DERIBIT"``: the recorded ``subscription``
  notifications are replayed in timestamp order (``speed`` times faster), starting at the
  first subscribe. The recording subscribed to ``.raw`` channels; a client subscribed to
  ``book.X.100ms`` gets the same data under its own channel name. A client that subscribes
  after an instrument's recorded snapshot gets a snapshot built from the book so far.
  The replay ends with the recording (heartbeats go on). REST serves the recorded
  ``get_instruments`` answers.
- generator (default): ``instruments=N`` (or a list of names) endless, consistent books
  (never crossed) with tickers derived from the book and occasional trades; REST serves
  matching reference data whose expiries lie in the future. Tick sizes, minimum amounts
  and contract sizes are the packaged fixtures' (``fixtures/get_instruments.*.json``) for
  the named instrument, else for its currency and kind; books start at the currency's
  reference price (options: a small premium in the coin), amounts in USD for the inverse
  futures and in the coin for options and USDC-margined perpetuals, from
  ``spiceflow_core.testkit.market``; ``seed`` makes them the same every run.

Fault switches (``sim.faults``) are consumed at the next opportunity: ``drop`` (clean
close), ``reset`` (TCP abort), ``stall`` (seconds of silence, heartbeats included),
``gap`` (one book change is not sent), ``duplicate`` (one change sent twice), ``reorder``
(a stale change before the snapshot on the next (re)subscribe), ``malformed`` (a frame
that is not JSON), ``unknown_shape`` (valid JSON of no known shape), ``refuse_subscribe``
(the next subscribe answered with a JSON-RPC error), ``skip_heartbeats`` (the next
test_request is not sent), ``rest_errors`` (HTTP statuses for the next REST answers),
``slow`` (seconds between frames). For the chaos suite also: ``oversized`` (one frame of
``oversized_bytes``), ``binary`` (one binary frame), ``bad_size`` (the next book change
is sent with a negative or non-numeric amount instead of the real one),
``ignore_heartbeat_answers`` (the next ``public/test`` answer is ignored, so the
connection is closed at the next test_request) and ``rest_faults`` ("timeout",
"invalid_json").

``on_update`` (a callable ``(symbol, change_id)``) is called after every book change is
applied to the truth, before it is sent: the chaos suite keeps the truth per change_id
with it (``truth_top``) to judge every published book, not only the last one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import random
import re
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
from spiceflow_core.recording.capture import read_capture
from spiceflow_core.testkit import FaultSwitches, HttpAnswer, LoopbackServer, json_answer
from spiceflow_core.testkit.client_requests import client_requests
from spiceflow_core.testkit.connection_faults import FaultFrames
from spiceflow_core.testkit.connections import Delivery, LiveConnections, QueuedConnection
from spiceflow_core.testkit.lifecycle import RunsInContext
from spiceflow_core.testkit.market import BookGenerator, InstrumentShape, default_tick, instrument_rng, usd_price
from spiceflow_core.testkit.server import LimitViolation
from spiceflow_core.testkit.serving import serving

from . import config, schemas
from .parsing import format_decimal
from .rest import instrument_name_date

_CHANNEL = re.compile(r"^(?P<kind>book|ticker|trades)\.(?P<symbol>[A-Za-z0-9_\-]+)\.(?P<interval>100ms|raw|agg2)$")
_FAULT_FRAMES = FaultFrames(
    malformed='{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.',
    unknown_shape='{"jsonrpc":"2.0","surprise":{"nobody":"expects"}}',
    binary=b"\x00\x01binary\xff",
    oversized=lambda pad: '{"jsonrpc":"2.0","method":"subscription","params":{"pad":"' + pad + '"}}',
)
_FIXTURES = Path(__file__).parent / "fixtures"
_PERPETUAL_EXPIRY_MS = 32503708800000  # what Deribit answers for a perpetual (year 3000)

_encode = schemas.encoder.encode


def _frame(obj: dict) -> str:
    return _encode(obj).decode()


def _notification(channel: str, data: Any) -> str:
    if isinstance(data, msgspec.Raw):  # recorded data: forwarded byte for byte
        channel_json, data_json = _encode(channel).decode(), bytes(data).decode()
        return f'{{"jsonrpc":"2.0","method":"subscription","params":{{"channel":{channel_json},"data":{data_json}}}}}'
    return _frame({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}})


def _response(request_id: Any, result: Any = None, error: tuple[int, str, Any] | None = None) -> str:
    us = int(time.time() * 1_000_000)
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        code, message, data = error
        body["error"] = {"code": code, "message": message, **({"data": data} if data is not None else {})}
    else:
        body["result"] = result
    body.update(usIn=us, usOut=us, usDiff=0, testnet=False)
    return _frame(body)


@dataclass
class HeartbeatRecord:
    """One ``test_request`` sent on connection ``conn_id`` and when it was answered."""

    conn_id: int
    sent_at: float
    answered_at: float | None = None

    @property
    def delay(self) -> float | None:
        return None if self.answered_at is None else self.answered_at - self.sent_at


class _Book:
    """The exchange's book of one instrument (Decimal price -> Decimal amount)."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.change_id: int | None = None
        self.timestamp = 0
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, data: schemas.BookData) -> None:
        if data.type == "snapshot":
            self.bids.clear()
            self.asks.clear()
        for side, entries in ((self.bids, data.bids), (self.asks, data.asks)):
            for action, price, amount in entries:
                if action == "delete":
                    side.pop(price, None)
                else:
                    side[price] = amount
        self.change_id = data.change_id
        self.timestamp = data.timestamp

    def snapshot(self) -> dict:
        return {
            "type": "snapshot",
            "timestamp": self.timestamp,
            "instrument_name": self.symbol,
            "change_id": self.change_id,
            "bids": [["new", p, self.bids[p]] for p in sorted(self.bids, reverse=True)],
            "asks": [["new", p, self.asks[p]] for p in sorted(self.asks)],
        }

    def stale_change(self) -> dict:
        """A change the snapshot already contains (for the ``reorder`` fault)."""
        assert self.change_id is not None
        return {
            "type": "change",
            "timestamp": self.timestamp,
            "instrument_name": self.symbol,
            "prev_change_id": self.change_id - 1,
            "change_id": self.change_id,
            "bids": [],
            "asks": [],
        }

    def top(self) -> tuple[tuple[Decimal, Decimal] | None, tuple[Decimal, Decimal] | None]:
        bid = max(self.bids) if self.bids else None
        ask = min(self.asks) if self.asks else None
        return (
            (bid, self.bids[bid]) if bid is not None else None,
            (ask, self.asks[ask]) if ask is not None else None,
        )

    def levels(self) -> tuple[list[Level], list[Level]]:
        bids = [(format_decimal(p), format_decimal(self.bids[p])) for p in sorted(self.bids, reverse=True)]
        asks = [(format_decimal(p), format_decimal(self.asks[p])) for p in sorted(self.asks)]
        return bids, asks


class _Conn(QueuedConnection):
    def __init__(self, conn_id: int, ws: ServerConnection, max_credits: float) -> None:
        super().__init__(conn_id, ws)
        #: channel name -> (kind, symbol)
        self.subs: dict[str, tuple[str, str]] = {}
        self.need_snapshot: set[str] = set()
        self.credits = max_credits
        self.credits_at = time.monotonic()
        self.authorized = False
        self.heartbeat_interval: float | None = None
        self.pending_test: HeartbeatRecord | None = None


@dataclass
class _GenInstrument:
    symbol: str
    kind: str  # perpetual | future | option
    base: str
    tick: Decimal
    lot: Decimal  # min_trade_amount: the step of amounts
    expiry_ms: int
    strike: Decimal | None = None
    option_type: str | None = None
    settlement_period: str = "perpetual"
    #: USD for the inverse futures, USDC for the linear perpetuals, the coin for options
    quote: str = "USD"
    contract_size: Decimal = Decimal(10)
    #: prices and amounts (set when the simulator seeds the book)
    market: BookGenerator | None = None
    mid: Decimal = Decimal(0)

    def shape(self) -> InstrumentShape:
        kind: Literal["perpetual", "future", "option"] = (
            "option" if self.kind == "option" else "perpetual" if self.kind == "perpetual" else "future"
        )
        option_type: Literal["call", "put"] | None = None
        if self.option_type in ("call", "put"):
            option_type = "call" if self.option_type == "call" else "put"
        # inverse futures trade an amount in USD; options and USDC perpetuals in the coin
        size_currency = "USD" if kind != "option" and self.quote == "USD" else None
        return InstrumentShape(
            self.symbol,
            self.base,
            self.quote,
            self.tick,
            self.lot,
            kind,
            size_currency=size_currency,
            strike=self.strike,
            option_type=option_type,
        )


@dataclass(frozen=True)
class _FixtureSpec:
    """Tick, amount step, contract size and quote currency of a fixture instrument."""

    tick: Decimal
    lot: Decimal
    contract_size: Decimal
    quote: str


@functools.cache
def _fixture_specs() -> dict[str, _FixtureSpec]:
    """Instrument name -> its reference data in the packaged fixtures, plus one entry per
    (currency, kind) under ``"<BASE>:<kind>"`` for instruments the fixtures do not name."""
    out: dict[str, _FixtureSpec] = {}
    for path in sorted(_FIXTURES.glob("get_instruments.*.json")):
        for entry in msgspec.json.decode(path.read_bytes(), type=_RawResult).result:
            info = msgspec.json.decode(entry, type=dict)
            spec = _FixtureSpec(
                Decimal(str(info["tick_size"])),
                Decimal(str(info["min_trade_amount"])),
                Decimal(str(info.get("contract_size", 1))),
                str(info.get("quote_currency", "USD")),
            )
            name = str(info["instrument_name"])
            kind = "option" if info["kind"] == "option" else "perpetual" if name.endswith("PERPETUAL") else "future"
            out[name] = spec
            out.setdefault(f"{name.split('-')[0]}:{kind}", spec)
    return out


@dataclass
class _RecordedEvent:
    ts: float
    kind: str  # book | ticker | trades
    symbol: str
    data: msgspec.Raw
    book: schemas.BookData | None = None


class DeribitSimulator(RunsInContext):
    """``async with DeribitSimulator(instruments=3) as sim: sim.endpoints``"""

    def __init__(
        self,
        *,
        recording: str | None = None,
        instruments: int | list[str] = 3,
        port: int = 0,
        host: str = "127.0.0.1",
        speed: float = 1.0,
        update_interval: float = 0.1,
        heartbeat_interval: float | None = None,
        credentials: tuple[str, str] | None = None,
        subscribe_cost: float = config.SUBSCRIBE_COST,
        max_credits: float = config.SUBSCRIBE_MAX_CREDITS,
        refill_per_second: float = config.SUBSCRIBE_REFILL_PER_SECOND,
        close_on_rate_limit: bool = False,
        require_auth_for_raw: bool = True,
        seed: int | None = None,
        levels: int = 10,
    ) -> None:
        self.recording = recording
        self.speed = speed
        self.update_interval = update_interval
        self.heartbeat_override = heartbeat_interval
        self.credentials = credentials
        self.subscribe_cost = subscribe_cost
        self.max_credits = max_credits
        self.refill_per_second = refill_per_second
        self.close_on_rate_limit = close_on_rate_limit
        self.require_auth_for_raw = require_auth_for_raw
        self.levels = levels
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = FaultSwitches()
        self.client_frames: list[str] = []
        self.heartbeats: list[HeartbeatRecord] = []
        self.closed_for_heartbeat: list[int] = []
        self.rate_limited = 0
        #: every documented limit a client crossed (see the module docstring)
        self.violations: list[LimitViolation] = []
        self.notifications_sent = 0
        self.replay_done = anyio.Event()
        #: True stops the driver (no new book changes) so tests can compare with truth
        self.paused = False
        #: called with (symbol, change_id) after each book change hits the truth
        self.on_update = None
        self._bad_sizes = 0
        self._books: dict[str, _Book] = {}
        self._delivery = Delivery(self.faults)
        self._connections = LiveConnections(
            path=config.WS_PATH,
            accept=lambda conn_id, ws: _Conn(conn_id, ws, self.max_credits),
            on_frame=self._on_request,
            delivery=self._delivery,
            client_frames=self.client_frames,
            companions=[self._heartbeat],
        )
        self._first_subscribe = anyio.Event()
        self._server = LoopbackServer(ws=self._connections.serve, http=self._http, host=host, port=port)
        self._trade_ids = itertools.count(1)
        self._rest_bodies: dict[str, bytes] = {}
        self._gen: list[_GenInstrument] = []
        self._events: list[_RecordedEvent] = []
        if recording is not None:
            self._load_recording(recording)
        else:
            self._gen = self._generate_instruments(instruments)
            for inst in self._gen:
                self._books[inst.symbol] = _Book(inst.symbol)
                self._seed_book(inst)
        self.endpoints = Endpoints(ws_url="", rest_url="")

    # -- lifecycle ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[DeribitSimulator]:
        async with serving(self._server, self._connections, _FAULT_FRAMES) as tg:
            server = self._server
            self.endpoints = Endpoints(
                ws_url=f"{server.ws_url}{config.WS_PATH}", rest_url=f"{server.http_url}{config.REST_PATH}"
            )
            tg.start_soon(self._replay if self.recording is not None else self._generate)
            logger.bind(venue=config.VENUE).info("Deribit simulator on {}", self.endpoints.ws_url)
            yield self

    @property
    def connections_total(self) -> int:
        return self._connections.total

    # -- what tests look at -----------------------------------------------------------------
    def symbols(self) -> list[str]:
        return list(self._books)

    def truth(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        book = self._books.get(symbol)
        if book is None or book.change_id is None:
            return None
        bids, asks = book.levels()
        return book.change_id, bids, asks

    def truth_top(self, symbol: str, depth: int) -> tuple[int | None, list[Level], list[Level]]:
        """The best ``depth`` levels per side of the truth, and its change_id."""
        book = self._books[symbol]
        bids = [(format_decimal(p), format_decimal(book.bids[p])) for p in sorted(book.bids, reverse=True)[:depth]]
        asks = [(format_decimal(p), format_decimal(book.asks[p])) for p in sorted(book.asks)[:depth]]
        return book.change_id, bids, asks

    def connections(self) -> int:
        return len(self._connections)

    @property
    def limit_disconnects(self) -> list[LimitViolation]:
        """The connections closed because a client crossed a limit."""
        return [v for v in self.violations if v.disconnected]

    def requests(self, method: str) -> list[dict]:
        """Decoded client requests of one method, in order."""
        return client_requests(self.client_frames, "method", method)

    # -- REST ---------------------------------------------------------------------------------
    async def _http(self, path: str, query: dict[str, str]) -> HttpAnswer:
        fault = self.faults.take_rest_fault()
        # decided on arrival: a request held by a timeout fault must not consume an error
        # armed after its client gave up
        status = None if fault else self.faults.take_rest_error()
        if fault == "timeout":
            await anyio.sleep(self.faults.rest_timeout_s)
        elif fault == "invalid_json":
            return HttpAnswer(
                200, b'{"jsonrpc":"2.0","result":[{"instrument_name":', {"Content-Type": "application/json"}
            )
        if status is not None:
            return json_answer({"jsonrpc": "2.0", "error": {"code": 10028, "message": "too_many_requests"}}, status)
        if path != f"{config.REST_PATH}/public/get_instruments":
            return json_answer({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}}, 400)
        currency = query.get("currency", "")
        kind = query.get("kind")
        entries = self._instrument_entries(currency)
        if entries is None:
            return json_answer(
                {
                    "jsonrpc": "2.0",
                    "error": {"code": -32602, "message": "Invalid params", "data": {"param": "currency"}},
                },
                400,
            )
        if kind:
            entries = [e for e in entries if msgspec.json.decode(e, type=dict).get("kind") == kind]
        body = b'{"jsonrpc":"2.0","result":[' + b",".join(bytes(e) for e in entries) + b"]}"
        return json_answer(body)

    def _instrument_entries(self, currency: str) -> list[msgspec.Raw] | None:
        if self.recording is not None:
            bodies = self._rest_bodies
            if currency == "any":
                return [e for body in bodies.values() for e in self._entries_of(body)]
            if currency not in bodies:
                # a currency Deribit knows but the recording did not fetch: empty answer
                return [] if currency in ("BTC", "ETH", "SOL", "USDC", "USDT") else None
            return self._entries_of(bodies[currency])
        known = {g.base for g in self._gen} | {"BTC", "ETH", "USDC", "USDT"}
        if currency != "any" and currency not in known:
            return None
        return [msgspec.Raw(_encode(self._gen_info(g))) for g in self._gen if currency == "any" or g.base == currency]

    @staticmethod
    def _entries_of(body: bytes) -> list[msgspec.Raw]:
        return msgspec.json.decode(body, type=_RawResult).result

    @staticmethod
    def _gen_info(g: _GenInstrument) -> dict:
        linear = g.kind != "option" and g.quote != "USD"  # USDC-margined: amounts and settlement in USDC
        info: dict[str, Any] = {
            "instrument_name": g.symbol,
            "kind": "option" if g.kind == "option" else "future",
            "base_currency": g.base,
            "quote_currency": g.quote,
            "counter_currency": g.quote if linear else "USD",
            "settlement_currency": g.quote if linear else g.base,
            "tick_size": g.tick,
            "min_trade_amount": g.lot,
            "contract_size": g.contract_size,
            "expiration_timestamp": g.expiry_ms,
            "settlement_period": g.settlement_period,
            "is_active": True,
            "instrument_type": "linear" if linear else "reversed",
        }
        if g.kind == "option":
            info.update(strike=g.strike, option_type=g.option_type)
        return info

    # -- WebSocket ---------------------------------------------------------------------------
    async def _heartbeat(self, conn: _Conn) -> None:
        while conn.heartbeat_interval is None:
            await anyio.sleep(0.01)
        while True:
            await anyio.sleep(conn.heartbeat_interval)
            if self._delivery.stalled():
                continue  # a stalled server sends nothing, and waits for nothing
            pending = conn.pending_test
            if pending is not None and pending.answered_at is None:
                # Deribit closes a connection whose test_request went unanswered
                self.closed_for_heartbeat.append(conn.id)
                logger.bind(venue=config.VENUE).warning("sim: test_request unanswered on connection {}", conn.id)
                conn.close(1000, "heartbeat test_request not answered")
                return
            if self.faults.take("skip_heartbeats"):
                conn.pending_test = None
                continue
            record = HeartbeatRecord(conn.id, time.monotonic())
            conn.pending_test = record
            self.heartbeats.append(record)
            conn.send('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}')

    def _on_request(self, conn: _Conn, text: str) -> None:
        try:
            req = msgspec.json.decode(text)
        except msgspec.DecodeError:
            conn.send(_response(None, error=(-32700, "Parse error", None)))
            return
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            conn.send(
                _response(req.get("id") if isinstance(req, dict) else None, error=(-32600, "Invalid Request", None))
            )
            return
        rid = req.get("id")
        method = req["method"]
        params = req.get("params") or {}
        if method == "public/test":
            if (
                conn.pending_test is not None
                and conn.pending_test.answered_at is None
                and self.faults.take("ignore_heartbeat_answers")
            ):
                conn.send(_response(rid, {"version": "1.2.26"}))
                return  # answered on the wire, but the server "lost" it
            if conn.pending_test is not None and conn.pending_test.answered_at is None:
                conn.pending_test.answered_at = time.monotonic()
            conn.send(_response(rid, {"version": "1.2.26"}))
        elif method == "public/set_heartbeat":
            interval = params.get("interval")
            if not isinstance(interval, (int, float)) or interval < config.MIN_HEARTBEAT_INTERVAL:
                conn.send(
                    _response(rid, error=(-32602, "Invalid params", {"param": "interval", "reason": "must be >= 10"}))
                )
                return
            conn.heartbeat_interval = self.heartbeat_override or float(interval)
            conn.send(_response(rid, "ok"))
        elif method == "public/disable_heartbeat":
            conn.heartbeat_interval = None
            conn.send(_response(rid, "ok"))
        elif method == "public/auth":
            ok = (
                params.get("grant_type") == "client_credentials"
                and params.get("client_id")
                and params.get("client_secret")
            )
            if ok and self.credentials is not None:
                ok = (params.get("client_id"), params.get("client_secret")) == self.credentials
            if not ok:
                conn.send(_response(rid, error=(13004, "invalid_credentials", None)))
                return
            conn.authorized = True
            conn.send(
                _response(
                    rid,
                    {
                        "access_token": f"sim-token-{conn.id}",
                        "refresh_token": f"sim-refresh-{conn.id}",
                        "expires_in": 900,
                        "scope": "connection mainaccount",
                        "token_type": "bearer",
                    },
                )
            )
        elif method in ("public/subscribe", "public/unsubscribe", "private/subscribe", "private/unsubscribe"):
            self._on_subscription(conn, rid, method, params)
        else:
            conn.send(_response(rid, error=(-32601, "Method not found", None)))

    def _take_credits(self, conn: _Conn) -> bool:
        now = time.monotonic()
        conn.credits = min(self.max_credits, conn.credits + (now - conn.credits_at) * self.refill_per_second)
        conn.credits_at = now
        if conn.credits < self.subscribe_cost:
            return False
        conn.credits -= self.subscribe_cost
        return True

    def _on_subscription(self, conn: _Conn, rid: Any, method: str, params: dict) -> None:
        if not self._take_credits(conn):
            self.rate_limited += 1
            self.violations.append(
                LimitViolation(
                    "subscribe_credits",
                    f"{method} on connection {conn.id} with {conn.credits:.0f} credits left,"
                    f" {self.subscribe_cost:g} needed",
                    disconnected=self.close_on_rate_limit,
                )
            )
            refusal = _response(rid, error=(config.TOO_MANY_REQUESTS, "too_many_requests", None))
            if self.close_on_rate_limit:
                conn.send_and_close(refusal, 1008, "too_many_requests")
            else:
                conn.send(refusal)
            return
        channels = params.get("channels")
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            conn.send(
                _response(rid, error=(-32602, "Invalid params", {"param": "channels", "reason": "must be a list"}))
            )
            return
        if method.endswith("unsubscribe"):
            removed = [c for c in channels if conn.subs.pop(c, None) is not None]
            conn.need_snapshot.difference_update(channels)
            conn.send(_response(rid, removed))
            return
        if method.endswith("subscribe") and self.faults.take("refuse_subscribe"):
            conn.send(_response(rid, error=(11050, "bad_request", {"reason": "subscription refused (fault)"})))
            return
        parsed = []
        for channel in channels:
            m = _CHANNEL.match(channel)
            if m is None or m["symbol"] not in self._books:
                conn.send(
                    _response(
                        rid,
                        error=(-32602, "Invalid params", {"param": "channels", "reason": f"invalid channel {channel}"}),
                    )
                )
                return
            if m["interval"] == "raw" and self.require_auth_for_raw and not conn.authorized:
                conn.send(
                    _response(
                        rid, error=(13021, "not_permitted", {"reason": f"{channel} needs an authorised connection"})
                    )
                )
                return
            parsed.append((channel, m["kind"], m["symbol"]))
        conn.send(_response(rid, [c for c, _, _ in parsed]))
        for channel, kind, symbol in parsed:
            fresh = channel not in conn.subs
            conn.subs[channel] = (kind, symbol)
            if kind == "book" and fresh:
                book = self._books[symbol]
                if book.change_id is None:
                    conn.need_snapshot.add(channel)  # the first recorded snapshot will do
                else:
                    if self.faults.take("reorder"):
                        conn.send(_notification(channel, book.stale_change()))
                    conn.send(_notification(channel, book.snapshot()))
        self._first_subscribe.set()

    # -- publishing -------------------------------------------------------------------------------
    def _subscribers(self, kind: str, symbol: str) -> list[tuple[_Conn, str]]:
        return [
            (conn, channel)
            for conn in self._connections
            for channel, (k, s) in conn.subs.items()
            if k == kind and s == symbol
        ]

    def _publish_book(self, symbol: str, data: dict | msgspec.Raw, parsed: schemas.BookData) -> None:
        book = self._books[symbol]
        book.apply(parsed)
        if self.on_update is not None:
            self.on_update(symbol, book.change_id)
        if parsed.type == "change" and self.faults.take("gap"):
            return  # this change_id is never sent: the next change will not chain
        if parsed.type == "change" and isinstance(data, dict) and self.faults.take("bad_size"):
            # the real change is replaced by a broken copy: a negative amount (decodes,
            # the book rejects it) or a string amount (the frame does not decode)
            self._bad_sizes += 1
            side = "bids" if data["bids"] else "asks"
            entries = list(data[side])
            price = entries[0][1] if entries else Decimal(1)
            entries.append(["change", price, Decimal(-3) if self._bad_sizes % 2 else "abc"])
            data = {**data, side: entries}
        repeat = 2 if parsed.type == "change" and self.faults.take("duplicate") else 1
        for conn, channel in self._subscribers("book", symbol):
            if channel in conn.need_snapshot:
                conn.need_snapshot.discard(channel)
                conn.send(_notification(channel, data if parsed.type == "snapshot" else book.snapshot()))
                continue
            for _ in range(repeat):
                conn.send(_notification(channel, data))
            self.notifications_sent += 1

    def _publish(self, kind: str, symbol: str, data: dict | list | msgspec.Raw) -> None:
        for conn, channel in self._subscribers(kind, symbol):
            conn.send(_notification(channel, data))
            self.notifications_sent += 1

    # -- driver (a): the recorded session -------------------------------------------------------
    def _load_recording(self, prefix: str) -> None:
        for rec in read_capture(prefix):
            if rec.kind == "rest" and "get_instruments" in rec.url:
                m = re.search(r"currency=(\w+)", rec.url)
                if m:
                    self._rest_bodies[m[1]] = rec.body.encode()
            elif rec.kind == "recv":
                env = schemas.envelope_decoder.decode(rec.body)
                if env.method != "subscription" or not env.params:
                    continue
                params = schemas.subscription_decoder.decode(env.params)
                m = _CHANNEL.match(params.channel)
                if m is None:
                    continue
                book = schemas.book_decoder.decode(params.data) if m["kind"] == "book" else None
                self._events.append(_RecordedEvent(rec.ts, m["kind"], m["symbol"], params.data, book))
                self._books.setdefault(m["symbol"], _Book(m["symbol"]))

    async def _replay(self) -> None:
        await self._first_subscribe.wait()
        if not self._events:
            self.replay_done.set()
            return
        t0 = self._events[0].ts
        start = time.monotonic()
        for event in self._events:
            due = start + (event.ts - t0) / self.speed
            now = time.monotonic()
            if due > now:
                await anyio.sleep(due - now)
            while self.paused or self._delivery.stalled():
                await anyio.sleep(0.01)
            if event.book is not None:
                self._publish_book(event.symbol, event.data, event.book)
            else:
                self._publish(event.kind, event.symbol, event.data)
        self.replay_done.set()

    # -- driver (b): the generator ----------------------------------------------------------------
    def _generate_instruments(self, spec: int | list[str]) -> list[_GenInstrument]:
        today = dt.datetime.now(dt.UTC).date()
        friday = today + dt.timedelta(days=(4 - today.weekday()) % 7 or 7)
        expiry_ms = int(dt.datetime.combine(friday, dt.time(8), tzinfo=dt.UTC).timestamp() * 1000)
        code = instrument_name_date(friday)
        if isinstance(spec, int):
            names = ["BTC-PERPETUAL", "ETH-PERPETUAL", f"BTC-{code}", f"ETH-{code}"][:spec]
            # options around the money: strikes from the reference price up, calls and puts
            atm = int(usd_price("BTC") / 1000) * 1000
            strikes = itertools.count(atm, 1000)
            while len(names) < spec:
                strike = next(strikes)
                names += [f"BTC-{code}-{strike}-C", f"BTC-{code}-{strike}-P"][: spec - len(names)]
        else:
            names = list(spec)
        return [self._instrument(name, expiry_ms) for name in names]

    @staticmethod
    def _instrument(name: str, expiry_ms: int) -> _GenInstrument:
        """One generated instrument with the fixtures' reference data for its name, else
        for its currency and kind, else Deribit's BTC values."""
        base = name.split("-")[0].split("_")[0]
        fixtures = _fixture_specs()
        if name.endswith(("-C", "-P")):
            kind = "option"
        elif name.endswith("PERPETUAL"):
            kind = "perpetual"
        else:
            kind = "future"
        fallback = {
            "option": _FixtureSpec(Decimal("0.0005"), Decimal("0.1"), Decimal(1), base),
            "perpetual": _FixtureSpec(Decimal("0.5"), Decimal("10"), Decimal("10"), "USD"),
            "future": _FixtureSpec(Decimal("2.5"), Decimal("10"), Decimal("10"), "USD"),
        }[kind]
        ref = fixtures.get(name) or fixtures.get(f"{name.split('-')[0]}:{kind}") or fallback
        tick = ref.tick
        if ref is fallback and base != "BTC" and kind != "option":  # a currency the fixtures lack
            tick = default_tick(usd_price(base))
        g = _GenInstrument(name, kind, base, tick, ref.lot, expiry_ms, quote=ref.quote, contract_size=ref.contract_size)
        if kind == "perpetual":
            g.expiry_ms = _PERPETUAL_EXPIRY_MS
        else:
            g.settlement_period = "week"
        if kind == "option":
            g.strike = Decimal(name.split("-")[2])
            g.option_type = "call" if name.endswith("C") else "put"
        return g

    def _amount(self, g: _GenInstrument) -> Decimal:
        assert g.market is not None
        return g.market.size()

    def _seed_book(self, g: _GenInstrument) -> None:
        g.market = BookGenerator(g.shape(), instrument_rng(self.seed, config.VENUE, g.symbol))
        g.mid = g.market.mid
        bid_levels, ask_levels = g.market.initial_levels(self.levels)
        bids = [["new", g.market.price(ticks), size] for ticks, size in bid_levels]
        asks = [["new", g.market.price(ticks), size] for ticks, size in ask_levels]
        cid = 1_000_000 + len(self._books) * 1000
        data = {
            "type": "snapshot",
            "timestamp": int(time.time() * 1000),
            "instrument_name": g.symbol,
            "change_id": cid,
            "bids": bids,
            "asks": asks,
        }
        self._books[g.symbol].apply(msgspec.convert(data, schemas.BookData))

    def _next_change(self, g: _GenInstrument) -> dict:
        book = self._books[g.symbol]
        (bb, _), (ba, _) = book.top()  # type: ignore[misc]  # the generator's books are never empty
        bids: list = []
        asks: list = []
        assert g.market is not None
        for _ in range(self.rng.randint(1, 3)):
            op = self.rng.random()
            if op < 0.4 or op >= 0.75:
                # a new level (improving when it lands inside the spread) or a deleted one
                # (retreating): the side leans towards the walked fair value
                up = g.market.prefer_bid(int(bb / g.tick), int(ba / g.tick))
                is_bid = up if op < 0.4 else not up
            else:
                is_bid = self.rng.random() < 0.5
            side, entries, other = (book.bids, bids, ba) if is_bid else (book.asks, asks, bb)
            touched = {e[1] for e in entries}
            existing = [p for p in side if p not in touched]
            if op < 0.4 or len(existing) <= 3:
                # a new level: inside the spread when there is room, else behind the book
                best = max(side) if is_bid else min(side)
                step = self.rng.randint(-1, 5) * g.tick
                price = best - step if is_bid else best + step
                if (
                    price <= 0
                    or (is_bid and price >= other)
                    or (not is_bid and price <= other)
                    or price in side
                    or price in touched
                ):
                    continue
                entries.append(["new", price, self._amount(g)])
                side_price = price
            elif op < 0.75:
                side_price = self.rng.choice(existing)
                entries.append(["change", side_price, self._amount(g)])
            else:
                side_price = self.rng.choice(existing)
                entries.append(["delete", side_price, Decimal(0)])
            # keep the view of the other side's best current for the next entry
            if is_bid and entries[-1][0] == "new":
                bb = max(bb, side_price)
            elif not is_bid and entries[-1][0] == "new":
                ba = min(ba, side_price)
        prev = book.change_id or 0
        return {
            "type": "change",
            "timestamp": int(time.time() * 1000),
            "instrument_name": g.symbol,
            "prev_change_id": prev,
            "change_id": prev + self.rng.randint(1, 3),
            "bids": bids,
            "asks": asks,
        }

    def _ticker(self, g: _GenInstrument, timestamp: int) -> dict:
        bid, ask = self._books[g.symbol].top()
        zero = Decimal("0.0")
        index = self._index_price(g)
        return {
            "timestamp": timestamp,
            "instrument_name": g.symbol,
            "state": "open",
            "best_bid_price": bid[0] if bid else zero,
            "best_bid_amount": bid[1] if bid else zero,
            "best_ask_price": ask[0] if ask else zero,
            "best_ask_amount": ask[1] if ask else zero,
            "mark_price": g.mid,
            "index_price": index,
            "last_price": g.mid,
            "open_interest": Decimal(0),
            "stats": {"volume": Decimal(0), "price_change": Decimal(0), "low": g.mid, "high": g.mid},
        }

    @staticmethod
    def _index_price(g: _GenInstrument) -> Decimal:
        """Deribit's index of the currency (USD), what its tickers and trades carry."""
        return usd_price(g.base).quantize(Decimal("0.01"))

    @staticmethod
    def _trade_amount(g: _GenInstrument, available: Decimal) -> Decimal:
        assert g.market is not None
        return g.market.trade_size(at_most=available)

    async def _generate(self) -> None:
        while True:
            await anyio.sleep(self.update_interval)
            if self.paused or self._delivery.stalled():
                continue
            for g in self._gen:
                change = self._next_change(g)
                if not change["bids"] and not change["asks"]:
                    continue
                self._publish_book(g.symbol, change, msgspec.convert(change, schemas.BookData))
                self._publish("ticker", g.symbol, self._ticker(g, change["timestamp"]))
                if self.rng.random() < 0.2:
                    bid, ask = self._books[g.symbol].top()
                    buy = self.rng.random() < 0.5
                    level = ask if buy else bid
                    if level is not None:
                        n = next(self._trade_ids)
                        self._publish(
                            "trades",
                            g.symbol,
                            [
                                {
                                    "trade_id": f"SIM-{n}",
                                    "trade_seq": n,
                                    "instrument_name": g.symbol,
                                    "price": level[0],
                                    "amount": self._trade_amount(g, level[1]),
                                    "direction": "buy" if buy else "sell",
                                    "timestamp": change["timestamp"],
                                    "tick_direction": 0,
                                    "index_price": self._index_price(g),
                                }
                            ],
                        )


class _RawResult(msgspec.Struct):
    result: list[msgspec.Raw]
