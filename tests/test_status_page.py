"""The status page (``GET /``) and its live feed (``GET /live``).

Over real HTTP against a running pipeline (toy venue, in process): the page's files are
served without the token and with a strict Content-Security-Policy; the feed is
protected, validates its instrument, streams the exact top-10 book of the chosen
instrument, serves a bounded number of streams and frees a slot when a client leaves.

In a real browser (Debian's headless Chromium driven by Playwright) against
``spiceflow run --profile demo`` as a subprocess with a token: without the token the
page shows the 401 and no data; with it, subscribing through the form shows a ladder
whose sequence moves; a bad instrument shows the error; unsubscribing removes the
ladder; SIGINT ends the live stream cleanly. The test takes a screenshot; with
SPICEFLOW_UPDATE_SCREENSHOT=1 it replaces docs/status-page.png (the README's picture).

The browser tests skip when /usr/bin/chromium or Playwright is missing, except under
CI=true, where they fail (.ci/run installs Chromium).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from runtime_helpers import running, settings_for, toy_registry, wait_for

from spiceflow_core.api.live import DEPTH, MAX_STREAMS
from spiceflow_core.ports import free_port
from spiceflow_core.runtime.orchestrator import Orchestrator
from spiceflow_core.testkit.toy import ToySimulator

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "page-token-7f3"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOT = ROOT / "docs" / "status-page.png"


# -- helpers ---------------------------------------------------------------------------
async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event name, decoded JSON data) for each server-sent event of a response."""
    name, data = "message", []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield name, json.loads("\n".join(data))
            name, data = "message", []


def _orchestrator(sim: ToySimulator) -> Orchestrator:
    settings = settings_for(
        "toy", ["AAA"], profiles=(), api={"enabled": True, "address": "127.0.0.1:0", "token": TOKEN}
    )
    return Orchestrator(settings, toy_registry(), ["toy"], endpoint_overrides={"toy": sim.endpoints})


@contextlib.asynccontextmanager
async def pipeline() -> AsyncIterator[tuple[ToySimulator, Orchestrator, httpx.AsyncClient]]:
    sim = ToySimulator(symbols=["AAA", "BBB"], rate=200)
    async with sim.running(), running(_orchestrator(sim)) as orc:
        async with httpx.AsyncClient(base_url=f"http://{orc.api_address}", timeout=10) as http:
            yield sim, orc, http


