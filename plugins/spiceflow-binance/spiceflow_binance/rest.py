"""Binance REST: reference data (``exchangeInfo``) and depth snapshots, with the
REQUEST_WEIGHT budget respected.

The core :class:`~spiceflow_core.plugin.rest.RestClient` already serialises calls and honours
``429``/``418`` + ``Retry-After``. On top, every depth call here first takes its weight
from a per-client :class:`WeightBudget` (a one-minute sliding window kept below a safety
fraction of the limit), so many symbols resyncing at once queue up instead of
exhausting the budget and drawing a 418 ban. The ``X-MBX-USED-WEIGHT-1M`` header of
every answer (read from :meth:`RestClient.get`'s response) re-aligns the budget with the
server's count.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from typing import TYPE_CHECKING

import anyio
import msgspec
from loguru import logger

from spiceflow_core.model import BookSnapshot, Instrument, Kind

from . import schemas
from .config import MarketSpec

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.plugin import RestApi, RestResponse


class InstrumentError(KeyError):
    """An unknown or non-trading symbol was asked for; the message names it."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


# -- reference data ------------------------------------------------------------


def _filter(info: schemas.SymbolInfo, kind: str) -> schemas.Filter | None:
    for f in info.filters:
        if f.filterType == kind:
            return f
    return None


def _contract_size(value: int | float | None) -> str:
    if value is None:
        return "1"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def map_symbol(spec: MarketSpec, info: schemas.SymbolInfo) -> Instrument:
    price = _filter(info, "PRICE_FILTER")
    lot = _filter(info, "LOT_SIZE")
    status = info.status if info.status is not None else info.contractStatus
    kind: Kind = "spot"
    expiry = None
    if spec.futures:
        if info.contractType in ("PERPETUAL", "PERPETUAL_DELIVERING", "", None):
            # "" is a contract being set up or delisted (USD-M PENDING_TRADING); its
            # deliveryDate is Binance's far-future placeholder, like perpetuals'
            kind = "perpetual"
        else:  # CURRENT_QUARTER, NEXT_QUARTER, CURRENT_MONTH, ...
            kind = "future"
            expiry = info.deliveryDate
    return Instrument(
        venue=spec.venue,
        symbol=info.symbol,
        kind=kind,
        base=info.baseAsset,
        quote=info.quoteAsset,
        settle=(info.marginAsset or "") if spec.futures else "",
        tick_size=price.tickSize if price is not None and price.tickSize else "0",
        lot_size=lot.stepSize if lot is not None and lot.stepSize else "0",
        min_size=lot.minQty if lot is not None and lot.minQty else "",
        exchange="binance",
        market=spec.market,
        inverse=spec.market == "coinm",
        contract_size=_contract_size(info.contractSize) if spec.market == "coinm" else "1",
        expiry_ms=expiry,
        active=status == "TRADING",
    )


def decode_exchange_info(body: bytes) -> schemas.ExchangeInfo:
    try:
        return schemas.exchange_info_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a Binance exchangeInfo body: {exc}") from None


def parse_exchange_info(spec: MarketSpec, body: bytes) -> list[Instrument]:
    return [map_symbol(spec, s) for s in decode_exchange_info(body).symbols]


def weight_limit(info: schemas.ExchangeInfo) -> int | None:
    for rl in info.rateLimits:
        if rl.rateLimitType == "REQUEST_WEIGHT" and rl.interval == "MINUTE" and rl.intervalNum == 1:
            return rl.limit
    return None


async def fetch_instruments(spec: MarketSpec, rest: RestApi) -> list[Instrument]:
    response = await rest.get(spec.exchange_info_path)
    info = decode_exchange_info(response.body)
    budget = budget_for(rest, spec)
    limit = weight_limit(info)
    if limit:
        budget.limit = limit
    budget.observe(response)
    return [map_symbol(spec, s) for s in info.symbols]


def resolve(instruments: list[Instrument] | dict[str, Instrument], symbol: str) -> Instrument:
    """The subscribable instrument named ``symbol`` (case-insensitive), or a clear error."""
    by_symbol = instruments if isinstance(instruments, dict) else {i.symbol: i for i in instruments}
    instrument = by_symbol.get(symbol) or by_symbol.get(symbol.upper())
    if instrument is None:
        venue = next(iter(by_symbol.values())).venue if by_symbol else "binance"
        raise InstrumentError(f"{venue}: unknown symbol {symbol!r} (not in exchangeInfo)")
    if not instrument.active:
        raise InstrumentError(
            f"{instrument.venue}: symbol {instrument.symbol!r} is not trading (halted or not listed yet)"
        )
    return instrument


# -- weight budget ------------------------------------------------------------------


class WeightBudget:
    """REQUEST_WEIGHT spent in the last minute, kept under ``safety * limit``."""

    def __init__(self, limit: int, safety: float = 0.8, window: float = 60.0) -> None:
        self.limit = limit
        self.safety = safety
        self.window = window
        self._spent: deque[tuple[float, int]] = deque()
        self._lock = anyio.Lock()
        self.server_used: int | None = None  # last X-MBX-USED-WEIGHT-1M seen
        self.waited = 0.0

    def used(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        while self._spent and self._spent[0][0] <= now - self.window:
            self._spent.popleft()
        ours = sum(w for _, w in self._spent)
        return max(ours, self.server_used or 0)

    async def acquire(self, weight: int) -> None:
        async with self._lock:  # FIFO-ish: one waiter at a time keeps the queue ordered
            while True:
                now = time.monotonic()
                if self.used(now) + weight <= self.limit * self.safety or not self._spent:
                    self._spent.append((now, weight))
                    return
                pause = max(0.05, self._spent[0][0] + self.window - now)
                logger.warning("binance weight budget {}/{} used, waiting {:.1f}s", self.used(now), self.limit, pause)
                self.waited += pause
                self.server_used = None  # the server's count decays too; re-read it next answer
                await anyio.sleep(pause)

    def observe(self, response: RestResponse) -> None:
        value = response.header("X-MBX-USED-WEIGHT-1M") or response.header("X-MBX-USED-WEIGHT")
        if value is not None:
            try:
                self.server_used = int(value)
            except ValueError:
                pass


_budgets: weakref.WeakKeyDictionary[object, WeightBudget] = weakref.WeakKeyDictionary()


def budget_for(rest: RestApi, spec: MarketSpec) -> WeightBudget:
    budget = _budgets.get(rest)
    if budget is None:
        budget = _budgets[rest] = WeightBudget(spec.weight_per_minute)
    return budget


# -- snapshots ----------------------------------------------------------------------


async def fetch_snapshot(spec: MarketSpec, rest: RestApi, instrument: Instrument, depth: int) -> BookSnapshot:
    limit = spec.valid_depth(depth)
    budget = budget_for(rest, spec)
    await budget.acquire(spec.depth_weight(limit))
    response = await rest.get(spec.depth_path, {"symbol": instrument.symbol, "limit": limit})
    budget.observe(response)
    return decode_snapshot(spec.venue, instrument.symbol, response.body, limit)


def decode_snapshot(venue: str, symbol: str, body: bytes, limit: int | None) -> BookSnapshot:
    try:
        snap = schemas.snapshot_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{venue}: bad depth snapshot for {symbol}: {exc}") from None
    return BookSnapshot(
        venue=venue,
        symbol=symbol,
        sequence=snap.lastUpdateId,
        bids=snap.bids,
        asks=snap.asks,
        exchange_ts_ms=snap.E,
        recv_ts_ns=time.time_ns(),
        depth_limit=limit,
    )
