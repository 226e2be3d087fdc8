"""``spiceflow run --profile demo --profile ws-only --venue deribit`` as a user runs it:
the WebSocketOnly workflow against the demo simulator completes at the first heartbeat."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SPICEFLOW = Path(sys.executable).with_name("spiceflow")


def test_ws_only_demo_reports_connect_and_first_heartbeat(tmp_path):
    # the simulator sends test_requests every 0.5 s instead of Deribit's minimum 10 s
    env = {**os.environ, "NO_COLOR": "1", "SPICEFLOW_DERIBIT_SIM_HEARTBEAT": "0.5"}
    env.pop("DERIBIT_CLIENT_ID", None)
    proc = subprocess.run(
        [str(SPICEFLOW), "run", "--profile", "demo", "--profile", "ws-only", "--venue", "deribit"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    line = re.search(r"ws-only deribit: connected after (\d+) ms, first heartbeat after (\d+) ms", proc.stdout)
    assert line, out[-3000:]
    assert int(line[2]) < 5000
    assert "Traceback" not in out
