"""Discovering sink plugins (``spiceflow.sinks`` entry points) one at a time, so a
broken plugin is reported by distribution and version while the others load, and
building the sinks ``[sinks.<name>]`` turns on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import pluggy
from loguru import logger

from spiceflow_core.config import ConfigError, Settings, convert_options
from spiceflow_core.plugin.registry import PluginFailure, load_entry_points
from spiceflow_core.sinks import contract
from spiceflow_core.sinks.contract import Sink, SinkPlugin


@dataclass(frozen=True)
class LoadedSink:
    plugin: SinkPlugin
    distribution: str
    version: str


@dataclass
class SinkRegistry:
    plugins: dict[str, LoadedSink] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def names(self) -> list[str]:
        return sorted(self.plugins)


def _problem(plugin: object) -> str | None:
    if not isinstance(plugin, SinkPlugin):
        return f"registered {type(plugin).__name__}, not a spiceflow_core.sinks.SinkPlugin"
    name = getattr(plugin, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        return f"sink name {name!r} is not an identifier"
    options = getattr(plugin, "options_type", None)
    if not (isinstance(options, type) and issubclass(options, msgspec.Struct)):
        return f"sink {name!r}: options_type is not a msgspec Struct"
    return None


def register_sinks(registry: SinkRegistry, module: object, distribution: str, version: str, label: str) -> None:
    pm = pluggy.PluginManager(contract.PROJECT)
    pm.add_hookspecs(contract)
    try:
        pm.register(module, name=label)
        results: list[Any] = pm.hook.spiceflow_sinks()
    except Exception as exc:  # a plugin's bug must not stop the others
        registry.failures.append(PluginFailure(distribution, version, label, f"{type(exc).__name__}: {exc}"))
        return
    for plugins in results:
        for plugin in plugins if isinstance(plugins, (list, tuple)) else [plugins]:
            problem = _problem(plugin)
            if problem is None and plugin.name in registry.plugins:
                problem = f"sink {plugin.name!r} is already provided by {registry.plugins[plugin.name].distribution}"
            if problem:
                registry.failures.append(PluginFailure(distribution, version, label, problem))
                continue
            registry.plugins[plugin.name] = LoadedSink(plugin, distribution, version)


def discover_sinks() -> SinkRegistry:
    """Load every installed plugin of the ``spiceflow.sinks`` entry-point group."""
    registry = SinkRegistry()
    load_entry_points(
        contract.ENTRY_POINT_GROUP,
        lambda module, dist, version, label: register_sinks(registry, module, dist, version, label),
        registry.failures,
    )
    return registry


def build_sinks(registry: SinkRegistry, settings: Settings, source: str) -> list[Sink]:
    """One sink per ``[sinks.<name>]`` table. A table naming no installed sink, an
    unknown key or a wrong type raise ConfigError naming the key and ``source``; a
    plugin whose ``create`` fails is reported by name and left out (the rest run)."""
    sinks: list[Sink] = []
    for name, table in settings.sinks.items():
        loaded = registry.plugins.get(name)
        if loaded is None:
            broken = [f.distribution for f in registry.failures]
            why = f"; broken sink plugins: {', '.join(broken)}" if broken else ""
            installed = ", ".join(registry.names()) or "none"
            raise ConfigError(
                f"{source}: sinks.{name}: no installed sink plugin named {name!r} (installed: {installed}{why})"
            )
        options = convert_options(table, loaded.plugin.options_type, source, f"sinks.{name}")
        try:
            sinks.append(loaded.plugin.create(options))
        except Exception as exc:
            logger.bind(actor="sink", sink=name).error(
                "sink {} ({} {}) failed to start: {}: {}",
                name,
                loaded.distribution,
                loaded.version,
                type(exc).__name__,
                exc,
            )
    return sinks
