"""RestClient against real loopback servers: what a failure says (URL, time, attempts,
cause), what is retried and what is not, rate-limit pauses, spacing, and the public
response seam (status, headers, body) the Binance plugin reads its weight from."""

from __future__ import annotations

import time

import anyio
import pytest
from net_servers import BAD_REQUEST, FORBIDDEN, UNRESOLVABLE_HOST, answering_server, closed_port, silent_server

from spiceflow_core.plugin.rest import RestClient, RestError, RestResponse
from spiceflow_core.testkit import HttpAnswer, LoopbackServer, json_answer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def _no_ws(conn) -> None:
    await conn.close()


class Scripted:
    """An HTTP handler answering from a script (then 200s), noting when each request came."""

    def __init__(self, *answers: HttpAnswer) -> None:
        self.answers = list(answers)
        self.arrivals: list[float] = []

    async def __call__(self, path: str, params: dict[str, str]) -> HttpAnswer:
        self.arrivals.append(time.monotonic())
        if self.answers:
            return self.answers.pop(0)
        return json_answer({"ok": True, "path": path}, headers={"X-Thing": "42"})


async def test_refused_says_where_how_long_and_how_often():
    port = closed_port()
    async with RestClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.01) as rest:
        with pytest.raises(RestError) as err:
            await rest.get_bytes("/api/v3/exchangeInfo")
    message = str(err.value)
    assert message.startswith(f"GET http://127.0.0.1:{port}/api/v3/exchangeInfo failed after ")
    assert "(3 attempts)" in message and f"connection refused (127.0.0.1:{port})" in message
    assert rest.failures == 3


async def test_dns_failure():
    async with RestClient(f"https://{UNRESOLVABLE_HOST}", retries=0) as rest:
        with pytest.raises(RestError) as err:
            await rest.get_bytes("/x")
    assert f"https://{UNRESOLVABLE_HOST}/x" in str(err.value)
    assert "(1 attempt)" in str(err.value) and f"DNS lookup failed for {UNRESOLVABLE_HOST}" in str(err.value)


async def test_timeout_uses_the_public_timeout_setting():
    async with silent_server() as port, RestClient(f"http://127.0.0.1:{port}", retries=1, backoff=0.01) as rest:
        rest.timeout = 0.2
        assert rest.timeout == 0.2
        with pytest.raises(RestError) as err:
            await rest.get_bytes("/slow")
    assert "(2 attempts)" in str(err.value) and "timeout (after 0.2 s)" in str(err.value)


async def test_tls_error():
    async with answering_server(BAD_REQUEST) as port, RestClient(f"https://127.0.0.1:{port}", retries=0) as rest:
        with pytest.raises(RestError) as err:
            await rest.get_bytes("/x")
    assert f"https://127.0.0.1:{port}/x" in str(err.value) and "TLS error" in str(err.value)


async def test_a_client_error_is_final_and_quoted():
    async with answering_server(FORBIDDEN) as port, RestClient(f"http://127.0.0.1:{port}", retries=3) as rest:
        with pytest.raises(RestError) as err:
            await rest.get_bytes("/private")
    assert "(1 attempt)" in str(err.value) and "HTTP 403 Forbidden: forbidden" in str(err.value)
    assert rest.requests == 1 and rest.failures == 1


async def test_server_errors_are_retried_until_attempts_run_out():
    script = Scripted(*[json_answer({"msg": "overloaded"}, status=503)] * 3)
    async with LoopbackServer(ws=_no_ws, http=script) as server:
        async with RestClient(server.http_url, retries=2, backoff=0.01) as rest:
            with pytest.raises(RestError) as err:
                await rest.get_bytes("/busy")
    assert "(3 attempts)" in str(err.value) and 'HTTP 503 Service Unavailable: {"msg":"overloaded"}' in str(err.value)
    assert len(script.arrivals) == 3


async def test_a_server_error_then_success_returns_the_body():
    script = Scripted(json_answer({}, status=500))
    async with LoopbackServer(ws=_no_ws, http=script) as server:
        async with RestClient(server.http_url, retries=2, backoff=0.01) as rest:
            body = await rest.get_bytes("/flaky")
    assert body == b'{"ok":true,"path":"/flaky"}'
    assert rest.failures == 1 and rest.requests == 2


