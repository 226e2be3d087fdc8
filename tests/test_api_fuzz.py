"""Fuzzing the control API (hypothesis) over real HTTP against a running pipeline: real
and mangled paths, every method, random headers and Authorization, random and hostile
bodies, random query strings. Every answer is a 2xx or a 4xx (the documented 503s of the
readiness probe and the live feed aside), an error is one short JSON ``error`` line,
nothing ever shows a traceback; and all the while the pipeline keeps publishing exact
books.

The pipeline (toy simulator, orchestrator with the API and a token, a ZeroMQ collector)
runs once for the module on the event loop; hypothesis drives it from a worker thread
with a sync httpx client. The fuzz subscribes and unsubscribes only the POOL
instruments; the PINNED ones are configured at start, never named by the fuzz, and
checked exact afterwards.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import anyio
import httpx
import pytest
from hypercorn.config import Config as HypercornConfig
from hypothesis import HealthCheck, assume, event, given, reject, settings
from hypothesis import strategies as st
from runtime_helpers import Collector, assert_exact, collecting, running, settings_for, toy_registry, wait_for

from spiceflow_core.api.guard import MAX_BODY_BYTES, PUBLIC_PATHS, api_token
from spiceflow_core.broadcast.wire import BookMessage
from spiceflow_core.instruments import KIND_CODES
from spiceflow_core.runtime.orchestrator import Orchestrator
from spiceflow_core.runtime.venue_runtime import VenueRuntime
from spiceflow_core.testkit.toy import ToySimulator

TOKEN = "fuzz-token-Zq8"
PINNED = ["PINNEDA", "PINNEDB"]  # configured, checked exact; no fuzz example names them
POOL = ["CCC", "DDD"]  # what the fuzz may subscribe and unsubscribe ("HALT" is the toy's halted one)
#: the API's paths, including those other parts of the project add (status page, metrics)
PATHS = [
    "/subscribe",
    "/unsubscribe",
    "/subscriptions",
    "/instruments",
    "/health",
    "/health/live",
    "/health/ready",
    "/status",
    "/openapi.json",
    "/metrics",
    "/live",
    "/",
    "/page/status.css",
    "/page/status.js",
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
#: an error line is short whatever the request quoted
MAX_ERROR_LINE = 400
#: a request head longer than this may be refused by the HTTP server itself (hypercorn's
#: h11 buffer), with an empty 431 and a closed connection: the API never sees it
MAX_HEAD_BYTES = HypercornConfig.h11_max_incomplete_size


@dataclasses.dataclass
class Pipeline:
    sim: ToySimulator
    orc: Orchestrator
    got: Collector
    token: str

    @property
    def base_url(self) -> str:
        return f"http://{self.orc.api_address}"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module-wide, so the pipeline fixture can be module-scoped


@pytest.fixture(scope="module")
async def pipeline() -> AsyncIterator[Pipeline]:
    """The pipeline runs on the test's event loop in the main thread (the orchestrator
    installs signal handlers, which only the main thread may); the fuzz runs in a worker
    thread with a sync client."""
    token = api_token(TOKEN)  # SPICEFLOW_API_TOKEN, when set, wins over the configured one
    assert token is not None
    sim = ToySimulator(symbols=[*PINNED, *POOL], rate=100)
    api = {"enabled": True, "address": "127.0.0.1:0", "token": TOKEN}
    settings = settings_for("toy", PINNED, profiles=(), api=api)
    async with sim.running():
        orc = Orchestrator(settings, toy_registry(), ["toy"], endpoint_overrides={"toy": sim.endpoints})
        async with running(orc):
            assert orc.broadcaster is not None
            books = orc.runtimes["toy"].books
            assert books is not None
            async with collecting(orc, "book.toy.") as got:
                await wait_for(lambda: all(books.state_of(s) == "synced" and s in got.latest for s in PINNED))
                yield Pipeline(sim, orc, got, token)


# -- the requests --------------------------------------------------------------------
@dataclasses.dataclass
class Call:
    method: str
    path: str  # with the raw query string, if any
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes | None

    def __repr__(self) -> str:  # a 64 KiB body would drown hypothesis's report
        body = self.body if self.body is None or len(self.body) <= 300 else self.body[:300] + b"..."
        size = "" if self.body is None else f" ({len(self.body)} bytes)"
        head = f"{self.method} {self.path[:300]!r} params={self.params!r} headers={self.headers!r}"
        return f"Call({head} body={body!r}{size})"


URL_SAFE = st.characters(codec="ascii", categories=["L", "N", "P", "S"], exclude_characters="#?%/")
segments = st.text(URL_SAFE, min_size=1, max_size=12)
percent_bytes = st.binary(min_size=1, max_size=12).map(lambda b: "".join(f"%{x:02X}" for x in b))

paths = st.one_of(
    st.sampled_from(PATHS),
    # variations of the real ones
    st.tuples(
        st.sampled_from(PATHS), st.sampled_from(["/", "//", "/x", "/..", "/%2F", ".json", "%00", "%20", "~"])
    ).map("".join),
    st.sampled_from(PATHS).map(str.upper),
    st.sampled_from(PATHS).map(lambda p: "/" + p),
    st.sampled_from(PATHS).map(lambda p: "".join(f"%{ord(c):02x}" if c.isalpha() else c for c in p)),
    # random text: any unicode, percent-encoded as UTF-8
    st.lists(st.text(max_size=16), min_size=1, max_size=4).map(lambda parts: "/" + quote("/".join(parts))),
    st.lists(segments, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts)),
    # percent-encoding, valid UTF-8 or not
    st.lists(percent_bytes | segments, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    # very long
    st.builds(
        lambda p, c, n: p + "/" + c * n,
        st.sampled_from(PATHS),
        st.sampled_from(["a", "%41", "é", "/"]),  # "é" goes as %C3%A9: a 54 KB path at most
        st.integers(1, 9000),
    ),
)

#: numbers as a query may spell them: signs, spaces, exponents, other scripts' digits,
#: superscripts and circled numbers (str.isdigit() holds for some that int() refuses)
numerals = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["0", "1", "10000", "10001", "1_000", " 5", "5 ", "+5", "0x10", "1e3", "9" * 500, "٣", "²", "①"]),
    st.text(st.characters(categories=["No", "Nl"]), min_size=1, max_size=3),
    st.text(st.characters(categories=["Nd"]), min_size=1, max_size=3),
)
query_values = st.one_of(
    st.text(max_size=20),
    numerals,
    st.sampled_from(["toy", "TOY", "binance", "", *sorted(KIND_CODES), *POOL, "HALT", "USD"]),
    st.sampled_from(
        ["toy:", ":CCC", "toy:CCC", "toy:ccc", "toy:HALT", "toy:toy.spot.DDD.USD", "nope:CCC", "toy:CCC:x"]
    ),
    # very long (a few together may pass hypercorn's head limit, and httpx's 64 KiB URL limit)
    st.builds(lambda c, n: c * n, st.sampled_from(["C", "é", "%", "&"]), st.integers(1, 2000)),
)
QUERY_KEYS = ["limit", "kind", "venue", "base", "quote", "symbol", "instrument"]
#: the parameters the endpoints read, each present or not
real_params = st.fixed_dictionaries(
    {}, optional={k: numerals | st.text(max_size=10) if k == "limit" else query_values for k in QUERY_KEYS}
)
query_params = real_params | st.dictionaries(
    st.sampled_from(QUERY_KEYS) | st.text(max_size=8), query_values, max_size=5
)
raw_queries = st.one_of(
    st.just(""),
    st.lists(percent_bytes | segments, min_size=1, max_size=4).map(lambda parts: "?" + "&".join(parts)),
    st.tuples(st.sampled_from(["limit", "kind", "venue", "symbol", "instrument"]), percent_bytes).map(
        lambda kv: f"?{kv[0]}={kv[1]}"
    ),
)

CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "APPLICATION/JSON",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "",
    ";;;",
]
header_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
header_names = st.one_of(
    st.sampled_from(
        [
            "accept",
            "accept-encoding",
            "accept-language",
            "origin",
            "cookie",
            "user-agent",
            "x-forwarded-for",
            "x-forwarded-host",
            "forwarded",
            "range",
            "if-none-match",
            "content-encoding",
            "referer",
        ]
    ),
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_!#$&'*+.^`|~"), min_size=1, max_size=20).map(
        lambda n: "x-" + n
    ),
)


def _authorization(token: str) -> st.SearchStrategy[str | None]:
    wrong = st.one_of(
        st.none(),
        st.sampled_from(
            [
                "",
                "Bearer",
                "Bearer wrong",
                token,
                f"bearer {token}",
                f"Bearer  {token}",
                f"Bearer {token}x",
                f"Bearer {token[:-1]}",
                f"Basic {token}",
                f"Token {token}",
            ]
        ),
        header_values.map(lambda v: ("Bearer " + v).strip()),  # a header value cannot end in a space
    )
    # mostly the right token, so most examples reach the routes behind it (sampled_from
    # draws evenly; a drawn integer would favour its bounds)
    return st.sampled_from([True, True, True, True, False]).flatmap(
        lambda ok: st.just(f"Bearer {token}") if ok else wrong
    )


def _json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
#: JSON text json.dumps would not write: non-finite and huge numbers, duplicate keys, a BOM
odd_json = st.sampled_from(
    [
        b'{"instrument": NaN}',
        b'{"instrument": Infinity}',
        b'{"venue": 1e999, "instrument": -1e999}',
        b'{"instrument": ' + b"9" * 5000 + b"}",
        b'{"venue": "toy", "venue": "toy", "instrument": "CCC"}',
        b'\xef\xbb\xbf{"venue": "toy", "instrument": "CCC"}',
        b'{"venue": "toy", "instrument": "CCC"} trailing',
        b'{"venue": "toy", "instrument": "CCC"',
        b'{"venue": "toy", "instrument": "\\ud800"}',
        b'{"venue": "toy", "instrument": "\\u0000"}',
        b"null",
        b"[]",
        b'""',
        b"0",
        b" ",
    ]
)

subscribe_fields = st.fixed_dictionaries(
    {},
    optional={
        "venue": st.sampled_from(["toy", "TOY", "binance", ""]) | st.text(max_size=20) | json_scalars,
        "instrument": st.sampled_from([*POOL, "HALT", "ccc", "toy.spot.CCC.USD", "TOY.SPOT.DDD.USD", "", "*"])
        | st.text(max_size=30)
        | json_scalars,
        "kind": st.sampled_from([*sorted(KIND_CODES), "", "SPOT", "swap"]) | st.text(max_size=10) | json_scalars,
        "base": st.sampled_from([*POOL, "HALT", "ccc", ""]) | st.text(max_size=10) | json_scalars,
        "quote": st.sampled_from(["USD", "usd", ""]) | st.text(max_size=10),
        "expiry": st.sampled_from(["20250101", "2025-01-01", "99999999", ""]) | st.text(max_size=10),
        "strike": st.sampled_from(["100", "1e999999", "NaN", "-0", "abc", ""]) | st.text(max_size=10) | json_scalars,
        "option_type": st.sampled_from(["call", "put", "C", "P", "c", "x", ""]) | json_scalars,
        "feed": st.sampled_from(["book", "trades", "top", "candles", ""]) | json_scalars,
        "extra": json_values,
    },
)
body_texts = st.one_of(
    subscribe_fields.map(_json_bytes),
    json_values.map(_json_bytes),
    odd_json,
    # invalid UTF-8, alone or inside otherwise valid JSON
    st.binary(max_size=64),
    st.tuples(subscribe_fields.map(_json_bytes), st.binary(min_size=1, max_size=4), st.integers(0, 40)).map(
        lambda t: t[0][: t[2]] + b"\xff" + t[1] + t[0][t[2] :]
    ),
    # huge strings, up to the limit and just over it
    st.builds(
        lambda key, ch, n: _json_bytes({"venue": "toy", key: ch * n}),
        st.sampled_from(["instrument", "base", "kind", "venue", "extra"]),
        st.sampled_from(["x", "é", "\\", '"', "\u2028"]),
        st.integers(1, MAX_BODY_BYTES // 2),
    ),
    st.integers(MAX_BODY_BYTES - 64, MAX_BODY_BYTES + 64).map(
        lambda n: b'{"instrument": "' + b"y" * max(0, n - 18) + b'"}'
    ),
    # deep nesting
    st.builds(lambda d, open_, close: open_ * d + close * d, st.integers(1, 30_000), st.just(b"["), st.just(b"]")),
    st.builds(lambda d: b'{"extra": ' + b'{"a": ' * d + b"1" + b"}" * d + b"}", st.integers(1, 5000)),
    st.builds(lambda d: b'{"venue": ' + b"[" * d + b"]" * d + b"}", st.integers(1, 20_000)),
    # numbers where strings go
    st.fixed_dictionaries(
        {"venue": st.sampled_from(["toy"]) | st.integers() | st.floats(allow_nan=False)},
        optional={
            k: st.integers() | st.floats(allow_nan=False) | st.booleans() for k in ("instrument", "base", "feed")
        },
    ).map(_json_bytes),
)


#: the API's (method, path) pairs; the ones taking input more than once, to draw them more
ENDPOINTS = [
    *[("POST", "/subscribe")] * 4,
    *[("POST", "/unsubscribe")] * 3,
    *[("GET", "/instruments")] * 2,
    *[("GET", "/live")] * 2,
    *[("GET", p) for p in PATHS if p not in ("/subscribe", "/unsubscribe")],
]
#: subscribe bodies likely to be accepted: they reach the runtime, not only the parser
likely_subscribe = st.one_of(
    st.fixed_dictionaries(
        {"instrument": st.sampled_from([*POOL, "ccc", "toy.spot.DDD.USD", "HALT"])},
        optional={"venue": st.sampled_from(["toy", "toy", "TOY"]), "feed": st.sampled_from(["book", "trades", "top"])},
    ),
    st.fixed_dictionaries(
        {"kind": st.sampled_from(["spot", "linperp"]), "base": st.sampled_from([*POOL, "ccc"])},
        optional={"venue": st.just("toy"), "quote": st.sampled_from(["USD", "usd", "EUR"])},
    ),
).map(_json_bytes)


def _finish(
    draw: st.DrawFn,
    method: str,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    body: bytes | None,
    token: str,
) -> Call:
    authorization = draw(_authorization(token))
    if authorization is not None:
        headers["authorization"] = authorization
    # the fuzz never names the pinned instruments (their books are checked afterwards)
    seen = (path + json.dumps(params) + (body or b"").decode("utf-8", "replace")).upper()
    assume(not any(p in seen for p in PINNED))
    return Call(method, path, params, headers, body)


@st.composite
def endpoint_calls(draw: st.DrawFn, token: str) -> Call:
    """A real endpoint with its own method, and input of any kind."""
    method, path = draw(st.sampled_from(ENDPOINTS))
    headers = dict(draw(st.lists(st.tuples(header_names, header_values), max_size=2)))
    headers["content-type"] = draw(st.sampled_from(["application/json", *CONTENT_TYPES]))
    params = (
        draw(draw(st.sampled_from([real_params, real_params, query_params, st.just({})]))) if method == "GET" else {}
    )
    body = None
    if method == "POST":
        body = draw(st.sampled_from([likely_subscribe, likely_subscribe, body_texts]).flatmap(lambda b: b))
    return _finish(draw, method, path, params, headers, body, token)


@st.composite
def wild_calls(draw: st.DrawFn, token: str) -> Call:
    """Any method, any path, any headers, any body."""
    method = draw(st.sampled_from(METHODS))
    path = draw(paths) + draw(raw_queries)
    params = draw(query_params) if draw(st.booleans()) else {}
    headers = dict(draw(st.lists(st.tuples(header_names, header_values), max_size=4)))
    content_type = draw(st.sampled_from(CONTENT_TYPES) | header_values)
    if content_type:
        headers["content-type"] = content_type
    if method in ("POST", "PUT", "PATCH") or draw(st.integers(0, 4)) == 0:
        body: bytes | None = draw(body_texts)
    else:
        body = None
    return _finish(draw, method, path, params, headers, body, token)


def calls(token: str) -> st.SearchStrategy[Call]:
    # two in three on the real endpoints, where the handlers run
    return st.sampled_from([True, True, False]).flatmap(
        lambda real: endpoint_calls(token) if real else wild_calls(token)
    )


# -- the oracle ----------------------------------------------------------------------
#: the documented 503s: readiness before every subscription is synced, the live feed
#: when too many streams are open
DOCUMENTED_503 = {"/health/ready": "status", "/live": "error"}


def _head_size(request: httpx.Request) -> int:
    lines = [request.method.encode() + b" " + request.url.raw_path + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in request.headers.raw]
    return sum(len(line) + 2 for line in lines) + 2


def check_answer(call: Call, r: httpx.Response, content: bytes, token: str) -> None:
    status = r.status_code
    served = r.request.url.path  # the path the server routed (percent-decoded)
    documented_503 = status == 503 and served in DOCUMENTED_503
    assert 200 <= status < 300 or 400 <= status < 500 or documented_503, f"{status}: {content[:500]!r}"
    assert b"Traceback" not in content and b'File "' not in content, content[:500]
    if status == 431:  # the HTTP server's own answer, before the API sees the request
        assert _head_size(r.request) > MAX_HEAD_BYTES and not content and r.headers["connection"] == "close"
        return
    if call.method == "HEAD":
        assert not content
    authorized = call.headers.get("authorization") == f"Bearer {token}" or served in PUBLIC_PATHS
    if not authorized:
        assert status == 401, f"{status} without the token: {content[:300]!r}"
    elif call.body is not None and len(call.body) > MAX_BODY_BYTES:
        assert status == 413, f"{status} for a {len(call.body)} byte body: {content[:300]!r}"
    if status >= 400 and (content or call.method not in ("HEAD", "OPTIONS")):
        assert r.headers.get("content-type", "").startswith("application/json"), (status, r.headers, content[:300])
        answer = json.loads(content)
        assert isinstance(answer, dict), answer
        if documented_503 and DOCUMENTED_503[served] == "status":
            assert answer.get("status") == "not ready", answer
            return
        error = answer.get("error")
        assert isinstance(error, str) and error, answer
        assert error.isprintable() and len(error) < MAX_ERROR_LINE, error  # one short line
    elif status < 300 and r.headers.get("content-type", "").startswith("application/json") and content:
        json.loads(content)


def send(http: httpx.Client, url: str, call: Call) -> tuple[httpx.Response, bytes]:
    """The answer and its body; of an event stream (which never ends), the first event."""
    try:
        request = http.build_request(
            call.method, url, params=call.params or None, headers=call.headers, content=call.body
        )
    except httpx.InvalidURL:  # longer than httpx sends: not a request
        reject()
    r = http.send(request, stream=True)
    try:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            return r, next(r.iter_bytes(), b"")
        return r, r.read()
    finally:
        r.close()


def fuzz_and_clean_up(base_url: str, token: str) -> None:
    """The fuzz (sync: runs in a worker thread), then the removal of what it subscribed."""
    previous: collections.deque[Call] = collections.deque(maxlen=3)
    with httpx.Client(base_url=base_url, timeout=5) as http:

        @settings(
            max_examples=2000,
            deadline=5000,  # a hang detector, not a speed check: one request that long is a bug
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
            database=None,
        )
        @given(call=calls(token))
        def one_request(call: Call) -> None:
            # an absolute URL: relative to a base URL, httpx refuses a path starting "//"
            url = base_url + call.path
            try:
                r, content = send(http, url, call)
            except httpx.TransportError as exc:  # the cause may be an earlier request on the connection
                raise AssertionError(f"{exc!r} after {list(previous)!r}") from None
            finally:
                previous.append(call)
            event(f"status {r.status_code}")  # the spread shows with --hypothesis-show-statistics
            check_answer(call, r, content, token)

        one_request()

        auth = {"authorization": f"Bearer {token}"}
        for sub in http.get("/subscriptions", headers=auth).json():
            if sub["symbol"] not in PINNED:
                body = {"venue": "toy", "instrument": sub["symbol"], "feed": sub["feed"]}
                r = http.post("/unsubscribe", json=body, headers=auth)
                assert r.status_code == 200, r.text
        subs = http.get("/subscriptions", headers=auth).json()
        assert sorted((s["symbol"], s["feed"]) for s in subs) == [(s, "book") for s in PINNED]


def _sequence(got: Collector, symbol: str) -> int:
    message = got.latest[symbol]
    assert isinstance(message, BookMessage)
    return message.sequence


def _trouble(runtime: VenueRuntime) -> dict[str, int]:
    """What would show the fuzz disturbing the pipeline: the pinned books' gaps and
    resyncs, the venue's reconnects and actor restarts."""
    counts = {f"{s} {n}": runtime.metrics.by_instrument[s][n] for s in PINNED for n in ("gaps", "resyncs")}
    return counts | {n: runtime.metrics.totals[n] for n in ("reconnects", "actor_restarts")}


@pytest.mark.anyio
async def test_fuzz_the_control_api_while_books_stay_exact(pipeline: Pipeline) -> None:
    runtime = pipeline.orc.runtimes["toy"]
    before = {s: _sequence(pipeline.got, s) for s in PINNED}
    trouble = _trouble(runtime)
    await anyio.to_thread.run_sync(fuzz_and_clean_up, pipeline.base_url, pipeline.token)
    # the pinned books were never touched, kept moving throughout without a gap or a
    # resync, and are exact now; no connection was lost; the venue's message limit held
    # however the fuzz subscribed
    assert [s.symbol for s in runtime.list_subscriptions()] == PINNED
    assert all(_sequence(pipeline.got, s) > before[s] for s in PINNED)
    assert _trouble(runtime) == trouble
    await assert_exact(pipeline.sim, pipeline.got, runtime, PINNED)
    assert pipeline.sim.limit_disconnects == []
