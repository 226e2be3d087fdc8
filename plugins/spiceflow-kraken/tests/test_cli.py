"""The bring-up loop through the ``spiceflow`` command line, as a user runs it.

These need the plugin pip-installed (``pip install -e .``): the CLI finds venues through
the ``spiceflow.venues`` entry point. They are skipped otherwise.
"""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from spiceflow_kraken import config

SPICEFLOW = Path(sys.executable).with_name("spiceflow")
INSTALLED = any(ep.name == config.VENUE for ep in metadata.entry_points(group="spiceflow.venues"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not INSTALLED, reason="plugin not pip-installed (pip install -e .)"),
    pytest.mark.skipif(not SPICEFLOW.exists(), reason="no spiceflow script next to this Python"),
]


def spiceflow(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
        first = sim.stdout.readline()  # "<venue>: ws_url=ws://127.0.0.1:PORT/... rest_url=http://..."
        assert first.startswith(f"{config.VENUE}: ws_url="), first
        ws_url = first.split("ws_url=")[1].split()[0]
        result = spiceflow("run", "--profile", "ws-only", "--venue", config.VENUE, "--endpoint", ws_url, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "first heartbeat after" in result.stdout
    finally:
        sim.terminate()
        sim.wait(timeout=10)
