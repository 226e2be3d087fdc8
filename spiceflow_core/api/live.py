"""``GET /live``: the status page's live feed, as server-sent events.

    GET /live                          the status numbers, 5 times a second
    GET /live?instrument=VENUE:SYMBOL  the same plus that instrument's top-10 book

Each event is ``event: tick`` with one JSON :class:`LiveFrame`; at shutdown a last
``event: end`` and the response finishes (a clean end of the HTTP body, not a reset).

Why server-sent events read with ``fetch()`` rather than a WebSocket or
``EventSource``: the stream is plain HTTP, so the bearer token travels in the
``Authorization`` header and the guard checks it exactly as for every other endpoint
(``EventSource`` cannot send headers; a WebSocket would need a second, in-band way to
authenticate).

The feed *pulls*: every ``INTERVAL_S`` it reads the book and the counters, so the frame
path never learns that anyone is watching and a slow browser costs nothing but its own
stream. At most ``MAX_STREAMS`` streams run at once; one more is answered 503.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio
import msgspec

from spiceflow_core.api.guard import quoted
from spiceflow_core.instruments import AmbiguousInstrument, InactiveInstrument, UnknownInstrument, close_matches
from spiceflow_core.model import Level

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.runtime.orchestrator import Orchestrator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: seconds between two frames of a stream
INTERVAL_S = 0.2
#: levels per side in a frame's book
DEPTH = 10
#: live streams served at once (each costs a task and a read of the book per tick)
MAX_STREAMS = 8


class BookView(msgspec.Struct, kw_only=True):
    venue: str
    symbol: str
    #: "unsubscribed" when no book subscription exists for the instrument, else the feed
    #: state (pending, synced, stale, resyncing)
    state: str
    reason: str = ""
    sequence: int | None = None
    exchange_ts_ms: int | None = None
    #: best first; empty unless the book is synced (a book that is not holds no truth)
    bids: list[Level] = []
    asks: list[Level] = []


class VenueNumbers(msgspec.Struct, kw_only=True):
    #: receive -> publish latency over the venue's recent window, milliseconds
    p50_ms: float
    p99_ms: float
    counters: dict[str, int]


class LiveFrame(msgspec.Struct, kw_only=True):
    #: server wall clock, milliseconds since the epoch
    ts_ms: int
    venues: dict[str, VenueNumbers]
    book: BookView | None = None


class LiveError(Exception):
    """A request the feed answers with a JSON error instead of a stream."""

    def __init__(self, status: int, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.body = msgspec.json.encode({"error": message, **extra})


def _event(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


class LiveFeed:
    """The ``/live`` ASGI endpoint. Created inside the event loop that serves it;
    :meth:`close` ends every stream (the API server calls it when it stops)."""

    def __init__(
        self, orchestrator: Orchestrator, *, interval: float = INTERVAL_S, max_streams: int = MAX_STREAMS
    ) -> None:
        self.orc = orchestrator
        self.interval = interval
        self.max_streams = max_streams
        self.streams = 0
        self._closing = anyio.Event()
        self._numbers: tuple[float, dict[str, VenueNumbers]] = (float("-inf"), {})

    def close(self) -> None:
        self._closing.set()

    # -- what a frame holds ---------------------------------------------------------
    def locate(self, wanted: str) -> tuple[str, str]:
        """(venue, symbol) for ``VENUE:SYMBOL`` (symbol or normalized id); LiveError
        when there is no such instrument."""
        venue, sep, name = wanted.partition(":")
        if not sep or not venue or not name:
            raise LiveError(400, f"instrument must be VENUE:SYMBOL (got {quoted(wanted)})")
        runtime = self.orc.runtimes.get(venue)
        if runtime is None:
            running = ", ".join(sorted(self.orc.runtimes)) or "none"
            raise LiveError(404, f"unknown venue {quoted(venue)} (running: {running})")
        try:
            return venue, runtime.resolve(name).symbol
        except UnknownInstrument:
            near = close_matches(name, runtime.instruments)
            raise LiveError(404, f"unknown instrument {quoted(name)} on {venue}", close_matches=near) from None
        except (AmbiguousInstrument, InactiveInstrument) as exc:
            raise LiveError(400, str(exc)) from None

    def numbers(self) -> dict[str, VenueNumbers]:
        """Latency percentiles and counters per venue; computed at most once per half
        interval whatever the number of streams (a percentile sorts the whole window)."""
        now = time.monotonic()
        at, cached = self._numbers
        if now - at < self.interval / 2:
            return cached
        out = {}
        for name, runtime in sorted(self.orc.runtimes.items()):
            lat = runtime.metrics.latency.percentiles(0.5, 0.99)
            out[name] = VenueNumbers(p50_ms=lat["p50"], p99_ms=lat["p99"], counters=runtime.metrics.snapshot())
        self._numbers = (now, out)
        return out

    def book(self, venue: str, symbol: str) -> BookView:
        runtime = self.orc.runtimes.get(venue)  # looked up each time: a restarted venue is a new runtime
        feed = runtime.table.book(symbol) if runtime is not None else None
        if feed is None:
            return BookView(venue=venue, symbol=symbol, state="unsubscribed")
        sync = feed.sync
        bids, asks = sync.book.top(DEPTH) if feed.state == "synced" else ([], [])
        return BookView(
            venue=venue,
            symbol=symbol,
            state=feed.state,
            reason=feed.reason,
            sequence=sync.last_sequence,
            exchange_ts_ms=sync.last_exchange_ts_ms,
            bids=bids,
            asks=asks,
        )

    def frame(self, instrument: tuple[str, str] | None) -> LiveFrame:
        return LiveFrame(
            ts_ms=time.time_ns() // 1_000_000,
            venues=self.numbers(),
            book=self.book(*instrument) if instrument is not None else None,
        )

    # -- ASGI ---------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            wanted = _query_value(scope, "instrument")
            instrument = self.locate(wanted) if wanted else None
            if self._closing.is_set():
                raise LiveError(503, "the server is shutting down")
            if self.streams >= self.max_streams:
                raise LiveError(503, f"too many live streams (at most {self.max_streams})")
        except LiveError as exc:
            await _answer(send, exc.status, exc.body)
            return
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no"),  # a proxy in front must not hold frames back
            ],
        }
        if scope.get("method") == "HEAD":  # the headers a stream would have, and no stream
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return
        self.streams += 1
        try:
            await send(start)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._until_disconnect, receive, tg.cancel_scope)
                await self._stream(send, instrument)
                tg.cancel_scope.cancel()
        finally:
            self.streams -= 1

    async def _stream(self, send: Send, instrument: tuple[str, str] | None) -> None:
        encode = msgspec.json.Encoder().encode
        while not self._closing.is_set():
            chunk = _event("tick", encode(self.frame(instrument)))
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            with anyio.move_on_after(self.interval):
                await self._closing.wait()
        await send({"type": "http.response.body", "body": _event("end", b'{"reason":"shutdown"}'), "more_body": False})

    @staticmethod
    async def _until_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
        """The client went away: stop its stream (a send to a closed connection may
        neither fail nor block, so the stream would not notice by itself)."""
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()


def _query_value(scope: Scope, key: str) -> str:
    values = parse_qs((scope.get("query_string") or b"").decode("latin-1")).get(key)
    return values[0] if values else ""


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def openapi_paths() -> dict[str, Any]:
    """``/live`` in the control API's OpenAPI schema."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "/live": {
            "get": {
                "summary": "Live feed for the status page: server-sent events, 5 per second",
                "description": (
                    "`event: tick` with one JSON LiveFrame (latency and counters per venue, and with "
                    "`instrument` that instrument's top-10 book); `event: end` at shutdown."
                ),
                "operationId": "live_feed",
                "parameters": [
                    {
                        "name": "instrument",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "VENUE:SYMBOL (symbol or normalized id)",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": {"description": "Not VENUE:SYMBOL, ambiguous or inactive", "content": error},
                    "404": {"description": "Unknown venue or instrument", "content": error},
                    "503": {"description": "Too many live streams, or shutting down", "content": error},
                },
            }
        }
    }
