"""Make the plugin and the repo's test helpers importable when the tests run from the
repo root (``--import-mode=importlib``) or before the plugin is installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PLUGIN_ROOT.parents[1]
for _path in (PLUGIN_ROOT, REPO_ROOT / "tests"):  # no-ops once the distributions are installed
    if str(_path) not in sys.path:
        sys.path.append(str(_path))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
