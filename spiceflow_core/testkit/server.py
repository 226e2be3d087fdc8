"""A loopback server speaking real WebSocket and HTTP on one port (``websockets``).

HTTP GETs are answered by an ``http`` callback; WebSocket upgrades are handed to a
``ws`` callback with the live ``ServerConnection`` (so simulators can send, close
cleanly, or ``connection.transport.abort()`` for a TCP reset)."""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import msgspec
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


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
    ) -> None:
        self._ws = ws
        self._http = http
        self.host = host
        self.port = port
        self._ping_interval = ping_interval
        self._max_size = max_size
        self._server = None
        self.http_requests: list[str] = []

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
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

    async def __aenter__(self) -> LoopbackServer:
        self._server = await serve(
            self._ws,
            self.host,
            self.port,
            process_request=self._process_request,
            ping_interval=self._ping_interval,
            max_size=self._max_size,
            compression=None,
        ).__aenter__()
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
