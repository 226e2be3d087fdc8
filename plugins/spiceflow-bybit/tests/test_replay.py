"""A text capture (``shared/recorded`` format) of a Bybit linear session, written from
simulator frames, replays through ``spiceflow replay`` to the simulator's truth at every
update id; the ``BYBIT`` prefix names the venue (``capture_prefixes``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import msgspec
import pytest
from spiceflow_bybit import config
from spiceflow_bybit.simulator import BybitSimulator
from websockets.asyncio.client import connect

pytestmark = pytest.mark.anyio

SPICEFLOW = Path(sys.executable).with_name("spiceflow")
SYMBOL = "BTCUSDT"
DEPTH = 5


async def record(prefix: Path) -> dict[int, tuple[list, list]]:
    """Write ``<prefix>.0`` (instruments-info + configuration) and ``<prefix>.ws.1.0``
    (one subscribed session); return the truth's top ``DEPTH`` per update id."""
    truth: dict[int, tuple[list, list]] = {}
    async with BybitSimulator(config.LINEAR, symbols=[SYMBOL, "ETHUSDT"], rate=200) as sim:

        def on_update(symbol: str, u: int) -> None:
            if symbol == SYMBOL:
                _, bids, asks = sim.truth_top(symbol, DEPTH)
                truth[u] = (bids, asks)

        sim.on_update = on_update
        _, bids, asks = sim.truth_top(SYMBOL, DEPTH)
        truth[sim.truth(SYMBOL)[0]] = (bids, asks)
        url = sim.endpoints.ws_url
        rest = f"{config.LIVE_REST}{config.INSTRUMENTS_PATH}?category=linear&limit=1000"
        rows = [{k: v for k, v in sim._row(b).items()} for b in sim._books.values()]
        body = {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": rows, "nextPageCursor": ""}}
        live_ws = config.LINEAR.endpoints.ws_url
        lines = [f"{live_ws} <-> {time.time():.6f}"]
        async with connect(url) as ws:
            request = json.dumps({"op": "subscribe", "req_id": "1", "args": [config.book_topic(50, SYMBOL)]})
            lines.append(f"{live_ws} <- {time.time():.6f}: {request}")
            await ws.send(request)
            with anyio.fail_after(10):
                while len(lines) < 150:
                    frame = await ws.recv()
                    lines.append(f"{time.time():.6f}: {frame}")
    configuration = {"l2_book": [SYMBOL]}
    Path(f"{prefix}.0").write_text(
        f"{rest} -> {time.time():.6f}: {msgspec.json.encode(body).decode()}\nconfiguration: {json.dumps(configuration)}\n"
    )
    Path(f"{prefix}.ws.1.0").write_text("\n".join(lines) + "\n")
    return truth


async def test_a_capture_of_simulator_frames_replays_to_the_truth(tmp_path):
    prefix = tmp_path / config.LINEAR.capture_prefix
    truth = await record(prefix)
    out = tmp_path / "books.jsonl"
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(
        [str(SPICEFLOW), "replay", str(prefix), "--jsonl", str(out), "--depth", str(DEPTH)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 gaps" in proc.stderr, proc.stderr
    # book lines (status lines carry no levels)
    lines = [line for line in map(json.loads, out.read_text().splitlines()) if "bids" in line]
    assert len(lines) > 100
    assert {line["venue"] for line in lines} == {"bybit-linear"}
    for line in lines:
        want = truth[line["sequence"]]
        assert ([tuple(x) for x in line["bids"]], [tuple(x) for x in line["asks"]]) == want, line["sequence"]
