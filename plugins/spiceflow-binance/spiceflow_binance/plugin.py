"""The pluggy hook: three venues (spot, USD-M, COIN-M) sharing one implementation."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from spiceflow_core.plugin import (
    BookSnapshot,
    Feed,
    Instrument,
    RestApi,
    SequencePolicy,
    Simulator,
    Venue,
    hookimpl,
)

from . import rest as _rest
from .config import COINM, DEPTH_CHANNEL, SPOT, TOP_CHANNEL, TRADE_CHANNEL, USDM, MarketSpec
from .session import BinanceSession
from .sync import FUTURES_POLICY, SPOT_POLICY

FIXTURES = Path(__file__).parent / "fixtures"


class BinanceVenue(Venue):
    spec: ClassVar[MarketSpec]
    exchange: ClassVar[str] = "binance"
    resync = "rest"
    snapshot_depth: ClassVar[int] = 1000

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.spec
        cls.name = spec.venue
        cls.display_name = spec.display_name
        cls.default_endpoints = spec.endpoints
        cls.max_streams_per_connection = spec.max_streams_per_connection
        cls.max_messages_per_second = spec.max_messages_per_second
        cls.capture_prefixes = (spec.capture_prefix,)
        # replace connections before Binance cuts them at 24 h (reconnects keep the
        # books: the update ids continue, so no resync is needed when nothing was missed)
        cls.max_connection_age = BinanceSession.max_lifetime_s
        cls.default_instruments = ("BTCUSD_PERP", "ETHUSD_PERP") if spec.market == "coinm" else ("BTCUSDT", "ETHUSDT")

    # -- reference data -----------------------------------------------------------
    async def fetch_instruments(self, rest: RestApi) -> list[Instrument]:
        return await _rest.fetch_instruments(self.spec, rest)

    def parse_instruments(self, files: dict[str, bytes]) -> list[Instrument]:
        body = files.get(self.spec.fixture_file)
        if body is None:
            names = ", ".join(sorted(files)) or "no files"
            raise FileNotFoundError(f"{self.name}: fixture {self.spec.fixture_file} missing (found: {names})")
        return _rest.parse_exchange_info(self.spec, body)

    def fixtures_dir(self) -> Path | None:
        return FIXTURES

    # -- streams ------------------------------------------------------------------
    def channels(self, instrument: Instrument, feed: Feed) -> list[str]:
        s = instrument.symbol.lower()
        if feed == "book":
            return [f"{s}@{DEPTH_CHANNEL}"]
        if feed == "trades":
            return [f"{s}@{TRADE_CHANNEL[self.spec.market]}"]
        if feed == "top":
            return [f"{s}@{TOP_CHANNEL}"]
        raise ValueError(f"{self.name}: unknown feed {feed!r}")

    def new_session(self) -> BinanceSession:
        return BinanceSession(self.name)

    def sequence_policy(self, instrument: Instrument) -> SequencePolicy:
        return FUTURES_POLICY if self.spec.futures else SPOT_POLICY

    async def fetch_snapshot(self, rest: RestApi, instrument: Instrument, depth: int) -> BookSnapshot:
        return await _rest.fetch_snapshot(self.spec, rest, instrument, depth)

    def parse_snapshot(self, url: str, body: bytes, recv_ts_ns: int) -> BookSnapshot | None:
        """A recorded ``depth?symbol=..&limit=..`` answer of this market (replay)."""
        parts = urlsplit(url)
        if not parts.path.endswith(self.spec.depth_path):
            return None
        query = parse_qs(parts.query)
        symbol = (query.get("symbol") or [""])[0]
        if not symbol:
            return None
        limit = int(query["limit"][0]) if query.get("limit") else None
        snapshot = _rest.decode_snapshot(self.name, symbol, body, limit)
        snapshot.recv_ts_ns = recv_ts_ns
        return snapshot

    # -- simulator ----------------------------------------------------------------
    def simulator(
        self, *, recording: str | None = None, port: int = 0, **options: Any
    ) -> contextlib.AbstractAsyncContextManager[Simulator]:
        from .simulator import BinanceSimulator  # websockets server code only when used

        return BinanceSimulator(self.spec, recording=recording, port=port, **options)


class BinanceSpot(BinanceVenue):
    spec = SPOT


class BinanceUsdm(BinanceVenue):
    spec = USDM


class BinanceCoinm(BinanceVenue):
    spec = COINM


@hookimpl
def spiceflow_venues() -> list[Venue]:
    return [BinanceSpot(), BinanceUsdm(), BinanceCoinm()]


__all__ = ["BinanceCoinm", "BinanceSpot", "BinanceUsdm", "BinanceVenue", "spiceflow_venues"]
