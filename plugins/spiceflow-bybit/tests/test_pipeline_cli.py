"""``spiceflow run --profile demo --profile ws-only --venue <bybit venue>`` as a user runs
it: the WebSocketOnly workflow against the demo simulator ends at the first pong."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SPICEFLOW = Path(sys.executable).with_name("spiceflow")


@pytest.mark.parametrize("venue", ["bybit-linear", "bybit-spot", "bybit-inverse"])
def test_ws_only_demo_reports_connect_and_first_heartbeat(tmp_path, venue):
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(SPICEFLOW), "run", "--profile", "demo", "--profile", "ws-only", "--venue", venue],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(rf"ws-only {venue}: connected after (\d+) ms, first heartbeat after (\d+) ms", proc.stdout), out[
        -3000:
    ]
    assert "Traceback" not in out
