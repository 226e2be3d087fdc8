"""Make the plugin (and this directory's ``nats_testing`` helpers) importable when the
distribution is not installed -- the tests run from the repo root with
--import-mode=importlib -- and give each test a real nats-server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PLUGIN_ROOT = TESTS.parent
REPO_ROOT = PLUGIN_ROOT.parents[1]
for _path in (TESTS, PLUGIN_ROOT, REPO_ROOT):  # the last two: no-ops once installed
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

from nats_testing import Wire  # noqa: E402

from spiceflow_core.broadcast.publisher import Publisher  # noqa: E402
from spiceflow_core.cluster.nats_server import NatsServer  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def nats_server() -> AsyncIterator[NatsServer]:
    async with NatsServer() as server:
        yield server


@pytest.fixture
def wire() -> Iterator[Wire]:
    with Publisher("tcp://127.0.0.1:*") as publisher:
        yield Wire(publisher)