# -- the page's files and the feed's protection -------------------------------------------
@pytest.mark.anyio
async def test_the_page_is_served_without_the_token_and_every_data_path_needs_it():
    async with pipeline() as (_, _, http):
        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert (
            '<script src="/page/status.js"' in page.text
            and '<link rel="stylesheet" href="/page/status.css"' in page.text
        )
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        script = await http.get("/page/status.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert "Authorization" in script.text and "text/event-stream" in script.text
        style = await http.get("/page/status.css")
        assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
        for path in ("/live", "/live?instrument=toy:AAA", "/health", "/subscriptions", "/page/other.js"):
            r = await http.get(path)
            assert r.status_code == 401, (path, r.status_code)
            assert r.json() == {"error": "missing or wrong bearer token"}


@pytest.mark.anyio
async def test_the_feed_refuses_what_names_no_instrument_with_a_json_error():
    async with pipeline() as (_, _, http):
        cases = {
            "AAA": (400, "VENUE:SYMBOL"),
            "toy:": (400, "VENUE:SYMBOL"),
            "nope:AAA": (404, "unknown venue 'nope' (running: toy)"),
            "toy:AAB": (404, "unknown instrument 'AAB' on toy"),
            "toy:HALT": (400, "HALT"),
        }
        for instrument, (status, text) in cases.items():
            r = await http.get("/live", params={"instrument": instrument}, headers=AUTH)
            assert r.status_code == status, (instrument, r.text)
            assert r.headers["content-type"] == "application/json" and text in r.json()["error"], r.text
        r = await http.get("/live", params={"instrument": "toy:AAB"}, headers=AUTH)
        assert "AAA" in r.json()["close_matches"]
        r = await http.post("/live", headers=AUTH)
        assert r.status_code == 405 and "error" in r.json()
        r = await http.head("/live", headers=AUTH)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream") and not r.content


# -- what the feed streams ---------------------------------------------------------------
@pytest.mark.anyio
async def test_the_feed_streams_the_exact_top_ten_levels_and_the_status_numbers():
    async with pipeline() as (sim, orc, http):
        runtime = orc.runtimes["toy"]
        await wait_for(lambda: (feed := runtime.table.book("AAA")) is not None and feed.state == "synced")
        async with http.stream("GET", "/live", params={"instrument": "toy:AAA"}, headers=AUTH) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-store"
            events = sse_events(r)
            sequences = []
            while len(set(sequences)) < 3:  # the book moves between frames
                name, frame = await anext(events)
                assert name == "tick"
                book = frame["book"]
                assert book["venue"] == "toy" and book["symbol"] == "AAA" and book["state"] == "synced"
                assert len(book["bids"]) == DEPTH and len(book["asks"]) == DEPTH
                bid_prices = [float(p) for p, _ in book["bids"]]
                ask_prices = [float(p) for p, _ in book["asks"]]
                assert bid_prices == sorted(bid_prices, reverse=True) and ask_prices == sorted(ask_prices)
                assert bid_prices[0] < ask_prices[0]
                numbers = frame["venues"]["toy"]
                assert numbers["counters"]["book_updates"] > 0 and 0 < numbers["p50_ms"] <= numbers["p99_ms"]
                sequences.append(book["sequence"])
            assert sequences == sorted(sequences)

            # frozen market: once the pipeline holds the simulator's last update, a frame
            # shows exactly the simulator's top ten
            sim.paused = True
            try:
                seq, bids, asks = sim.truth("AAA")
                await wait_for(lambda: runtime.table.book("AAA").sync.last_sequence == seq)
                while (frame := (await anext(events))[1])["book"]["sequence"] != seq:
                    pass
                assert [tuple(level) for level in frame["book"]["bids"]] == bids[:DEPTH]
                assert [tuple(level) for level in frame["book"]["asks"]] == asks[:DEPTH]
            finally:
                sim.paused = False


@pytest.mark.anyio
async def test_an_instrument_without_a_book_subscription_streams_as_unsubscribed_then_appears():
    async with pipeline() as (_, _, http):
        async with http.stream("GET", "/live", params={"instrument": "toy:BBB"}, headers=AUTH) as r:
            events = sse_events(r)
            _, frame = await anext(events)
            assert frame["book"] == {
                "venue": "toy",
                "symbol": "BBB",
                "state": "unsubscribed",
                "reason": "",
                "sequence": None,
                "exchange_ts_ms": None,
                "bids": [],
                "asks": [],
            }
            assert (await http.post("/subscribe", json={"venue": "toy", "instrument": "BBB"}, headers=AUTH)).is_success
            while (frame := (await anext(events))[1])["book"]["state"] != "synced":
                pass
            assert len(frame["book"]["bids"]) == DEPTH and frame["book"]["sequence"] is not None
            assert (
                await http.post("/unsubscribe", json={"venue": "toy", "instrument": "BBB"}, headers=AUTH)
            ).is_success
            while (frame := (await anext(events))[1])["book"]["state"] != "unsubscribed":
                pass
            assert frame["book"]["bids"] == [] and frame["book"]["asks"] == []
        async with http.stream("GET", "/live", headers=AUTH) as r:  # no instrument: the numbers only
            _, frame = await anext(sse_events(r))
            assert frame["book"] is None and set(frame["venues"]) == {"toy"}


@pytest.mark.anyio
async def test_streams_are_bounded_and_a_client_that_leaves_frees_its_slot():
    async with pipeline() as (_, _, http):
        async with contextlib.AsyncExitStack() as streams:
            opened = []
            for _ in range(MAX_STREAMS):
                r = await streams.enter_async_context(http.stream("GET", "/live", headers=AUTH))
                assert r.status_code == 200
                opened.append(r)
            refused = await http.get("/live", headers=AUTH)
            assert refused.status_code == 503
            assert refused.json() == {"error": f"too many live streams (at most {MAX_STREAMS})"}
            await opened[0].aclose()  # this client goes away: its stream ends, its slot is free

            async def reopened() -> bool:
                async with http.stream("GET", "/live", headers=AUTH) as r:
                    return r.status_code == 200

            with anyio.fail_after(10):
                while not await reopened():
                    await anyio.sleep(0.05)


# -- in a real browser ---------------------------------------------------------------------
def _browser_or_skip() -> Any:
    """Playwright's sync API, or a skip (a failure under CI) naming what is missing."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install chromium; .ci/run does it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
        sync_playwright = None
    if missing:
        reason = "the status page's browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return sync_playwright


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``spiceflow run --profile demo`` (Binance with ETHUSDT, Deribit with its defaults)
    on free ports, the token in SPICEFLOW_API_TOKEN."""
    api, zmq_port = free_port(), free_port()
    config = tmp_path / "spiceflow.toml"
    config.write_text(f"""
[venues.binance]
instruments = ["ETHUSDT"]
[venues.deribit]
[api]
address = "127.0.0.1:{api}"
[broadcast]
address = "tcp://127.0.0.1:{zmq_port}"
status_interval = 1.0
""")
    command = [sys.executable, "-m", "spiceflow_core.cli.main", "run", "--config", str(config), "--profile", "demo"]
    proc = subprocess.Popen(
        [*command, "--venue", "binance", "--venue", "deribit"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "SPICEFLOW_API_TOKEN": TOKEN},
    )
    try:
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "control API on" in line:
                break
            if proc.poll() is not None:
                pytest.fail("the demo exited:\n" + "".join(seen) + proc.stdout.read())
        else:
            pytest.fail("the control API never came up:\n" + "".join(seen))
        yield f"http://127.0.0.1:{api}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_status_page_in_a_real_browser(demo, tmp_path: Path):
    sync_playwright = _browser_or_skip()
    from playwright.sync_api import expect

    base, proc = demo
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 760})
            page_errors: list[str] = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            expect.set_options(timeout=20_000)  # a hang guard, not a speed check

            # without the token: the 401, and no data anywhere
            page.goto(base + "/")
            expect(page.locator("#error")).to_contain_text("HTTP 401: missing or wrong bearer token")
            expect(page.locator("#feed-state")).to_have_text("no access")
            expect(page.locator("#venues tbody tr")).to_have_count(0)
            expect(page.locator("#subscriptions tbody tr")).to_have_count(0)
            expect(page.locator("#ladder")).to_be_hidden()

            # with it: venues, connections and the configured subscriptions
            page.fill("#token", TOKEN)
            page.click("#token-form button[type=submit]")
            expect(page.locator("#error")).to_be_hidden()
            expect(page.locator("#venues tbody tr")).to_have_count(2)
            expect(page.locator('#venues tr[data-venue="binance"]')).to_contain_text("1/1 up")
            expect(page.locator('#subscriptions tr[data-id="binance:ETHUSDT:book"]')).to_contain_text("synced")
            assert page.evaluate("sessionStorage.getItem('spiceflow.apiToken')") == TOKEN

            # a bad instrument: the API's error, with its close matches
            page.select_option("#sub-venue", "binance")
            page.fill("#sub-instrument", "BTCUSDX")
            page.click("#subscribe")
            expect(page.locator("#sub-result")).to_contain_text("HTTP 404: unknown instrument 'BTCUSDX' on binance")
            expect(page.locator("#sub-result")).to_contain_text("BTCUSDT")

            # subscribe through the form: its ladder appears and moves
            page.fill("#sub-instrument", "BTCUSDT")
            page.click("#subscribe")
            expect(page.locator("#sub-result")).to_contain_text("subscribed binance:BTCUSDT:book")
            expect(page.locator("#ladder-title")).to_have_text("binance:BTCUSDT")
            expect(page.locator("#ladder-state")).to_have_text("synced")
            expect(page.locator("#ladder tbody tr")).to_have_count(10)
            expect(page.locator("#ladder-seq")).to_have_text(re.compile(r"^\d+$"))
            first = page.locator("#ladder-seq").inner_text()
            expect(page.locator("#ladder-seq")).not_to_have_text(first)
            expect(page.locator('#subscriptions tr[data-id="binance:BTCUSDT:book"]')).to_contain_text("synced")
            expect(page.locator("#latency-legend")).to_contain_text("binance p50")
            expect(page.locator("#latency-legend")).to_contain_text("deribit p50")
            # a few seconds of latency history, so the picture shows a chart
            expect(page.locator("#latency")).to_have_attribute("data-points", re.compile(r"^([3-9]\d|\d{3,})$"))
            # the README's picture is replaced only on request: a test run leaves the
            # tree as it found it
            shot = DOCS_SCREENSHOT if os.environ.get("SPICEFLOW_UPDATE_SCREENSHOT") else tmp_path / "status-page.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000

            # unsubscribe through the form: the subscription and its ladder are gone
            page.click("#unsubscribe")
            expect(page.locator("#sub-result")).to_contain_text("unsubscribed binance:BTCUSDT:book")
            expect(page.locator('#subscriptions tr[data-id="binance:BTCUSDT:book"]')).to_have_count(0)
            expect(page.locator("#ladder")).to_be_hidden()
            expect(page.locator("#ladder-empty")).to_have_text("binance:BTCUSDT has no book subscription.")

            # shutdown: the live stream ends with its last event, the page says so
            expect(page.locator("#feed-state")).to_have_text("live")
            with httpx.Client(base_url=base, headers=AUTH, timeout=10) as http:
                with http.stream("GET", "/live") as r:
                    lines = r.iter_lines()
                    assert next(lines) == "event: tick"
                    proc.send_signal(signal.SIGINT)
                    rest = list(lines)  # reads to the end of the body: a reset would raise
            assert [line for line in rest if line][-2:] == ["event: end", 'data: {"reason":"shutdown"}'], rest[-4:]
            expect(page.locator("#feed-state")).to_have_text("server stopped")
            assert proc.wait(timeout=30) == 0
            assert page_errors == []
        finally:
            browser.close()
