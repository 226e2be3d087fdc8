"""The pluggy hook: three Bybit v5 venues (spot, linear, inverse), one per public
WebSocket endpoint, sharing one implementation (entry point ``spiceflow.venues: bybit``).

The contract this fulfils is documented in ``spiceflow_core.plugin.contract``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from spiceflow_core.plugin import (
    Feed,
    Instrument,
    RestApi,
    SequencePolicy,
    Simulator,
    Venue,
    hookimpl,
)

from . import config
from . import rest as _rest
from .session import BybitSession
from .sync import POLICY

FIXTURES = Path(__file__).parent / "fixtures"


class BybitVenue(Venue):
    spec: ClassVar[config.CategorySpec]
    exchange: ClassVar[str] = config.EXCHANGE
    # every subscribe brings a snapshot: a gap heals by resubscribing the topic
    resync = "resubscribe"
    max_streams_per_connection: ClassVar[int] = config.MAX_STREAMS_PER_CONNECTION
    max_messages_per_second: ClassVar[float] = config.MAX_MESSAGES_PER_SECOND
    #: the pong to our ping is the venue's heartbeat: three missed pings -> reconnect
    heartbeat_timeout: ClassVar[float | None] = config.HEARTBEAT_TIMEOUT_S
    options_type: ClassVar[type[msgspec.Struct] | None] = config.Options

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.spec
        cls.name = spec.venue
        cls.display_name = spec.display_name
        cls.default_endpoints = spec.endpoints
        cls.default_instruments = spec.default_instruments
        cls.capture_prefixes = (spec.capture_prefix,)

    def __init__(self, *, options: config.Options | None = None) -> None:
        self.options = options if options is not None else config.Options()
        depth = self.options.depth if self.options.depth is not None else self.spec.default_depth
        if depth not in self.spec.depths or depth == self.spec.top_depth:
            allowed = ", ".join(str(d) for d in self.spec.depths if d != self.spec.top_depth)
            raise ValueError(f"depth {depth} is not a {self.spec.category} book depth (one of {allowed})")
        #: levels per side of the book topic, and of the local book
        self.depth = depth

    def configure(self, options: config.Options) -> BybitVenue:
        return type(self)(options=options)

    # -- reference data -------------------------------------------------------------
    async def fetch_instruments(self, rest: RestApi) -> list[Instrument]:
        return await _rest.fetch_instruments(self.spec, rest)

    def parse_instruments(self, files: dict[str, bytes]) -> list[Instrument]:
        return _rest.parse_files(self.spec, files)

    def fixtures_dir(self) -> Path | None:
        return FIXTURES

    # -- streams --------------------------------------------------------------------
    def channels(self, instrument: Instrument, feed: Feed) -> list[str]:
        if feed == "book":
            return [config.book_topic(self.depth, instrument.symbol)]
        if feed == "trades":
            return [config.trade_topic(instrument.symbol)]
        if feed == "top" and self.spec.top_depth is not None:
            return [config.book_topic(self.spec.top_depth, instrument.symbol)]
        raise ValueError(f"{self.name}: unknown feed {feed!r}")

    def new_session(self) -> BybitSession:
        return BybitSession(self.name, args_per_request=self.spec.args_per_request)

    def sequence_policy(self, instrument: Instrument) -> SequencePolicy:
        return POLICY

    def maintained_depth(self, instrument: Instrument) -> int | None:
        # Bybit keeps a book of the subscribed depth: a level pushed out of it by a
        # better one is not deleted on the stream, so the local book is cut the same way
        return self.depth

    # -- simulator ------------------------------------------------------------------
    def simulator(
        self, *, recording: str | None = None, port: int = 0, **options: Any
    ) -> contextlib.AbstractAsyncContextManager[Simulator]:
        if recording is not None:
            raise NotImplementedError(f"{self.name}: the simulator does not replay recordings")
        from .simulator import BybitSimulator  # server code only when used

        options.setdefault("depth", self.depth)
        return BybitSimulator(self.spec, port=port, **options)


class BybitSpot(BybitVenue):
    spec = config.SPOT


class BybitLinear(BybitVenue):
    spec = config.LINEAR


class BybitInverse(BybitVenue):
    spec = config.INVERSE


@hookimpl
def spiceflow_venues() -> list[Venue]:
    return [BybitSpot(), BybitLinear(), BybitInverse()]


__all__ = ["BybitInverse", "BybitLinear", "BybitSpot", "BybitVenue", "spiceflow_venues"]
