"""A loopback server speaking real WebSocket and HTTP on one port (``websockets``).

HTTP GETs are answered by an ``http`` callback; WebSocket upgrades are handed to a
``ws`` callback with the live ``ServerConnection`` (so simulators can send, close
cleanly, or ``connection.transport.abort()`` for a TCP reset).

``message_limit`` enforces a venue's cap on what one client connection may send, the
way exchanges count it: every message in any one-second window, WebSocket ping and
pong frames included (``websockets`` answers pings inside its protocol, so a handler
never sees them; the server counts frames before the library handles them). The
message over the cap is not delivered, the connection is closed (1008 by default) and
a :class:`LimitViolation` is reported, so tests can assert a client never crossed one.
"""

from __future__ import annotations

import collections
import http
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event


@dataclass
class HttpAnswer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> HttpAnswer:
    body = obj if isinstance(obj, bytes) else msgspec.json.encode(obj)
    return HttpAnswer(status, body, {"Content-Type": "application/json", **(headers or {})})


HttpHandler = Callable[[str, dict[str, str]], Awaitable[HttpAnswer]]
WsHandler = Callable[[ServerConnection], Awaitable[None]]


@dataclass(frozen=True)
class LimitViolation:
    """A client crossed one of a venue's documented limits."""

    limit: str  # which one: "messages_per_second", "streams_per_connection", "subscribe_credits", ...
    detail: str
    disconnected: bool  # the simulator closed the connection for it, as the venue does
    at: float = field(default_factory=time.monotonic)


ViolationListener = Callable[[LimitViolation], None]


@dataclass(frozen=True)
class MessageLimit:
    """At most ``per_second`` client messages in any one-second window of a connection.

    ``control_frames``: WebSocket ping and pong frames count like data messages (Binance
    counts "a PING frame, a PONG frame, a JSON control message"). Close frames and
    continuation frames of a fragmented message never count."""

    per_second: float
    control_frames: bool = True
    close_code: int = 1008
    close_reason: str = "Too many requests"


_KINDS = {Opcode.TEXT: "text", Opcode.BINARY: "binary", Opcode.PING: "ping", Opcode.PONG: "pong"}
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class _ConnectionLimit:
    """One connection's sliding window. Fed synchronously from the protocol callback,
    so it holds no async primitives; the enforcing task registers ``wake``."""

    def __init__(self, limit: MessageLimit, report: ViolationListener | None, counts: collections.Counter[str]) -> None:
        self.limit = limit
        self.report = report
        self.counts = counts  # the server's totals per frame kind
        self.window: collections.deque[tuple[float, str]] = collections.deque()
        self.violation: LimitViolation | None = None
        self.wake: Callable[[], None] | None = None

    def admit(self, opcode: Opcode) -> bool:
        """Count one incoming frame; False once the connection is over its limit."""
        if self.violation is not None:
            return False
        kind = _KINDS.get(opcode)
        if kind is None:
            return True
        self.counts[kind] += 1
        if kind in ("ping", "pong") and not self.limit.control_frames:
            return True
        now = time.monotonic()
        while self.window and self.window[0][0] <= now - 1.0:
            self.window.popleft()
        self.window.append((now, kind))
        if len(self.window) <= self.limit.per_second:
            return True
        kinds = collections.Counter(k for _, k in self.window)
        self.violation = LimitViolation(
            "messages_per_second",
            f"{len(self.window)} messages within one second, limit {self.limit.per_second:g} ("
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + ")",
            disconnected=True,
        )
        if self.report is not None:
            self.report(self.violation)
        if self.wake is not None:
            self.wake()
        return False


class _CountingConnection(ServerConnection):
    """Sees every frame the client sends before ``websockets`` handles it."""

    limiter: _ConnectionLimit | None = None

    def process_event(self, event: Event) -> None:
        if (
            self.request is not None
            and isinstance(event, Frame)
            and self.limiter is not None
            and not self.limiter.admit(event.opcode)
            and event.opcode in _DATA
        ):
            return  # past the limit nothing more reaches the handler; the close is under way
        super().process_event(event)


class LoopbackServer:
    """``async with LoopbackServer(http=..., ws=...) as server: server.ws_url``"""

    def __init__(
        self,
        *,
        ws: WsHandler,
        http: HttpHandler | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float | None = 20.0,
        max_size: int | None = 2**20,
        message_limit: MessageLimit | None = None,
        on_violation: ViolationListener | None = None,
        refuse_upgrade: Callable[[], bool] | None = None,
    ) -> None:
        self._ws = ws
        #: asked at each WebSocket handshake: True answers 503 (a failed connect)
        self._refuse_upgrade = refuse_upgrade
        self._http = http
        self.host = host
        self.port = port
        self._ping_interval = ping_interval
        self._max_size = max_size
        self.message_limit = message_limit
        self._on_violation = on_violation
        self._server: Server | None = None
        self.http_requests: list[str] = []
        #: frames clients sent, by kind ("text", "binary", "ping", "pong"), when a
        #: ``message_limit`` is set (only then are frames seen before the library)
        self.client_messages: collections.Counter[str] = collections.Counter()

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if self._refuse_upgrade is not None and self._refuse_upgrade():
                body = b"service unavailable"
                return Response(503, "Service Unavailable", Headers({"Content-Length": str(len(body))}), body)
            return None
        parts = urlsplit(request.path)
        self.http_requests.append(request.path)
        if self._http is None:
            answer = HttpAnswer(404, b'{"error":"no HTTP here"}', {"Content-Type": "application/json"})
        else:
            answer = await self._http(parts.path, dict(parse_qsl(parts.query)))
        headers = Headers({"Content-Length": str(len(answer.body)), "Connection": "close", **answer.headers})
        try:
            reason = http.HTTPStatus(answer.status).phrase
        except ValueError:
            reason = "I'm a teapot" if answer.status == 418 else "Unknown"
        return Response(answer.status, reason, headers, answer.body)

    def _connection(self, *args: Any, **kwargs: Any) -> ServerConnection:
        # the window exists from the first frame on: a client may send before the
        # handler task runs
        conn = _CountingConnection(*args, **kwargs)
        assert self.message_limit is not None
        conn.limiter = _ConnectionLimit(self.message_limit, self._on_violation, self.client_messages)
        return conn

    async def _serve_ws(self, conn: ServerConnection) -> None:
        limiter = conn.limiter if isinstance(conn, _CountingConnection) else None
        if limiter is None:
            await self._ws(conn)
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._enforce, conn, limiter)
            await self._ws(conn)
            tg.cancel_scope.cancel()

    @staticmethod
    async def _enforce(conn: ServerConnection, limiter: _ConnectionLimit) -> None:
        exceeded = anyio.Event()
        limiter.wake = exceeded.set
        if limiter.violation is not None:
            exceeded.set()
        await exceeded.wait()
        await conn.close(limiter.limit.close_code, limiter.limit.close_reason)

    async def __aenter__(self) -> LoopbackServer:
        server = await serve(
            self._serve_ws,
            self.host,
            self.port,
            process_request=self._process_request,
            ping_interval=self._ping_interval,
            max_size=self._max_size,
            compression=None,
            # websockets calls this as a factory (protocol, server, **options); it only
            # needs to return a ServerConnection
            create_connection=self._connection if self.message_limit is not None else None,  # type: ignore[arg-type]
        ).__aenter__()
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
