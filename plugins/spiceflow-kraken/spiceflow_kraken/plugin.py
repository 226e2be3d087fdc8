"""The Kraken spot venue (WebSocket API v2) and its pluggy hook (entry point
``spiceflow.venues: kraken``). The contract is ``spiceflow_core.plugin.contract``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar, cast

import msgspec

from spiceflow_core.plugin import (
    BookChecksum,
    Endpoints,
    Feed,
    Instrument,
    RestApi,
    SequencePolicy,
    Simulator,
    Venue,
    hookimpl,
)

from . import config, rest
from .checksum import KrakenChecksum, decimals_of
from .session import KrakenSession
from .sync import POLICY, Sequencer

FIXTURES = Path(__file__).parent / "fixtures"


class Kraken(Venue):
    name: ClassVar[str] = config.VENUE
    display_name: ClassVar[str] = config.DISPLAY_NAME
    exchange: ClassVar[str] = config.EXCHANGE
    default_endpoints: ClassVar[Endpoints] = config.ENDPOINTS
    # every (re)subscription of ``book`` starts with a snapshot; a checksum mismatch is
    # healed by unsubscribing and subscribing the channel again
    resync = "resubscribe"
    max_streams_per_connection: ClassVar[int] = config.MAX_STREAMS_PER_CONNECTION
    max_messages_per_second: ClassVar[float] = config.MAX_MESSAGES_PER_SECOND
    default_instruments: ClassVar[tuple[str, ...]] = config.DEFAULT_INSTRUMENTS
    #: the server's heartbeat channel beats about once a second while subscribed
    min_silence_timeout: ClassVar[float] = 3 * config.HEARTBEAT_INTERVAL
    capture_prefixes: ClassVar[tuple[str, ...]] = (config.CAPTURE_PREFIX,)
    options_type: ClassVar[type[msgspec.Struct] | None] = config.Options

    def __init__(self, options: config.Options | None = None) -> None:
        self.options = options if options is not None else config.Options()
        #: book message ids per symbol, shared by every connection (see sync.py)
        self.sequencer = Sequencer()

    def configure(self, options: config.Options) -> Kraken:
        return Kraken(options)

    # -- reference data -------------------------------------------------------------
    async def fetch_instruments(self, rest_client: RestApi) -> list[Instrument]:
        return await rest.fetch_instruments(rest_client, self.name)

    def parse_instruments(self, files: dict[str, bytes]) -> list[Instrument]:
        body = files.get(config.INSTRUMENTS_FIXTURE)
        if body is None:
            names = ", ".join(sorted(files)) or "no files"
            raise FileNotFoundError(f"{self.name}: fixture {config.INSTRUMENTS_FIXTURE} missing (found: {names})")
        return rest.parse_instruments(body, self.name)

    def fixtures_dir(self) -> Path | None:
        return FIXTURES

    # -- streams ----------------------------------------------------------------------
    def channels(self, instrument: Instrument, feed: Feed) -> list[str]:
        return [config.channel_name(config.FEED_CHANNELS[feed], instrument.symbol)]

    def new_session(self) -> KrakenSession:
        return KrakenSession(self.sequencer, book_depth=self.options.book_depth)

    def sequence_policy(self, instrument: Instrument) -> SequencePolicy:
        return POLICY

    def book_checksum(self, instrument: Instrument) -> BookChecksum | None:
        return KrakenChecksum(decimals_of(instrument.tick_size or "0"), decimals_of(instrument.lot_size or "0"))

    def maintained_depth(self, instrument: Instrument) -> int | None:
        return self.options.book_depth

    # -- simulator --------------------------------------------------------------------
    def simulator(
        self,
        *,
        recording: str | None = None,
        port: int = 0,
        symbols: list[str] | None = None,
        rate: float | None = None,
        **options: Any,
    ) -> contextlib.AbstractAsyncContextManager[Simulator]:
        """The loopback simulator (see simulator.py): ``symbols`` to stream, ``rate``
        book updates per second per symbol."""
        if recording is not None:
            raise NotImplementedError(f"{self.name}: the simulator does not replay recordings")
        from .simulator import KrakenSimulator  # server code only when used

        if rate:
            options["rate"] = rate
        # cast: its ``faults`` is a FaultSwitches subclass (plus corrupt_checksum)
        return cast(
            contextlib.AbstractAsyncContextManager[Simulator], KrakenSimulator(port=port, symbols=symbols, **options)
        )


@hookimpl
def spiceflow_venues() -> list[Venue]:
    return [Kraken()]


__all__ = ["Kraken", "spiceflow_venues"]
