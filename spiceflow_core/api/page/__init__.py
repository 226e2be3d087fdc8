"""The status page: static files shipped as package data, served by the control API.

    GET /                  index.html
    GET /page/status.css   the style sheet
    GET /page/status.js    the script (vanilla JS, no build step)

These paths answer without the bearer token: they hold no data. The page asks for the
token once, keeps it in the tab's ``sessionStorage`` and sends it in the
``Authorization`` header of every data request (``/health``, ``/subscriptions``,
``/subscribe``, ``/unsubscribe``, ``/live``).

The Content-Security-Policy allows scripts, styles and connections to this origin only,
so nothing an instrument name or an error message holds can run as code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

#: URL path -> (file in this package, media type)
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page/status.css": ("status.css", "text/css; charset=utf-8"),
    "/page/status.js": ("status.js", "text/javascript; charset=utf-8"),
}
#: the paths the guard serves without a token
PAGE_PATHS = frozenset(ASSETS)

HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # the files change with the installed version; a reload must not show an old page
    "cache-control": "no-cache",
}


def _serve(body: bytes, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return Response(body, media_type=media_type, headers=HEADERS)

    return serve


def page_routes() -> list[BaseRoute]:
    """The page's routes; each file is read once, here (a few kilobytes)."""
    return [
        Route(path, _serve(files(__name__).joinpath(name).read_bytes(), media_type), methods=["GET"])
        for path, (name, media_type) in ASSETS.items()
    ]


def openapi_paths() -> dict[str, Any]:
    """The page's files in the control API's OpenAPI schema."""
    return {
        path: {
            "get": {
                "summary": f"Status page: {name} (no token)",
                "operationId": "page_" + name.replace(".", "_"),
                "responses": {"200": {"description": name, "content": {media_type.split(";")[0]: {}}}},
            }
        }
        for path, (name, media_type) in ASSETS.items()
    }
