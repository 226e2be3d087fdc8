"""Make the plugin importable when it is not installed (the tests run from the repo
root with --import-mode=importlib) and share fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PLUGIN_ROOT.parents[1]
for _path in (PLUGIN_ROOT, REPO_ROOT, REPO_ROOT / "tests"):  # no-ops once installed / configured
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

from spiceflow_okx import __version__, config, plugin  # noqa: E402

from spiceflow_core.plugin.registry import VenueRegistry, register_venues  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def venue() -> plugin.OkxVenue:
    return plugin.OkxVenue()


@pytest.fixture
def registry() -> VenueRegistry:
    """A registry holding only this plugin (no install needed)."""
    registry = VenueRegistry()
    register_venues(registry, plugin, "spiceflow-okx", __version__, config.VENUE)
    assert not registry.failures, [f.line() for f in registry.failures]
    return registry
