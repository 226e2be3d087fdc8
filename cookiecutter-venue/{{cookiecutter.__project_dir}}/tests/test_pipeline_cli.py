"""The bring-up loop through the ``spiceflow`` command line, as a user runs it, and
``spiceflow replay`` of a text capture of the venue's frames.

These need the plugin pip-installed (``pip install -e .``): the CLI finds venues through
the ``spiceflow.venues`` entry point. They are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import anyio
import pytest
from {{ cookiecutter.__package }} import config
from websockets.asyncio.client import connect

SPICEFLOW = Path(sys.executable).with_name("spiceflow")
INSTALLED = any(ep.name == config.VENUE for ep in metadata.entry_points(group="spiceflow.venues"))

pytestmark = [
    pytest.mark.skipif(not INSTALLED, reason="plugin not pip-installed (pip install -e .)"),
    pytest.mark.skipif(not SPICEFLOW.exists(), reason="no spiceflow script next to this Python"),
]


def spiceflow(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    return subprocess.run([str(SPICEFLOW), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_spiceflow_venues_lists_the_plugin(tmp_path):
    result = spiceflow("venues", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert config.VENUE in names


def test_ws_only_against_the_demo_simulator(tmp_path):
    result = spiceflow("run", "--profile", "demo", "--profile", "ws-only", "--venue", config.VENUE, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ws-only {config.VENUE}: connected after" in result.stdout
    assert "first heartbeat after" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_ws_only_against_spiceflow_simulate(tmp_path):
    """The loop a developer runs by hand: a simulator in one terminal, the client in another."""
    sim = subprocess.Popen(
        [str(SPICEFLOW), "simulate", "--venue", config.VENUE, "--duration", "60"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sim.stdout is not None
        first = sim.stdout.readline()  # "<venue>: ws_url=ws://127.0.0.1:PORT/... rest_url=http://..."
        assert first.startswith(f"{config.VENUE}: ws_url="), first
        ws_url = first.split("ws_url=")[1].split()[0]
        result = spiceflow("run", "--profile", "ws-only", "--venue", config.VENUE, "--endpoint", ws_url, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "first heartbeat after" in result.stdout
    finally:
        sim.terminate()
        sim.wait(timeout=10)


# -- replay of a text capture ---------------------------------------------------------
SYMBOL = "BTCUSDT"
DEPTH = 5


async def record(venue, prefix: Path) -> dict[int, tuple[list, list]]:
    """Write ``<prefix>.ws.1.0``: one session in the text capture format
    (``URL <-> CONNECT_TS``, ``URL <- SEND_TS: FRAME``, ``RECEIVE_TS: FRAME``) made of the
    simulator's frames; return the simulator's best levels at every sequence it sent."""
    truth: dict[int, tuple[list, list]] = {}
    async with venue.simulator(symbols=[SYMBOL], rate=200) as sim:

        def on_update(symbol: str, sequence: int) -> None:
            _, bids, asks = sim.truth_top(symbol, DEPTH)
            truth[sequence] = (bids, asks)

        sim.on_update = on_update
        on_update(SYMBOL, sim.truth(SYMBOL)[0])
        [request] = venue.new_session().subscribe([sim.channel(SYMBOL)])
        url = sim.endpoints.ws_url
        lines = [f"{url} <-> {time.time():.6f}", f"{url} <- {time.time():.6f}: {request.frame}"]
        async with connect(url) as ws:
            await ws.send(request.frame)
            with anyio.fail_after(10):
                while len(lines) < 150:
                    lines.append(f"{time.time():.6f}: {await ws.recv()}")
    Path(f"{prefix}.ws.1.0").write_text("\n".join(lines) + "\n")
    return truth


@pytest.mark.anyio
async def test_replay_of_a_capture_rebuilds_the_books_of_the_truth(venue, tmp_path):
    """``spiceflow replay <dir>/<CAPTURE_PREFIX>`` finds the venue by the capture's name
    (``capture_prefixes``) and rebuilds, message by message, the book the simulator had."""
    prefix = tmp_path / config.CAPTURE_PREFIX
    truth = await record(venue, prefix)
    out = tmp_path / "books.jsonl"
    result = await anyio.to_thread.run_sync(
        lambda: spiceflow("replay", str(prefix), "--jsonl", str(out), "--depth", str(DEPTH), cwd=tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1/1 books in sync, 0 gaps" in result.stderr, result.stderr
    books = [line for line in map(json.loads, out.read_text().splitlines()) if "bids" in line]
    assert len(books) > 100
    for book in books:
        assert book["venue"] == config.VENUE
        levels = ([tuple(level) for level in book["bids"]], [tuple(level) for level in book["asks"]])
        assert levels == truth[book["sequence"]], book["sequence"]
