"""Shared fixtures: the venue, a registry holding it (no install needed) and settings for
in-process runs of the orchestrator.

The plugin has no pytest configuration of its own: inside the SpiceFlow repository
(``plugins/{{ cookiecutter.__project_dir }}``) the root pyproject's applies (its import mode and
``pythonpath``, which a plugin-level ``[tool.pytest.ini_options]`` would shadow when
pytest is pointed at this directory); on its own, pytest's defaults do.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
try:  # make the plugin importable before it is pip-installed
    import {{ cookiecutter.__package }}  # noqa: F401
except ImportError:
    sys.path.insert(0, str(PLUGIN))

from {{ cookiecutter.__package }} import __version__, config, plugin  # noqa: E402

from spiceflow_core.config import Settings, decode_settings  # noqa: E402
from spiceflow_core.plugin.registry import VenueRegistry, register_venues  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def venue() -> plugin.{{ cookiecutter.__class_prefix }}Venue:
    return plugin.{{ cookiecutter.__class_prefix }}Venue()


@pytest.fixture
def registry() -> VenueRegistry:
    """The registry the CLI would build, with only this plugin in it."""
    registry = VenueRegistry()
    register_venues(registry, plugin, "{{ cookiecutter.__project_dir }}", __version__, config.VENUE)
    assert not registry.failures, [f.line() for f in registry.failures]
    return registry


@pytest.fixture
def settings_for():
    def make(instruments: list[str], profiles: list[str], **runtime) -> Settings:
        raw = {
            "profiles": profiles,
            "venues": {config.VENUE: {"instruments": instruments}},
            "broadcast": {"address": "tcp://127.0.0.1:*", "status_interval": 0.5},
            "api": {"enabled": False, "address": "127.0.0.1:0"},
            "runtime": {
                "silence_timeout": 5.0,
                "reconnect_initial": 0.05,
                "reconnect_max": 0.5,
                "ack_timeout": 3.0,
                "first_heartbeat_timeout": 10.0,
                **runtime,
            },
        }
        return decode_settings(raw, "<test>")

    return make
