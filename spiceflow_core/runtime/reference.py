"""ReferenceDataActor: loads a venue's instruments over REST (live) or from fixture
files (``fixtures``/``demo`` profiles: ``<fixtures_dir>/<venue>/`` if present, else the
plugin's packaged fixtures), with retries; the result is cached for the workflows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from spiceflow_core.model import Instrument
from spiceflow_core.plugin.contract import Venue

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.plugin.rest import RestClient


class ReferenceDataError(Exception):
    """Reference data could not be loaded (message names the venue and cause)."""


def fixture_directory(venue: Venue, fixtures_root: str | None, override: str | None = None) -> Path:
    candidates = []
    if override:
        candidates.append(Path(override))
    if fixtures_root:
        candidates.append(Path(fixtures_root) / venue.name)
        if venue.exchange:
            candidates.append(Path(fixtures_root) / venue.exchange)
    packaged = venue.fixtures_dir()
    if packaged is not None:
        candidates.append(Path(packaged))
    for directory in candidates:
        if directory.is_dir() and any(directory.iterdir()):
            return directory
    if override:
        raise ReferenceDataError(f"{venue.name}: fixture directory {override} not found or empty")
    raise ReferenceDataError(
        f"{venue.name}: no fixtures found (looked in {', '.join(map(str, candidates)) or 'nowhere'})"
    )


def load_fixture_instruments(venue: Venue, directory: Path) -> list[Instrument]:
    files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
    try:
        return venue.parse_instruments(files)
    except Exception as exc:
        raise ReferenceDataError(f"{venue.name}: cannot parse fixtures in {directory}: {exc}") from exc


class ReferenceDataActor:
    def __init__(
        self,
        venue: Venue,
        *,
        use_fixtures: bool,
        fixtures_root: str | None,
        fixtures_override: str | None,
        rest: RestClient,
    ) -> None:
        self.venue = venue
        self.use_fixtures = use_fixtures
        self.fixtures_root = fixtures_root
        self.fixtures_override = fixtures_override
        self.rest = rest
        self.instruments: dict[str, Instrument] = {}
        self.log = logger.bind(venue=venue.name, actor="reference")

    async def load(self) -> dict[str, Instrument]:
        if self.use_fixtures:
            directory = fixture_directory(self.venue, self.fixtures_root, self.fixtures_override)
            instruments = load_fixture_instruments(self.venue, directory)
            source = f"fixtures {directory}"
        else:
            try:
                instruments = await self.venue.fetch_instruments(self.rest)
            except Exception as exc:
                raise ReferenceDataError(
                    f"{self.venue.name}: reference data from {self.rest.base_url} failed: {exc}"
                ) from exc
            source = self.rest.base_url
        self.instruments = {i.symbol: i for i in instruments}
        active = sum(1 for i in instruments if i.active)
        self.log.info("{} instruments ({} active) from {}", len(instruments), active, source)
        return self.instruments
