"""Discovering venue plugins through entry points, one plugin at a time, so that a
broken plugin is reported by distribution name and version while the others load.

Every venue is checked against the rules of ``spiceflow_core.plugin.contract`` when it
loads; once the config is known, :func:`configure_venues` hands each venue its options.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as metadata
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import pluggy
from loguru import logger

from spiceflow_core.config import ConfigError, Settings, venue_options
from spiceflow_core.plugin import hookspecs
from spiceflow_core.plugin.contract import Endpoints, Venue

_CAPTURE_PREFIX = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclass(frozen=True)
class LoadedVenue:
    venue: Venue
    distribution: str
    version: str


@dataclass(frozen=True)
class PluginFailure:
    distribution: str
    version: str
    entry_point: str
    reason: str

    def line(self) -> str:
        return f"plugin {self.distribution} {self.version} ({self.entry_point}) failed: {self.reason}"


@dataclass
class VenueRegistry:
    venues: dict[str, LoadedVenue] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def get(self, name: str) -> Venue:
        try:
            return self.venues[name].venue
        except KeyError:
            known = ", ".join(sorted(self.venues)) or "none installed"
            raise KeyError(f"unknown venue {name!r} (installed: {known})") from None

    def names(self) -> list[str]:
        return sorted(self.venues)

    def capture_prefixes(self) -> dict[str, str]:
        """Capture name (``BINANCE_FUTURES``) -> venue name, as the venues declare them."""
        return {prefix: name for name, loaded in self.venues.items() for prefix in loaded.venue.capture_prefixes}


def _overrides(venue: Venue, method: str) -> bool:
    return getattr(type(venue), method) is not getattr(Venue, method)


def _positive(value: object, *, allow_zero: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return False
    return value >= 0 if allow_zero else value > 0


def _problems(venue: Venue) -> list[str]:
    """Every way ``venue`` breaks the contract (empty when it keeps it)."""
    name = venue.name
    out = []
    if not isinstance(getattr(venue, "default_endpoints", None), Endpoints):
        out.append("has no default_endpoints (an Endpoints)")
    if venue.resync not in ("rest", "resubscribe"):
        out.append(f'resync is {venue.resync!r}, not "rest" or "resubscribe"')
    elif venue.resync == "rest" and not _overrides(venue, "fetch_snapshot"):
        out.append('has resync = "rest" but does not implement fetch_snapshot')
    for limit in ("max_streams_per_connection", "snapshot_depth"):
        value = getattr(venue, limit)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            out.append(f"{limit} must be a positive integer, got {value!r}")
    if not _positive(venue.max_messages_per_second):
        out.append(f"max_messages_per_second must be positive, got {venue.max_messages_per_second!r}")
    if venue.rate_limit_counts not in ("messages", "requests"):
        out.append(f'rate_limit_counts is {venue.rate_limit_counts!r}, not "messages" or "requests"')
    for limit in ("max_connection_age", "heartbeat_timeout"):
        value = getattr(venue, limit)
        if value is not None and not _positive(value):
            out.append(f"{limit} must be positive or None, got {value!r}")
    for limit in ("min_silence_timeout", "rest_min_interval"):
        value = getattr(venue, limit)
        if not _positive(value, allow_zero=True):
            out.append(f"{limit} must not be negative, got {value!r}")
    prefixes = venue.capture_prefixes
    if not isinstance(prefixes, tuple) or not all(
        isinstance(p, str) and _CAPTURE_PREFIX.fullmatch(p) for p in prefixes
    ):
        out.append(f"capture_prefixes must be a tuple of upper-case names like 'EXCHANGE_FUTURES', got {prefixes!r}")
    elif len(set(prefixes)) != len(prefixes):
        out.append(f"capture_prefixes names a prefix twice: {prefixes!r}")
    options_type = venue.options_type
    if options_type is not None:
        if not (inspect.isclass(options_type) and issubclass(options_type, msgspec.Struct)):
            out.append(f"options_type must be a msgspec.Struct subclass or None, got {options_type!r}")
        elif not options_type.__struct_config__.forbid_unknown_fields:
            out.append(f"options_type {options_type.__name__} must set forbid_unknown_fields=True")
        elif not _overrides(venue, "configure"):
            out.append(f"declares options_type {options_type.__name__} but does not implement configure")
    return [f"venue {name!r}: {p}" for p in out]


def _validate(venue: object) -> str | None:
    """Why ``venue`` is refused (every broken rule, in one line), or None."""
    if not isinstance(venue, Venue):
        return f"registered {type(venue).__name__}, not a spiceflow_core.plugin.contract.Venue"
    name = getattr(venue, "name", None)
    if not isinstance(name, str) or not name or "." in name or " " in name:
        return f"venue name {name!r} is not a non-empty string without dots or spaces"
    problems = _problems(venue)
    return "; ".join(problems) if problems else None


def _conflict(registry: VenueRegistry, venue: Venue) -> str | None:
    """A clash with an already registered venue: the same name or capture prefix."""
    if venue.name in registry.venues:
        return f"venue {venue.name!r} is already provided by {registry.venues[venue.name].distribution}"
    claimed = registry.capture_prefixes()
    for prefix in venue.capture_prefixes:
        if prefix in claimed:
            other = claimed[prefix]
            return (
                f"venue {venue.name!r}: capture prefix {prefix!r} is already claimed by venue {other!r} "
                f"({registry.venues[other].distribution})"
            )
    return None


def dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("<unknown distribution>", "?")
    return (dist.metadata["Name"] or dist.name, dist.version)


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def register_venues(registry: VenueRegistry, module: object, distribution: str, version: str, label: str) -> None:
    """Register one plugin module's venues, recording (not raising) any failure."""
    pm = new_plugin_manager()
    try:
        pm.register(module, name=label)
        results = pm.hook.spiceflow_venues()
    except Exception as exc:  # a plugin's bug must not stop the others
        registry.failures.append(PluginFailure(distribution, version, label, f"{type(exc).__name__}: {exc}"))
        return
    for venues in results:
        for venue in venues if isinstance(venues, (list, tuple)) else [venues]:
            problem = _validate(venue) or _conflict(registry, venue)
            if problem:
                registry.failures.append(PluginFailure(distribution, version, label, problem))
                continue
            registry.venues[venue.name] = LoadedVenue(venue, distribution, version)


