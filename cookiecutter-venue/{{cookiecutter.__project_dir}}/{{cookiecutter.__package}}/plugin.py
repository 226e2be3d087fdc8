"""The pluggy hook: the ``{{ cookiecutter.venue_slug }}`` venue, registered under the
``spiceflow.venues`` entry point in pyproject.toml.

The contract this class fulfils -- every attribute and method, and the rules the venue
is checked against when it loads -- is documented in ``spiceflow_core.plugin.contract``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

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

from . import config
from . import rest as _rest
from .session import {{ cookiecutter.__class_prefix }}Session
from .sync import CHECKSUM, POLICY

FIXTURES = Path(__file__).parent / "fixtures"


class {{ cookiecutter.__class_prefix }}Venue(Venue):
    name: ClassVar[str] = config.VENUE
    display_name: ClassVar[str] = config.DISPLAY_NAME
    exchange: ClassVar[str] = config.EXCHANGE
    default_endpoints: ClassVar[Endpoints] = config.ENDPOINTS
    # the venue sends a book snapshot on every subscribe, so a gap heals by resubscribing.
    # FILL IN: "rest" instead if snapshots come from REST (then implement fetch_snapshot,
    # and set snapshot_depth)
    resync = "resubscribe"
    max_streams_per_connection: ClassVar[int] = config.MAX_STREAMS_PER_CONNECTION
    max_messages_per_second: ClassVar[float] = config.MAX_MESSAGES_PER_SECOND
    # FILL IN: "requests" if that limit charges subscription requests only (heartbeat
    # answers and pings are free, as in Deribit's credit pool)
    rate_limit_counts = "messages"
    default_instruments: ClassVar[tuple[str, ...]] = config.DEFAULT_INSTRUMENTS
    rest_min_interval: ClassVar[float] = config.REST_MIN_INTERVAL
    capture_prefixes: ClassVar[tuple[str, ...]] = (config.CAPTURE_PREFIX,)
    # FILL IN when the venue's keep-alive is slow or its own: ``min_silence_timeout``
    # (seconds of silence never treated as a dead connection below it) and
    # ``heartbeat_timeout`` (seconds without one of its heartbeats before reconnecting).
    # FILL IN when the venue has settings users choose in spiceflow.toml
    # ([venues.{{ cookiecutter.venue_slug }}.options]): a msgspec Struct with
    # forbid_unknown_fields=True in config.py as ``options_type``, and ``configure``
    # returning the venue built with those options (plugins/spiceflow-okx does).

    # -- reference data -----------------------------------------------------------
    async def fetch_instruments(self, rest: RestApi) -> list[Instrument]:
        return await _rest.fetch_instruments(rest, self.name)

    def parse_instruments(self, files: dict[str, bytes]) -> list[Instrument]:
        body = files.get(config.INSTRUMENTS_FIXTURE)
        if body is None:
            names = ", ".join(sorted(files)) or "no files"
            raise FileNotFoundError(f"{self.name}: fixture {config.INSTRUMENTS_FIXTURE} missing (found: {names})")
        return _rest.parse_instruments(body, self.name)

    def fixtures_dir(self) -> Path | None:
        return FIXTURES

    # -- streams ------------------------------------------------------------------
    def channels(self, instrument: Instrument, feed: Feed) -> list[str]:
        if feed == "book":
            return [config.BOOK_CHANNEL.format(symbol=instrument.symbol, symbol_lower=instrument.symbol.lower())]
        # FILL IN: "trades" and "top" channels (and their parsing) when the venue has them
        raise ValueError(f"{self.name}: feed {feed!r} is not implemented yet (only 'book')")

    def new_session(self) -> {{ cookiecutter.__class_prefix }}Session:
        return {{ cookiecutter.__class_prefix }}Session(self.name)

    def sequence_policy(self, instrument: Instrument) -> SequencePolicy:
        return POLICY

    def book_checksum(self, instrument: Instrument) -> BookChecksum | None:
        # None until the venue's checksum is written in sync.py (CHECKSUM); the core then
        # verifies every book message that carries one (a mismatch is a gap)
        return CHECKSUM

    def maintained_depth(self, instrument: Instrument) -> int | None:
        # the depth the venue keeps this book at, when it does not delete the levels
        # pushed out of it (config.MAINTAINED_DEPTH); None keeps the full book
        return config.MAINTAINED_DEPTH

    # -- simulator ----------------------------------------------------------------
    def simulator(
        self, *, recording: str | None = None, port: int = 0, **options: Any
    ) -> contextlib.AbstractAsyncContextManager[Simulator]:
        """A loopback simulator speaking this venue's protocol (``spiceflow simulate``,
        the ``demo`` profile and the tests use it). Options: ``symbols`` (names, or a
        number of instruments), ``rate`` (book updates per second and symbol), and the
        simulator's own (simulator.py)."""
        if recording is not None:
            raise NotImplementedError(f"{self.name}: the simulator does not replay recordings yet")
        # imported here: the server code loads only when a simulator is used
        from .simulator import {{ cookiecutter.__class_prefix }}Simulator

        return {{ cookiecutter.__class_prefix }}Simulator(port=port, **options)


@hookimpl
def spiceflow_venues() -> list[Venue]:
    return [{{ cookiecutter.__class_prefix }}Venue()]


__all__ = ["{{ cookiecutter.__class_prefix }}Venue", "spiceflow_venues"]
