"""The OKX venue and its pluggy hook (entry point ``spiceflow.venues: okx``).

The contract this class fulfils is documented in ``spiceflow_core.plugin.contract``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from spiceflow_core.book.checksum import BookChecksum
from spiceflow_core.plugin import Endpoints, Feed, Instrument, RestApi, SequencePolicy, Simulator, Venue, hookimpl

from . import config, rest
from .parsing import channel_name
from .session import OkxSession
from .sync import CHECKSUM, POLICY

FIXTURES = Path(__file__).parent / "fixtures"


class OkxVenue(Venue):
    name: ClassVar[str] = config.VENUE
    display_name: ClassVar[str] = config.DISPLAY_NAME
    exchange: ClassVar[str] = config.EXCHANGE
    default_endpoints: ClassVar[Endpoints] = config.ENDPOINTS
    # every subscribe of ``books`` starts with a snapshot: a gap heals by resubscribing
    resync = "resubscribe"
    max_streams_per_connection: ClassVar[int] = config.MAX_STREAMS_PER_CONNECTION
    max_messages_per_second: ClassVar[float] = config.MAX_MESSAGES_PER_SECOND
    snapshot_depth: ClassVar[int] = config.BOOK_DEPTH
    default_instruments: ClassVar[tuple[str, ...]] = config.DEFAULT_INSTRUMENTS
    rest_min_interval: ClassVar[float] = config.REST_MIN_INTERVAL
    capture_prefixes: ClassVar[tuple[str, ...]] = (config.CAPTURE_PREFIX,)
    options_type: ClassVar[type[msgspec.Struct] | None] = config.Options

    def __init__(self, *, options: config.Options | None = None) -> None:
        self.options = options if options is not None else config.Options()

    def configure(self, options: config.Options) -> OkxVenue:
        """This venue with ``[venues.okx.options]``: which instrument types (and option
        families) to load."""
        return OkxVenue(options=options)

    # -- reference data -----------------------------------------------------------------
    async def fetch_instruments(self, rest_client: RestApi) -> list[Instrument]:
        return await rest.fetch_instruments(rest_client, self.options.inst_types, self.options.option_families)

    def parse_instruments(self, files: dict[str, bytes]) -> list[Instrument]:
        return rest.parse_files(files)

    def fixtures_dir(self) -> Path | None:
        return FIXTURES

    # -- streams ------------------------------------------------------------------------
    def channels(self, instrument: Instrument, feed: Feed) -> list[str]:
        return [channel_name(config.FEED_CHANNELS[feed], instrument.symbol)]

    def new_session(self) -> OkxSession:
        return OkxSession()

    def sequence_policy(self, instrument: Instrument) -> SequencePolicy:
        return POLICY

    def book_checksum(self, instrument: Instrument) -> BookChecksum | None:
        return CHECKSUM

    def maintained_depth(self, instrument: Instrument) -> int | None:
        return config.BOOK_DEPTH

    # -- simulator ----------------------------------------------------------------------
    def simulator(
        self,
        *,
        recording: str | None = None,
        port: int = 0,
        symbols: list[str] | None = None,
        rate: float | None = None,
        **options: Any,
    ) -> contextlib.AbstractAsyncContextManager[Simulator]:
        """The loopback simulator (see simulator.py). ``symbols`` are instIds to stream,
        ``rate`` book updates per second per instrument."""
        if recording is not None:
            raise NotImplementedError(f"{self.name}: the simulator does not replay recordings")
        from .simulator import OkxSimulator  # server code only when used

        if symbols:
            options["symbols"] = list(symbols)
        if rate:
            options["update_interval"] = 1.0 / rate
        return OkxSimulator(port=port, **options)


@hookimpl
def spiceflow_venues() -> list[Venue]:
    return [OkxVenue()]


__all__ = ["OkxVenue", "spiceflow_venues"]