def load_entry_points(
    group: str, register: Callable[[object, str, str, str], None], failures: list[PluginFailure]
) -> None:
    """Import every plugin module of an entry-point group one at a time and hand it to
    ``register(module, distribution, version, label)``; a module that fails to import is
    recorded in ``failures`` by distribution and version, and the others still load."""
    for ep in metadata.entry_points(group=group):
        distribution, version = dist_of(ep)
        try:
            module = ep.load()
        except Exception as exc:
            failures.append(
                PluginFailure(distribution, version, ep.name, f"import failed: {type(exc).__name__}: {exc}")
            )
            continue
        register(module, distribution, version, ep.name)
    for failure in failures:
        logger.error(failure.line())


def discover() -> VenueRegistry:
    """Load every installed plugin of the ``spiceflow.venues`` entry-point group."""
    registry = VenueRegistry()
    load_entry_points(
        hookspecs.ENTRY_POINT_GROUP,
        lambda module, dist, version, label: register_venues(registry, module, dist, version, label),
        registry.failures,
    )
    return registry


def configure_venues(registry: VenueRegistry, settings: Settings, source: str) -> None:
    """Replace every installed venue by the one its ``[venues.<name>.options]`` configures
    (``Venue.configure``; the options type's defaults when the table is absent).

    Raises ConfigError naming the key and ``source`` (the config file): an options table
    for a venue without ``options_type``, an unknown key, a wrong type, a value
    ``configure`` refuses, or a configured venue that breaks the contract.
    """
    for name, loaded in list(registry.venues.items()):
        venue = loaded.venue
        where = f"{source}: venues.{name}.options"
        if venue.options_type is None:
            if name in settings.venues and settings.venues[name].options:
                raise ConfigError(f"{where}: venue {name!r} takes no options")
            continue
        options = venue_options(venue.options_type, settings, name, source)
        try:
            configured = venue.configure(options)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        problem = _validate(configured)
        if problem is None and configured.name != name:
            problem = f"configure renamed venue {name!r} to {configured.name!r}"
        if problem:
            raise ConfigError(f"{where}: plugin {loaded.distribution} {loaded.version}: {problem}")
        registry.venues[name] = dataclasses.replace(loaded, venue=configured)
