"""Make the plugin importable when it is not installed (the tests run from the repo
root with --import-mode=importlib), and share the recording path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PLUGIN_ROOT.parents[1]
for _path in (PLUGIN_ROOT, REPO_ROOT):  # no-ops once the distributions are installed
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

RECORDING = Path(__file__).resolve().parents[3].parent / "shared" / "recorded" / "DERIBIT"


@pytest.fixture
def recording() -> str:
    if not Path(str(RECORDING) + ".ws.1.0").exists():
        pytest.skip(f"recorded session not found at {RECORDING}")
    return str(RECORDING)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
