import sys
from pathlib import Path

import pytest

# the chaos helpers (oracle.py, harness.py) are imported as top-level modules, like
# tests/runtime_helpers.py
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def anyio_backend():
    return "asyncio"
