"""``spiceflow run --profile demo --profile ws-only --venue okx`` as a user runs it, and
``spiceflow replay`` of a text capture (needs the plugin pip-installed: the CLI finds
venues through the ``spiceflow.venues`` entry point)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import anyio
import pytest

SPICEFLOW = Path(sys.executable).with_name("spiceflow")
INSTALLED = any(ep.name == "okx" for ep in metadata.entry_points(group="spiceflow.venues"))
pytestmark = pytest.mark.skipif(not INSTALLED, reason="spiceflow-okx not pip-installed")


def spiceflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([str(SPICEFLOW), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_ws_only_demo_reports_connect_and_first_heartbeat(tmp_path):
    proc = spiceflow("run", "--profile", "demo", "--profile", "ws-only", "--venue", "okx", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"ws-only okx: connected after (\d+) ms, first heartbeat after (\d+) ms", proc.stdout), out
    assert "Traceback" not in out


async def _capture(sim, path: Path, seconds: float = 0.6) -> None:
    """A session in the documented text capture format (shared/recorded/README.md),
    written from the simulator's own frames: connect, subscribe, then what it sends."""
    from websockets.asyncio.client import connect

    url = sim.endpoints.ws_url
    request = (
        '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"trades","instId":"BTC-USDT"}]}'
    )
    lines = [f"{url} <-> 1700000000.0"]
    async with connect(url) as ws:
        lines.append(f"{url} <- 1700000000.1: {request}")
        await ws.send(request)
        with anyio.move_on_after(seconds):
            n = 0
            async for frame in ws:
                n += 1
                lines.append(f"{1700000000.2 + n / 1000:.3f}: {frame}")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.anyio
async def test_replay_reads_a_text_capture(registry, tmp_path):
    async with registry.get("okx").simulator(symbols=["BTC-USDT"], rate=50) as sim:
        await _capture(sim, tmp_path / "OKX.ws.1.0")
    text = (tmp_path / "OKX.ws.1.0").read_text()
    assert '"action":"snapshot"' in text and text.count('"action":"update"') > 5
    proc = await anyio.to_thread.run_sync(
        lambda: spiceflow("replay", str(tmp_path / "OKX"), "--jsonl", str(tmp_path / "out.jsonl"), cwd=tmp_path)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = re.search(r"replay okx: (\d+) frames.*?(\d+) deltas.*?(\d+)/(\d+) books in sync, (\d+) gaps", proc.stderr)
    assert line, proc.stderr
    frames, deltas, synced, books, gaps = map(int, line.groups())
    assert frames > deltas > 5 and (synced, books, gaps) == (1, 1, 0)
    assert (tmp_path / "out.jsonl").read_text().count('"checksum_verified":true') > 5