async def test_429_pauses_every_request_of_the_client_for_retry_after():
    script = Scripted(json_answer({"code": -1003}, status=429, headers={"Retry-After": "0.3"}))
    async with LoopbackServer(ws=_no_ws, http=script) as server:
        async with RestClient(server.http_url, retries=2, backoff=0.01) as rest:
            results: list[bytes] = []

            async def fetch(path: str) -> None:
                results.append(await rest.get_bytes(path))

            async with anyio.create_task_group() as tg:
                tg.start_soon(fetch, "/first")
                await anyio.sleep(0.05)  # the 429 has come back: the pause is on
                tg.start_soon(fetch, "/second")
    assert sorted(results) == [b'{"ok":true,"path":"/first"}', b'{"ok":true,"path":"/second"}']
    assert rest.rate_limited == 1 and rest.failures == 0
    limited, *later = script.arrivals
    assert len(later) == 2 and all(t - limited >= 0.3 for t in later)


async def test_418_without_retry_after_pauses_for_the_backoff():
    script = Scripted(HttpAnswer(418, b"banned"))
    async with LoopbackServer(ws=_no_ws, http=script) as server:
        async with RestClient(server.http_url, retries=1, backoff=0.2) as rest:
            await rest.get_bytes("/x")
    assert rest.rate_limited == 1
    assert script.arrivals[1] - script.arrivals[0] >= 0.2


async def test_rate_limits_count_as_attempts():
    script = Scripted(*[HttpAnswer(429, b"slow down", {"Retry-After": "0"})] * 3)
    async with LoopbackServer(ws=_no_ws, http=script) as server:
        async with RestClient(server.http_url, retries=2, backoff=0.01) as rest:
            with pytest.raises(RestError) as err:
                await rest.get_bytes("/x")
    assert "(3 attempts)" in str(err.value) and "HTTP 429 Too Many Requests: slow down" in str(err.value)


async def test_min_interval_spaces_requests():
    script = Scripted()
    async with LoopbackServer(ws=_no_ws, http=script) as server:
        async with RestClient(server.http_url, min_interval=0.2) as rest:
            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(rest.get_bytes, f"/{i}")
    gaps = [b - a for a, b in zip(script.arrivals, script.arrivals[1:], strict=False)]
    assert len(gaps) == 2 and all(gap >= 0.19 for gap in gaps)


async def test_get_returns_status_headers_and_body_and_feeds_on_response():
    seen: list[tuple[str, int, bytes]] = []
    async with LoopbackServer(ws=_no_ws, http=Scripted()) as server:
        async with RestClient(server.http_url, on_response=lambda *a: seen.append(a)) as rest:
            response = await rest.get("/thing", {"a": "1"})
    assert isinstance(response, RestResponse)
    assert response.status == 200 and response.body == b'{"ok":true,"path":"/thing"}'
    assert response.url == f"{server.http_url}/thing?a=1"
    assert response.header("x-thing") == response.header("X-THING") == "42"
    assert response.header("missing") is None
    assert seen == [(response.url, 200, response.body)]


async def test_binance_weight_budget_reads_the_servers_count_from_the_response():
    from spiceflow_binance.config import SPOT
    from spiceflow_binance.plugin import BinanceSpot
    from spiceflow_binance.rest import budget_for
    from spiceflow_binance.simulator import BinanceSimulator

    venue = BinanceSpot()
    async with BinanceSimulator(SPOT, symbols=1, rate=0, start="now") as sim:
        async with RestClient(sim.endpoints.rest_url) as rest:
            instruments = {i.symbol: i for i in await venue.fetch_instruments(rest)}
            budget = budget_for(rest, SPOT)
            after_info = budget.server_used
            await venue.fetch_snapshot(rest, instruments[sim.symbols()[0]], 1000)
            after_snapshot = budget.server_used
    assert after_info is not None and after_info > 0
    assert after_snapshot is not None and after_snapshot > after_info
