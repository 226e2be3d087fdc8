"""The control API lets no one in who does not belong: bearer token (constant-time,
never logged), body limit, short error lines, validated query parameters, no CORS
unless configured, health probes; and a non-loopback address without a token is
refused at start. Real HTTP against a running pipeline."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from runtime_helpers import captured_logs, running, settings_for, toy_registry, wait_for

from spiceflow_core.runtime.orchestrator import Orchestrator
from spiceflow_core.testkit.toy import ToySimulator

pytestmark = pytest.mark.anyio
TOKEN = "s3cret-token-for-tests"


def _orchestrator(sim: ToySimulator, **api) -> Orchestrator:
    settings = settings_for("toy", ["AAA"], profiles=(), api={"enabled": True, "address": "127.0.0.1:0", **api})
    return Orchestrator(settings, toy_registry(), ["toy"], endpoint_overrides={"toy": sim.endpoints})


async def test_the_token_is_required_compared_exactly_and_never_logged():
    sim = ToySimulator(symbols=["AAA", "BBB"], rate=100)
    with captured_logs() as logs:
        async with sim.running(), running(_orchestrator(sim, token=TOKEN)) as orc:
            async with httpx.AsyncClient(base_url=f"http://{orc.api_address}") as http:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                    r = await http.get("/subscriptions", headers=headers)
                    assert r.status_code == 401 and r.json() == {"error": "missing or wrong bearer token"}
                    assert r.headers["www-authenticate"] == "Bearer"
                r = await http.post("/subscribe", json={"venue": "toy", "instrument": "BBB"})
                assert r.status_code == 401  # nothing changed
                ok = {"Authorization": f"Bearer {TOKEN}"}
                r = await http.post("/subscribe", json={"venue": "toy", "instrument": "BBB"}, headers=ok)
                assert r.status_code == 200, r.text
                assert (await http.get("/health/live")).status_code == 200  # probes need no token
    assert not any(TOKEN in line for line in logs)


async def _raw_post(address: str, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send a request head and some body bytes on a plain socket, return the answer (a
    server that refuses early may close before taking the rest of the body)."""
    import anyio

    host, port = address.rsplit(":", 1)
    async with await anyio.connect_tcp(host, int(port)) as stream:
        await stream.send(head)
        for part in body_parts:
            try:
                await stream.send(part)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                break
        answer = b""
        with anyio.move_on_after(5):
            while b"\r\n\r\n" not in answer:
                try:
                    answer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    break
        return answer


async def test_bodies_over_64_kib_are_refused_without_being_read_whole():
    sim = ToySimulator(symbols=["AAA"], rate=100)
    async with sim.running(), running(_orchestrator(sim)) as orc:
        # a declared length over the limit: refused before any body byte is read
        head = (
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
        )
        answer = await _raw_post(orc.api_address, head, [])
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # no length (chunked): refused as soon as the streamed body crosses the limit
        head = b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
        answer = await _raw_post(orc.api_address, head, [chunk] * 65)  # just over the limit
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        async with httpx.AsyncClient(base_url=f"http://{orc.api_address}") as http:
            r = await http.post("/subscribe", json={"venue": "toy", "instrument": "AAA"})
            assert r.status_code == 409  # a normal request right after: the API goes on


async def test_errors_are_one_short_json_line_and_queries_are_validated():
    sim = ToySimulator(symbols=["AAA"], rate=100)
    async with sim.running(), running(_orchestrator(sim)) as orc:
        async with httpx.AsyncClient(base_url=f"http://{orc.api_address}") as http:
            r = await http.post("/subscribe", json={"venue": "toy", "instrument": "Z" * 60_000})
            assert r.status_code == 404 and len(r.json()["error"]) < 400
            assert "(60000 characters)" in r.json()["error"]
            for limit in ("-1", "0", "abc", "100001"):
                r = await http.get("/instruments", params={"limit": limit})
                assert r.status_code == 400 and "limit must be an integer from 1 to" in r.json()["error"]
            r = await http.get("/no/such/path")
            assert r.status_code == 404 and r.json() == {"error": "Not Found"}
            r = await http.delete("/subscribe")
            assert r.status_code == 405 and "error" in r.json()
            r = await http.get("/subscriptions", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in r.headers  # no CORS unless configured


async def test_cors_only_for_the_configured_origins():
    sim = ToySimulator(symbols=["AAA"], rate=100)
    async with sim.running(), running(_orchestrator(sim, cors_origins=["https://desk.example"])) as orc:
        async with httpx.AsyncClient(base_url=f"http://{orc.api_address}") as http:
            r = await http.get("/subscriptions", headers={"Origin": "https://desk.example"})
            assert r.headers["access-control-allow-origin"] == "https://desk.example"
            r = await http.get("/subscriptions", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in r.headers


async def test_readiness_waits_for_every_subscription_to_be_synced():
    sim = ToySimulator(symbols=["AAA"], rate=100)
    sim.paused = True  # no updates: the first snapshot comes with the subscription
    async with sim.running(), running(_orchestrator(sim)) as orc:
        async with httpx.AsyncClient(base_url=f"http://{orc.api_address}") as http:
            assert (await http.get("/health/live")).json() == {"status": "live"}
            await wait_for(lambda: orc.runtimes["toy"].books.state_of("AAA") == "synced")
            r = await http.get("/health/ready")
            assert r.status_code == 200 and r.json() == {"status": "ready"}
            orc.runtimes["toy"].table.book("AAA").state = "stale"  # as a gap would leave it
            r = await http.get("/health/ready")
            assert r.status_code == 503 and r.json()["waiting"] == ["toy:AAA:book: stale"]


def test_a_non_loopback_address_without_a_token_is_refused_at_start():
    env = {k: v for k, v in os.environ.items() if k != "SPICEFLOW_API_TOKEN"}
    cmd = [sys.executable, "-m", "spiceflow_core.cli.main", "run", "--profile", "demo", "--api", "0.0.0.0:0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "is not a loopback address: set [api] token or SPICEFLOW_API_TOKEN" in proc.stderr
    ok = subprocess.run(
        [*cmd, "--duration", "0.5"], capture_output=True, text=True, timeout=60, env={**env, "SPICEFLOW_API_TOKEN": "t"}
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
