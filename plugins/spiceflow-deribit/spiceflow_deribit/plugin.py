"""The Deribit venue and its pluggy hook (entry point ``spiceflow.venues: deribit``)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from spiceflow_core.plugin import Endpoints, Feed, Instrument, RestApi, SequencePolicy, Simulator, Venue, hookimpl

from . import config, rest
from .session import DeribitSession
from .sync import POLICY

FIXTURES = Path(__file__).parent / "fixtures"
#: environment variable overriding the simulator's heartbeat interval (seconds)
SIM_HEARTBEAT_ENV = "SPICEFLOW_DERIBIT_SIM_HEARTBEAT"


class Deribit(Venue):
    name: ClassVar[str] = config.VENUE
    display_name: ClassVar[str] = "Deribit"
    exchange: ClassVar[str] = config.EXCHANGE
    default_endpoints: ClassVar[Endpoints] = config.LIVE
    resync = "resubscribe"
    max_streams_per_connection: ClassVar[int] = config.MAX_STREAMS_PER_CONNECTION
    max_messages_per_second: ClassVar[float] = config.MAX_MESSAGES_PER_SECOND
    #: the credit pool charges subscribe/unsubscribe; answers to test_request are free
    rate_limit_counts = "requests"
    default_instruments: ClassVar[tuple[str, ...]] = ("BTC-PERPETUAL", "ETH-PERPETUAL")
    #: heartbeats come every ``config.HEARTBEAT_INTERVAL`` s: silence must be longer
    min_silence_timeout: ClassVar[float] = 2.5 * config.HEARTBEAT_INTERVAL
    #: missing heartbeats trigger a reconnect even while data flows
    heartbeat_timeout: ClassVar[float | None] = 3 * config.HEARTBEAT_INTERVAL
    capture_prefixes: ClassVar[tuple[str, ...]] = (config.CAPTURE_PREFIX,)
    options_type: ClassVar[type[msgspec.Struct] | None] = config.Options

    def __init__(
        self,
        *,
        options: config.Options | None = None,
        clock: Callable[[], float] = time.time,
        credentials: config.Credentials | bool | None = True,
    ) -> None:
        """``credentials=True`` reads them from the environment when needed."""
        self.options = options if options is not None else config.Options()
        self.clock = clock
        self._credentials = credentials

    def configure(self, options: config.Options) -> Deribit:
        """This venue with ``[venues.deribit.options]``: which currencies to load, and the
        channel interval (``raw`` needs API credentials)."""
        venue = Deribit(options=options, clock=self.clock, credentials=self._credentials)
        if options.interval == config.RAW_INTERVAL and venue.credentials is None:
            raise ValueError(
                f"interval 'raw' needs API credentials ({config.ENV_CLIENT_ID} and {config.ENV_CLIENT_SECRET})"
            )
        return venue

    @property
    def credentials(self) -> config.Credentials | None:
        if self._credentials is True:
            return config.credentials_from_env()
        return self._credentials or None

    # -- reference data -------------------------------------------------------------
    async def fetch_instruments(self, rest_client: RestApi) -> list[Instrument]:
        return await rest.fetch_instruments(rest_client, self.options.currencies, clock=self.clock)

    def parse_instruments(self, files: dict[str, bytes]) -> list[Instrument]:
        # fixtures are a frozen moment: no expiry filter (see fixtures/README.md)
        return rest.parse_files(files)

    def fixtures_dir(self) -> Path | None:
        return FIXTURES

    # -- streams ------------------------------------------------------------------
    def channels(self, instrument: Instrument, feed: Feed) -> list[str]:
        interval = config.interval_for(self.credentials, self.options.interval)
        prefix = {"book": "book", "trades": "trades", "top": "ticker"}[feed]
        return [f"{prefix}.{instrument.symbol}.{interval}"]

    def new_session(self) -> DeribitSession:
        return DeribitSession(credentials=self.credentials)

    def sequence_policy(self, instrument: Instrument) -> SequencePolicy:
        return POLICY

    # -- simulator ------------------------------------------------------------------
    def simulator(
        self,
        *,
        recording: str | None = None,
        port: int = 0,
        symbols: list[str] | None = None,
        rate: float | None = None,
        **options: Any,
    ) -> contextlib.AbstractAsyncContextManager[Simulator]:
        """The loopback simulator (an async context manager yielding it; see simulator.py).
        ``symbols`` are instrument names to stream, ``rate`` updates per second per book."""
        from .simulator import DeribitSimulator

        if symbols:
            options["instruments"] = list(symbols)
        if rate:
            options["update_interval"] = 1.0 / rate
        # the demo profile and CLI smoke tests: Deribit's minimum heartbeat is 10 s, the
        # simulator may send test_requests faster (SPICEFLOW_DERIBIT_SIM_HEARTBEAT=seconds)
        if "heartbeat_interval" not in options and os.environ.get(SIM_HEARTBEAT_ENV):
            options["heartbeat_interval"] = float(os.environ[SIM_HEARTBEAT_ENV])
        return DeribitSimulator(recording=recording, port=port, **options)


@hookimpl
def spiceflow_venues() -> list[Venue]:
    return [Deribit()]
