"""The control API served by ``spiceflow run`` on loopback (Starlette on Hypercorn,
both running on the same event loop as the actors).

    POST /subscribe      {"venue": "binance", "instrument": "BTCUSDT", "feed": "book"}
    POST /unsubscribe    same body
    GET  /subscriptions  live subscriptions with state and counters
    GET  /instruments    ?venue=&kind=&base=&quote=&symbol=  (reference data search)
    GET  /health         liveness and per-venue connection state
    GET  /status         per-venue counters and latency percentiles
    GET  /metrics        Prometheus metrics (spiceflow_core.observability.prometheus)
    GET  /live           ?instrument=VENUE:SYMBOL  server-sent events: top-10 book and
                         latency 5 times a second (spiceflow_core.api.live)
    GET  /               the status page (spiceflow_core.api.page; no token: it holds no data)
    GET  /openapi.json   the OpenAPI 3.1 schema of all of the above

An instrument is named by the venue's symbol, by its normalized id
(``binance.linperp.BTC.USDT``), or by normalized fields (kind, base, quote, expiry,
strike, option_type). Errors: 400 bad request, 404 unknown venue/instrument or not
subscribed, 409 duplicate, 502 refused by the exchange.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio
import msgspec
from anyio.abc import TaskStatus
from loguru import logger
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spiceflow_core.api.guard import Guard, api_token, quoted
from spiceflow_core.api.live import LiveFeed
from spiceflow_core.api.live import openapi_paths as live_openapi_paths
from spiceflow_core.api.page import openapi_paths as page_openapi_paths
from spiceflow_core.api.page import page_routes
from spiceflow_core.instruments import (
    KIND_CODES,
    AmbiguousInstrument,
    InactiveInstrument,
    InstrumentFilter,
    KindCode,
    UnknownInstrument,
    close_matches,
    matches,
)
from spiceflow_core.model import Feed
from spiceflow_core.observability.prometheus import metrics_endpoint
from spiceflow_core.runtime.venue_runtime import (
    DuplicateSubscription,
    NotSubscribed,
    Subscription,
    SubscriptionRefused,
    SubscriptionTimeout,
    VenueRuntime,
)

if TYPE_CHECKING:  # pragma: no cover
    from hypercorn.typing import ASGIFramework

    from spiceflow_core.runtime.orchestrator import Orchestrator


#: most rows ``/instruments`` returns at once
MAX_LIMIT = 10_000
#: longest error line
MAX_ERROR_CHARS = 300


class SubscribeRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    venue: str | None = None
    instrument: str | None = None  # exchange symbol or normalized id
    kind: str | None = None  # normalized fields, when no instrument is given
    base: str | None = None
    quote: str | None = None
    expiry: str | None = None  # YYYYMMDD
    strike: str | None = None
    option_type: Literal["call", "put", "C", "P"] | None = None
    feed: Feed = "book"


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def _json(obj: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(obj), status_code=status, media_type="application/json")


def _fields_filter(req: SubscribeRequest) -> InstrumentFilter:
    """The request's normalized fields as the instrument filter (empty fields match any);
    ``kind`` is checked against KIND_CODES before."""
    return InstrumentFilter(
        kind=cast(KindCode | None, req.kind or None),
        base=req.base or None,
        quote=req.quote or None,
        expiry=req.expiry or None,
        strike=req.strike or None,
        option_type=req.option_type or None,
    )


class ControlApi:
    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orc = orchestrator
        self.live_feed = LiveFeed(orchestrator)
        self.app = Starlette(
            routes=[
                Route("/subscribe", self.subscribe, methods=["POST"]),
                Route("/unsubscribe", self.unsubscribe, methods=["POST"]),
                Route("/subscriptions", self.subscriptions, methods=["GET"]),
                Route("/instruments", self.instruments, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/health/live", self.live, methods=["GET"]),
                Route("/health/ready", self.ready, methods=["GET"]),
                Route("/status", self.status, methods=["GET"]),
                Route("/metrics", metrics_endpoint(orchestrator), methods=["GET"]),  # Prometheus text format
                Route("/openapi.json", self.openapi, methods=["GET"]),
                Route("/live", self.live_feed, methods=["GET"]),
                *page_routes(),
            ],
            exception_handlers={ApiError: self._error, HTTPException: self._http_error},
        )
        # "/subscribe/" answers 404 like any unknown path, not a 307 to a URL built from
        # the client's Host header
        self.app.router.redirect_slashes = False

    async def _error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        # a parser's message quotes the input raw (an unknown field named "a\nb"): escape
        # what is not printable, so the error stays one line
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc))
        if len(message) > MAX_ERROR_CHARS:  # whatever it quotes, an error stays one short line
            message = message[:MAX_ERROR_CHARS] + "…"
        return _json({"error": message, **exc.extra}, exc.status)

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        """Routing errors (unknown path, wrong method) answer JSON like every other error."""
        assert isinstance(exc, HTTPException)
        return _json({"error": exc.detail or "error"}, exc.status_code)

    # -- request parsing ------------------------------------------------------------
    async def _request(self, request: Request) -> SubscribeRequest:
        body = await request.body()
        try:
            req = msgspec.json.decode(body, type=SubscribeRequest)
        except msgspec.ValidationError as exc:
            raise ApiError(400, f"invalid request: {exc}") from None
        except msgspec.DecodeError as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from None
        if not req.instrument and not (req.kind or req.base):
            raise ApiError(
                400,
                "name an instrument: 'instrument' (symbol or normalized id) or normalized fields (kind, base, quote, ...)",
            )
        if req.kind and req.kind not in KIND_CODES:
            raise ApiError(400, f"unknown kind {quoted(req.kind)} (one of {', '.join(sorted(KIND_CODES))})")
        return req

    def _locate(self, req: SubscribeRequest) -> tuple[VenueRuntime, str]:
        """(runtime, symbol) for a request, or an ApiError listing close matches."""
        runtimes = self.orc.runtimes
        if req.venue is not None and req.venue not in runtimes:
            raise ApiError(404, f"unknown venue {quoted(req.venue)} (running: {', '.join(sorted(runtimes)) or 'none'})")
        candidates = [runtimes[req.venue]] if req.venue else list(runtimes.values())
        if req.instrument:
            found = []
            for runtime in candidates:
                try:
                    found.append((runtime, runtime.resolve(req.instrument).symbol))
                except UnknownInstrument:
                    continue
                except InactiveInstrument as exc:
                    raise ApiError(400, str(exc)) from None
                except AmbiguousInstrument as exc:
                    raise ApiError(400, str(exc)) from None
            if not found:
                pool = [s for r in candidates for s in r.instruments]
                near = close_matches(req.instrument, pool)
                where = req.venue or "any running venue"
                raise ApiError(404, f"unknown instrument {quoted(req.instrument)} on {where}", close_matches=near)
            if len(found) > 1:
                listed = [f"{r.venue.name}:{s}" for r, s in found]
                raise ApiError(400, f"{quoted(req.instrument)} is ambiguous; add 'venue'", matches=listed)
            return found[0]
        rule = _fields_filter(req)
        hits = [(r, i) for r in candidates for i in r.instruments.values() if i.active and matches(i, rule)]
        if not hits:
            raise ApiError(404, "no active instrument matches those fields")
        if len(hits) > 1:
            listed = sorted(f"{r.venue.name}:{i.symbol}" for r, i in hits)[:20]
            raise ApiError(400, f"{len(hits)} instruments match those fields; be more specific", matches=listed)
        runtime, inst = hits[0]
        return runtime, inst.symbol

    # -- endpoints ---------------------------------------------------------------------
    async def subscribe(self, request: Request) -> Response:
        req = await self._request(request)
        runtime, symbol = self._locate(req)
        cluster = self.orc.cluster  # clustered: the cluster's desired state, answered by the owner
        try:
            if cluster is not None:
                sub = await cluster.subscribe(runtime, symbol, req.feed)
            else:
                sub = await runtime.subscribe(symbol, req.feed)
        except DuplicateSubscription as exc:
            raise ApiError(409, str(exc)) from None
        except SubscriptionRefused as exc:
            raise ApiError(502, f"the exchange refused the subscription: {exc}") from None
        except SubscriptionTimeout as exc:
            raise ApiError(504, str(exc)) from None
        return _json(sub)

    async def unsubscribe(self, request: Request) -> Response:
        req = await self._request(request)
        runtime, symbol = self._locate(req)
        cluster = self.orc.cluster
        try:
            if cluster is not None:
                sub = await cluster.unsubscribe(runtime, symbol, req.feed)
            else:
                sub = await runtime.unsubscribe(symbol, req.feed)
        except NotSubscribed as exc:
            raise ApiError(404, str(exc)) from None
        except SubscriptionTimeout as exc:
            raise ApiError(504, str(exc)) from None
        return _json(sub)

    async def subscriptions(self, request: Request) -> Response:
        subs: list[Subscription] = []
        for runtime in self.orc.runtimes.values():
            subs.extend(runtime.list_subscriptions())
        return _json(subs)

    async def instruments(self, request: Request) -> Response:
        q = request.query_params
        venue = q.get("venue")
        if venue and venue not in self.orc.runtimes:
            raise ApiError(404, f"unknown venue {quoted(venue)}")
        req = SubscribeRequest(kind=q.get("kind"), base=q.get("base"), quote=q.get("quote"), venue=venue)
        if req.kind and req.kind not in KIND_CODES:
            raise ApiError(400, f"unknown kind {quoted(req.kind)}")
        raw_limit = q.get("limit", "1000")
        # ASCII digits only: str.isdigit() also holds for "²" and "①", which int() refuses
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise ApiError(400, f"limit must be an integer from 1 to {MAX_LIMIT} (got {quoted(raw_limit)})")
        limit = int(raw_limit)
        symbol = q.get("symbol", "").upper()
        rule = _fields_filter(req)
        out = []
        for name, runtime in sorted(self.orc.runtimes.items()):
            if venue and name != venue:
                continue
            for inst in runtime.instruments.values():
                if matches(inst, rule) and (not symbol or symbol in inst.symbol.upper()):
                    out.append({**msgspec.structs.asdict(inst), "normalized": inst.normalized})
        return _json(out[:limit])

    async def health(self, request: Request) -> Response:
        venues = {}
        for name, runtime in self.orc.runtimes.items():
            connections = runtime.connection_states()
            venues[name] = {
                "connections": len(connections),
                "connected": sum(1 for c in connections if c["up"]),
                "subscriptions": len(runtime.list_subscriptions()),
                "instruments": len(runtime.instruments),
                "actors_last_heartbeat_s": runtime.health(),
                "connection_states": connections,
            }
        broadcaster = self.orc.broadcaster
        sinks = broadcaster.sink_stats() if broadcaster is not None else []
        return _json({"status": "ok", "venues": venues, "sinks": sinks})

    async def live(self, request: Request) -> Response:
        """Liveness: the process answers (for orchestrators' probes; no token needed)."""
        return _json({"status": "live"})

    async def ready(self, request: Request) -> Response:
        """Readiness: every configured subscription is synced (503 until then, with what
        is not)."""
        waiting = [
            f"{sub.id}: {sub.state}"
            for runtime in self.orc.runtimes.values()
            for sub in runtime.list_subscriptions()
            if sub.state != "synced"
        ]
        if not self.orc.runtimes or waiting:
            return _json({"status": "not ready", "waiting": waiting[:50]}, 503)
        return _json({"status": "ready"})

    async def status(self, request: Request) -> Response:
        out = {}
        for name, runtime in self.orc.runtimes.items():
            lat = runtime.metrics.latency.percentiles(0.5, 0.9, 0.99)
            out[name] = {
                "counters": runtime.metrics.snapshot(),
                "latency_ms": lat,
                "instruments": {s: dict(c) for s, c in runtime.metrics.by_instrument.items()},
            }
        return _json(out)

    async def openapi(self, request: Request) -> Response:
        return _json(openapi_schema())


def openapi_schema() -> dict[str, Any]:
    (sub_req, sub_resp), components = msgspec.json.schema_components(
        [SubscribeRequest, Subscription], ref_template="#/components/schemas/{name}"
    )
    error = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    components["Error"] = error

    def responses(ok: dict[str, Any], *codes: int) -> dict[str, Any]:
        out = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}}
        text = {
            400: "Bad request",
            404: "Unknown venue, instrument or subscription",
            409: "Duplicate subscription",
            502: "Refused by the exchange",
            504: "Not confirmed by the exchange in time",
        }
        for code in codes:
            out[str(code)] = {
                "description": text[code],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        return out

    body = {"required": True, "content": {"application/json": {"schema": sub_req}}}
    any_obj = {"type": "object"}

    def q(name: str, desc: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": desc}

    return {
        "openapi": "3.1.0",
        "info": {"title": "SpiceFlow control API", "version": "1"},
        "paths": {
            "/subscribe": {
                "post": {
                    "summary": "Subscribe an instrument feed",
                    "operationId": "subscribe",
                    "requestBody": body,
                    "responses": responses(sub_resp, 400, 404, 409, 502, 504),
                }
            },
            "/unsubscribe": {
                "post": {
                    "summary": "Unsubscribe an instrument feed",
                    "operationId": "unsubscribe",
                    "requestBody": body,
                    "responses": responses(sub_resp, 400, 404),
                }
            },
            "/subscriptions": {
                "get": {
                    "summary": "Live subscriptions",
                    "operationId": "subscriptions",
                    "responses": responses({"type": "array", "items": sub_resp}),
                }
            },
            "/instruments": {
                "get": {
                    "summary": "Search reference data",
                    "operationId": "instruments",
                    "parameters": [
                        q("venue", "venue name"),
                        q("kind", "spot, perpetual, future, option, linperp, ..."),
                        q("base", "base asset"),
                        q("quote", "quote asset"),
                        q("symbol", "substring of the symbol"),
                        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}},
                    ],
                    "responses": responses({"type": "array", "items": any_obj}, 400, 404),
                }
            },
            "/health": {
                "get": {"summary": "Connections and actors", "operationId": "health", "responses": responses(any_obj)}
            },
            "/health/live": {
                "get": {"summary": "Liveness probe (no token)", "operationId": "live", "responses": responses(any_obj)}
            },
            "/health/ready": {
                "get": {
                    "summary": "Readiness probe (no token): 200 once every subscription is synced, else 503",
                    "operationId": "ready",
                    "responses": {
                        **responses(any_obj),
                        "503": {
                            "description": "Not every subscription is synced yet",
                            "content": {"application/json": {"schema": any_obj}},
                        },
                    },
                }
            },
            "/status": {
                "get": {"summary": "Counters and latency", "operationId": "status", "responses": responses(any_obj)}
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text exposition format)",
                    "operationId": "metrics",
                    "responses": {
                        "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
                    },
                }
            },
            "/openapi.json": {
                "get": {"summary": "This schema", "operationId": "openapi", "responses": responses(any_obj)}
            },
            **live_openapi_paths(),
            **page_openapi_paths(),
        },
        "components": {"schemas": components},
    }


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise ValueError(f"api address {address!r} is not HOST:PORT") from None


