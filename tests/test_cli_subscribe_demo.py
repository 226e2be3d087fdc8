"""The user's loop, as processes: `spiceflow run --profile demo` with no instruments,
then `spiceflow subscribe` / `unsubscribe` / `subscriptions` and `spiceflow tail --json
--limit` against it — real HTTP, real ZeroMQ, real simulator sockets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spiceflow_core.ports import free_port

SPICEFLOW = [sys.executable, "-m", "spiceflow_core.cli.main"]


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*SPICEFLOW, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def demo(tmp_path: Path):
    api, zmq_port = free_port(), free_port()
    config = tmp_path / "spiceflow.toml"
    config.write_text(f"""
[venues.binance]
instruments = []
[api]
address = "127.0.0.1:{api}"
[broadcast]
address = "tcp://127.0.0.1:{zmq_port}"
status_interval = 1.0
""")
    proc = subprocess.Popen(
        [*SPICEFLOW, "run", "--config", str(config), "--profile", "demo", "--venue", "binance"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "control API on" in line:
            break
        if proc.poll() is not None:
            pytest.fail("demo exited: " + proc.stdout.read())
    else:
        proc.kill()
        pytest.fail("control API never came up")
    yield f"127.0.0.1:{api}", f"tcp://127.0.0.1:{zmq_port}"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_subscribe_tail_unsubscribe_through_the_cli(demo):
    api, zmq_address = demo
    for symbol in ("BTCUSDT", "ETHUSDT", "ADAUSDT"):
        result = cli("subscribe", "binance", symbol, "--api", api)
        assert result.returncode == 0, result.stderr
        assert f"topic=book.binance.{symbol}" in result.stdout
    tail = cli("tail", "book.binance.ADAUSDT", "--address", zmq_address, "--json", "--limit", "3")
    assert tail.returncode == 0, tail.stderr
    messages = [json.loads(line) for line in tail.stdout.splitlines()]
    assert len(messages) == 3 and all(m["topic"] == "book.binance.ADAUSDT" and m["type"] == "book" for m in messages)
    assert all(len(m["bids"]) == 25 and m["bids"][0][0] < m["asks"][0][0] for m in messages)

    listed = cli("subscriptions", "--api", api, "--json")
    assert {json.loads(line)["symbol"] for line in listed.stdout.splitlines()} == {"BTCUSDT", "ETHUSDT", "ADAUSDT"}
    assert cli("unsubscribe", "binance", "ETHUSDT", "--api", api).returncode == 0
    listed = cli("subscriptions", "--api", api, "--json")
    assert {json.loads(line)["symbol"] for line in listed.stdout.splitlines()} == {"BTCUSDT", "ADAUSDT"}

    bad = cli("subscribe", "binance", "BTCUSDX", "--api", api)
    assert bad.returncode == 1 and "HTTP 404" in bad.stderr and "BTCUSDT" in bad.stderr
    dup = cli("subscribe", "binance", "BTCUSDT", "--api", api)
    assert dup.returncode == 1 and "HTTP 409" in dup.stderr
    status = cli("status", "--api", api)
    assert status.returncode == 0 and "binance:" in status.stdout and "book_updates=" in status.stdout
