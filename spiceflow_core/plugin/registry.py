"""Discovering venue plugins through entry points, one plugin at a time, so that a
broken plugin is reported by distribution name and version while the others load."""

from __future__ import annotations

import importlib.metadata as metadata
from dataclasses import dataclass, field

import pluggy
from loguru import logger

from spiceflow_core.plugin import hookspecs
from spiceflow_core.plugin.contract import Endpoints, Venue


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


def _validate(venue: object) -> str | None:
    if not isinstance(venue, Venue):
        return f"registered {type(venue).__name__}, not a spiceflow_core.plugin.contract.Venue"
    name = getattr(venue, "name", None)
    if not isinstance(name, str) or not name or "." in name or " " in name:
        return f"venue name {name!r} is not a non-empty string without dots or spaces"
    if not isinstance(getattr(venue, "default_endpoints", None), Endpoints):
        return f"venue {name!r} has no default_endpoints"
    return None


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
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
            problem = _validate(venue)
            if problem is None and venue.name in registry.venues:
                other = registry.venues[venue.name].distribution
                problem = f"venue {venue.name!r} is already provided by {other}"
            if problem:
                registry.failures.append(PluginFailure(distribution, version, label, problem))
                continue
            registry.venues[venue.name] = LoadedVenue(venue, distribution, version)


def discover() -> VenueRegistry:
    """Load every installed plugin of the ``spiceflow.venues`` entry-point group."""
    registry = VenueRegistry()
    for ep in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        distribution, version = _dist_of(ep)
        try:
            module = ep.load()
        except Exception as exc:
            registry.failures.append(
                PluginFailure(distribution, version, ep.name, f"import failed: {type(exc).__name__}: {exc}")
            )
            continue
        register_venues(registry, module, distribution, version, ep.name)
    for failure in registry.failures:
        logger.error(failure.line())
    return registry
