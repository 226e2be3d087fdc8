"""The control API and the Subscribe / Unsubscribe workflows, against the toy venue's
simulator, with real HTTP (httpx) and a real ZeroMQ subscriber."""

from __future__ import annotations

import httpx
import pytest
from runtime_helpers import Collector, assert_exact, running, settings_for, toy_registry, wait_for

from spiceflow_core.api.server import openapi_schema
from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.runtime.orchestrator import Orchestrator
from spiceflow_core.testkit.toy import ToySimulator

pytestmark = pytest.mark.anyio


def api_orchestrator(sim: ToySimulator, instruments: list[str]) -> Orchestrator:
    settings = settings_for("toy", instruments, profiles=(), api={"enabled": True, "address": "127.0.0.1:0"})
    return Orchestrator(settings, toy_registry(), ["toy"], endpoint_overrides={"toy": sim.endpoints})


async def test_subscribe_three_then_unsubscribe_one_while_running():
    import anyio

    sim = ToySimulator(symbols=["AAA", "BBB", "CCC"], rate=200)
    async with sim.running(), running(api_orchestrator(sim, [])) as orc:
        base = f"http://{orc.api_address}"
        async with (
            httpx.AsyncClient(base_url=base) as http,
            Subscriber(orc.broadcaster.address, ["book.toy."]) as sub,
            anyio.create_task_group() as tg,
        ):
            latest = Collector(sub)
            tg.start_soon(latest.run)
            for symbol in ("AAA", "BBB", "CCC"):
                r = await http.post("/subscribe", json={"venue": "toy", "instrument": symbol})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["topic"] == f"book.toy.{symbol}" and body["id"] == f"toy:{symbol}:book"
                await wait_for(lambda: symbol in latest.latest)
            subs = (await http.get("/subscriptions")).json()
            assert {s["symbol"] for s in subs} == {"AAA", "BBB", "CCC"}
            await wait_for(lambda: all(s["state"] == "synced" for s in http_sync_states(orc)))
            assert len(orc.runtimes["toy"].connections) == 1  # all three share one connection

            r = await http.post("/unsubscribe", json={"venue": "toy", "instrument": "BBB"})
            assert r.status_code == 200 and r.json()["state"] == "unsubscribed"
            assert any('"unsubscribe"' in f and "book.BBB" in f for f in sim.client_frames)  # the exchange saw it
            count = latest.latest["BBB"].topic_seq
            await wait_for(lambda: latest.count > 100)
            latest.latest.pop("BBB")
            await wait_for(lambda: latest.count > 200)
            assert "BBB" not in latest.latest  # its topic stopped
            assert {s["symbol"] for s in (await http.get("/subscriptions")).json()} == {"AAA", "CCC"}
            await assert_exact(sim, latest, orc.runtimes["toy"], ["AAA", "CCC"])  # the others are untouched and exact
            assert count > 0

            # unsubscribing the last instruments closes the connection
            for symbol in ("AAA", "CCC"):
                assert (await http.post("/unsubscribe", json={"venue": "toy", "instrument": symbol})).status_code == 200
            assert orc.runtimes["toy"].connection_states() == []
            tg.cancel_scope.cancel()


def http_sync_states(orc):
    return [
        s
        for runtime in orc.runtimes.values()
        for s in (d.__struct_fields__ and [{"state": d.state}] for d in runtime.list_subscriptions())
        for s in s
    ]


async def test_bad_requests_get_documented_status_codes_and_the_pipeline_is_unaffected():
    sim = ToySimulator(symbols=["AAA", "BBB"], rate=200)
    async with sim.running(), running(api_orchestrator(sim, ["AAA"])) as orc:
        async with httpx.AsyncClient(base_url=f"http://{orc.api_address}") as http:
            runtime = orc.runtimes["toy"]
            await wait_for(lambda: runtime.books.state_of("AAA") == "synced")
            cases = [
                ({"venue": "nope", "instrument": "AAA"}, 404, "unknown venue 'nope'"),
                ({"venue": "toy", "instrument": "AAX"}, 404, "unknown instrument 'AAX'"),
                ({"venue": "toy", "instrument": "AAA"}, 409, "already subscribed"),
                ({"venue": "toy", "instrument": "AAA", "feed": "candles"}, 400, "invalid request"),
                ({"venue": "toy", "instrument": "AAA", "colour": "red"}, 400, "unknown field"),
                ({"venue": "toy"}, 400, "name an instrument"),
                ({"venue": "toy", "instrument": "HALT"}, 400, "not trading"),
            ]
            for body, status, text in cases:
                r = await http.post("/subscribe", json=body)
                assert r.status_code == status, (body, r.text)
                assert text in r.json()["error"], (body, r.text)
            r = await http.post("/subscribe", content=b"{not json", headers={"content-type": "application/json"})
            assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
            r = await http.post("/unsubscribe", json={"venue": "toy", "instrument": "BBB"})
            assert r.status_code == 404 and "not subscribed" in r.json()["error"]
            r = await http.post("/subscribe", json={"venue": "toy", "instrument": "AAX"})
            assert "AAA" in r.json()["close_matches"]
            # normalized id and normalized fields resolve too
            r = await http.post("/subscribe", json={"instrument": "toy.spot.BBB.USD"})
            assert r.status_code == 200 and r.json()["symbol"] == "BBB", r.text
            r = await http.post("/subscribe", json={"venue": "toy", "kind": "spot", "base": "CCC", "quote": "USD"})
            assert r.status_code == 404  # CCC is not listed by this simulator
            assert runtime.books.state_of("AAA") == "synced"
            assert runtime.metrics.totals["reconnects"] == 0


async def test_instruments_health_status_and_openapi_endpoints():
    sim = ToySimulator(symbols=["AAA", "BBB"], rate=100)
    async with sim.running(), running(api_orchestrator(sim, ["AAA"])) as orc:
        async with httpx.AsyncClient(base_url=f"http://{orc.api_address}") as http:
            found = (await http.get("/instruments", params={"venue": "toy", "base": "BBB"})).json()
            assert [i["symbol"] for i in found] == ["BBB"] and found[0]["normalized"] == "toy.spot.BBB.USD"
            assert (await http.get("/instruments", params={"venue": "zzz"})).status_code == 404
            health = (await http.get("/health")).json()
            assert health["status"] == "ok" and health["venues"]["toy"]["subscriptions"] == 1
            await wait_for(lambda: orc.runtimes["toy"].metrics.totals["book_updates"] > 5)
            status = (await http.get("/status")).json()
            assert status["toy"]["counters"]["book_updates"] > 0
            schema = (await http.get("/openapi.json")).json()
            assert schema == openapi_schema()


def test_openapi_schema_is_valid_and_matches_the_routes():
    from openapi_spec_validator import validate

    from spiceflow_core.api.server import ControlApi

    schema = openapi_schema()
    validate(schema)
    routes = {
        (r.path, m)
        for r in ControlApi.__new__(ControlApi).__class__(_FakeOrc()).app.routes
        for m in r.methods
        if m != "HEAD"
    }
    documented = {(path, method.upper()) for path, ops in schema["paths"].items() for method in ops}
    assert routes == documented


class _FakeOrc:
    def __init__(self) -> None:
        self.runtimes: dict = {}