async def serve_api(orchestrator: Orchestrator, *, task_status: TaskStatus = anyio.TASK_STATUS_IGNORED) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    host, port = parse_address(orchestrator.settings.api.address)
    # Bind ourselves so a busy port is a clear startup error and port 0 works.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"control API cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    bound = sock.getsockname()
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the socket now
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.2
    api = ControlApi(orchestrator)
    app: Any = Guard(api.app, token=api_token(orchestrator.settings.api.token))
    if orchestrator.settings.api.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app = CORSMiddleware(app, allow_origins=list(orchestrator.settings.api.cors_origins), allow_methods=["*"])
    orchestrator.api_address = f"{bound[0]}:{bound[1]}"
    logger.bind(actor="api").info("control API on http://{}:{}", *bound)
    stop = anyio.Event()
    done = anyio.Event()

    async def _serve() -> None:
        # Shielded: hypercorn shuts down through its trigger, not by cancellation.
        with anyio.CancelScope(shield=True):
            try:
                # Starlette's ASGI types are looser than hypercorn's (pgjones/hypercorn#353)
                await serve(cast("ASGIFramework", app), config, shutdown_trigger=stop.wait)
            finally:
                done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(_serve)
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            api.live_feed.close()  # live streams send their last event and end before the server stops
            stop.set()
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await done.wait()
