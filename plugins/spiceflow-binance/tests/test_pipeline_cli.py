"""``spiceflow run --profile demo --venue binance`` as a user runs it: a subprocess that
starts the simulator and the full pipeline, streams books to a ZeroMQ subscriber, and
stops cleanly at --duration."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from spiceflow_core.broadcast.subscriber import SyncSubscriber
from spiceflow_core.ports import free_port

SPICEFLOW = Path(sys.executable).with_name("spiceflow")


def test_demo_run_streams_books_and_exits_cleanly(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [
            str(SPICEFLOW),
            "run",
            "--profile",
            "demo",
            "--venue",
            "binance",
            "--duration",
            "3",
            "--no-api",
            "--broadcast",
            address,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    books: dict[str, object] = {}
    try:
        with SyncSubscriber(address, ["book.binance."]) as sub:  # ZeroMQ reconnects until it binds
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(books) < 2:
                received = sub.receive(timeout_ms=200)
                if received is not None:
                    books[received.message.symbol] = received.message
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert set(books) == {"BTCUSDT", "ETHUSDT"}, out[-3000:]
    for msg in books.values():
        assert len(msg.bids) == len(msg.asks) == 25 and Decimal(msg.bids[0][0]) < Decimal(msg.asks[0][0])
    assert "binance simulator serving" in out
    assert "Traceback" not in out
