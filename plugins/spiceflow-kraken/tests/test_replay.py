"""A Kraken session in the documented text capture format (``shared/recorded/README.md``:
``URL <-> CONNECT_TS``, ``URL <- SEND_TS: FRAME``, ``RECEIVE_TS: FRAME``; REST
``URL -> TS: BODY`` in ``PREFIX.0``) is read back by ``spiceflow replay``, which finds the
venue from the ``KRAKEN`` prefix and rebuilds exact, checksum-verified books."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
import websockets.asyncio.client as ws_client
from spiceflow_kraken import config
from spiceflow_kraken.plugin import Kraken

SPICEFLOW = Path(sys.executable).with_name("spiceflow")
SYMBOLS = ["BTC/USD", "ETH/USD"]


async def record(prefix: Path) -> dict:
    """Record a session from the simulator; the truth at its end, per symbol."""
    async with Kraken().simulator(symbols=SYMBOLS, rate=50) as sim:
        rest_url = sim.endpoints.rest_url + config.INSTRUMENTS_PATH
        async with httpx.AsyncClient() as client:
            body = (await client.get(rest_url)).text
        Path(f"{prefix}.0").write_text(f"{rest_url} -> {time.time():.6f}: {body}\n")
        url = sim.endpoints.ws_url
        lines = [f"{url} <-> {time.time():.6f}"]
        async with ws_client.connect(url) as ws:
            request = json.dumps(
                {"method": "subscribe", "params": {"channel": "book", "symbol": SYMBOLS, "depth": 25}, "req_id": 1}
            )
            await ws.send(request)
            lines.append(f"{url} <- {time.time():.6f}: {request}")
            books = 0
            while books < 200:
                frame = await ws.recv()
                lines.append(f"{time.time():.6f}: {frame}")
                books += '"channel":"book"' in frame
            sim.paused = True
            with anyio.move_on_after(0.2):  # the frames already on their way
                while True:
                    lines.append(f"{time.time():.6f}: {await ws.recv()}")
        Path(f"{prefix}.ws.1.0").write_text("\n".join(lines) + "\n")
        return {s: sim.truth_top(s, 25) for s in SYMBOLS}


@pytest.mark.slow
def test_spiceflow_replay_reads_a_kraken_capture(tmp_path):
    if not SPICEFLOW.exists():
        pytest.skip("no spiceflow script next to this Python")
    prefix = tmp_path / config.CAPTURE_PREFIX
    truth = anyio.run(record, prefix)
    out = tmp_path / "books.jsonl"
    proc = subprocess.run(
        [str(SPICEFLOW), "replay", str(prefix), "--jsonl", str(out)],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "replay kraken:" in report and "1 REST answers, 2 snapshots" in report, report
    assert "2/2 books in sync, 0 gaps, 0 bad frames" in report, report
    verified = re.search(r"checksums (\d+) verified (\d+) failed", report)
    assert verified is not None and int(verified.group(1)) > 0 and verified.group(2) == "0", report
    last = {}
    for line in out.read_text().splitlines():
        msg = json.loads(line)
        if msg.get("type") == "book":
            last[msg["symbol"]] = msg
    for symbol, (seq, bids, asks) in truth.items():
        msg = last[symbol]
        assert msg["sequence"] == seq
        assert [tuple(level) for level in msg["bids"]] == [tuple(level) for level in bids]
        assert [tuple(level) for level in msg["asks"]] == [tuple(level) for level in asks]
        assert msg["checksum_verified"] is True
