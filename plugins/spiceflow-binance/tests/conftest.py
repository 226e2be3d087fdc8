"""Make the plugin importable when it is not pip-installed yet (CI installs it editable)."""

import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1]
ROOT = PLUGIN.parents[1]
for path in (ROOT, PLUGIN):
    try:
        __import__("spiceflow_core" if path == ROOT else "spiceflow_binance")
    except ImportError:
        sys.path.insert(0, str(path))

RECORDED = Path("/work/shared/recorded")
if not (RECORDED / "BINANCE.0").exists():
    RECORDED = ROOT.parent / "shared" / "recorded"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def recorded() -> Path:
    if not (RECORDED / "BINANCE.0").exists():
        pytest.skip("shared/recorded not available")
    return RECORDED
