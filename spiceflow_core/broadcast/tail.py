"""``spiceflow tail``: watch the broadcast from a terminal or a script.

Human mode prints one line per topic, e.g.::

    book.binance.BTCUSDT  1.234 @ 43250.10 | 43250.20 @ 0.500  spread 0.10  12.3 upd/s

(bid size @ bid | ask @ ask size; the spread is the exact decimal difference). On a
terminal the lines are redrawn in place (at most ~10 times a second); when the output
is a pipe or file every update is appended as a plain line. ``as_json`` prints each
decoded message as one JSON object per line instead: the wire fields, including the
``type`` tag, with a leading ``"topic"`` key. ``limit`` exits 0 after that many
messages.
"""

from __future__ import annotations

import collections
import decimal
import sys
import time
from typing import TextIO

import anyio
import msgspec
import zmq

from spiceflow_core.broadcast.subscriber import Received, Subscriber
from spiceflow_core.broadcast.wire import BookMessage, StatusMessage, TopMessage, TradeMessage

__all__ = ["RateMeter", "format_line", "tail"]

_RATE_WINDOW_S = 5.0
_REDRAW_INTERVAL_S = 0.1
# Exact subtraction for any price an exchange sends (the default 28 digits would
# round e.g. 30-digit inputs; 60 is plenty and costs nothing measurable here).
_DEC = decimal.Context(prec=60)


class RateMeter:
    """Updates per second over a sliding window of the last few seconds."""

    __slots__ = ("_times",)

    def __init__(self) -> None:
        self._times: collections.deque[float] = collections.deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        times = self._times
        if len(times) < 2:
            return 0.0
        # Span from the oldest kept update to now; at least 1 s so a short burst
        # does not read as a huge rate.
        return len(times) / max(now - times[0], 1.0)

    def _trim(self, now: float) -> None:
        times = self._times
        while times and now - times[0] > _RATE_WINDOW_S:
            times.popleft()


def _spread(bid: str | None, ask: str | None) -> str:
    if bid is None or ask is None:
        return "-"
    try:
        return format(_DEC.subtract(decimal.Decimal(ask), decimal.Decimal(bid)), "f")
    except decimal.InvalidOperation:
        return "?"


def _quote(bid: str | None, bid_size: str | None, ask: str | None, ask_size: str | None) -> str:
    left = f"{bid_size} @ {bid}" if bid is not None else "-"
    right = f"{ask} @ {ask_size}" if ask is not None else "-"
    return f"{left} | {right}  spread {_spread(bid, ask)}"


def format_line(received: Received, rate: float) -> str:
    """The human line for one message (without trailing newline)."""
    topic, msg, missed = received
    if isinstance(msg, BookMessage):
        bid = msg.bids[0] if msg.bids else (None, None)
        ask = msg.asks[0] if msg.asks else (None, None)
        body = _quote(bid[0], bid[1], ask[0], ask[1])
    elif isinstance(msg, TopMessage):
        body = _quote(msg.bid_price, msg.bid_size, msg.ask_price, msg.ask_size)
    elif isinstance(msg, TradeMessage):
        side = f"{msg.side} " if msg.side else ""
        body = f"trade {side}{msg.size} @ {msg.price}"
    elif isinstance(msg, StatusMessage):
        body = f"status {msg.state}" + (f" ({msg.reason})" if msg.reason else "")
        if msg.counters:
            body += " " + " ".join(f"{k}={v}" for k, v in sorted(msg.counters.items()))
    else:  # pragma: no cover - the decoder only yields the types above
        body = type(msg).__name__
    unit = "upd/s" if not isinstance(msg, TradeMessage) else "trades/s"
    line = f"{topic}  {body}  {rate:.1f} {unit}"
    if missed:
        line += f"  (missed {missed})"
    return line


class _Screen:
    """In-place redraw of one line per topic with ANSI cursor movement."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lines: dict[str, str] = {}  # insertion order = display order
        self.drawn = 0
        self.next_draw = 0.0
        self.dirty = False  # lines changed since the last draw

    def update(self, topic: str, line: str, now: float, force: bool = False) -> None:
        self.lines[topic] = line
        self.dirty = True
        if force or now >= self.next_draw:
            self.draw()
            self.next_draw = now + _REDRAW_INTERVAL_S

    def draw(self) -> None:
        self.dirty = False
        parts = []
        if self.drawn:
            parts.append(f"\x1b[{self.drawn}F")  # cursor to start of our first line
        for line in self.lines.values():
            parts.append(f"\x1b[2K{line}\n")  # clear the line, write it
        self.out.write("".join(parts))
        self.out.flush()
        self.drawn = len(self.lines)


def _is_tty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


async def tail(
    address: str,
    prefixes: list[str],
    *,
    as_json: bool = False,
    limit: int | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Print messages from the broadcast at ``address`` matching ``prefixes``.

    Returns the process exit code: 0 after ``limit`` messages (runs until cancelled
    when ``limit`` is None), 2 if the address cannot be used.
    """
    if limit is not None and limit <= 0:
        return 0
    json_encode = msgspec.json.Encoder().encode
    tty = not as_json and _is_tty(out)
    screen = _Screen(out) if tty else None
    meters: dict[str, RateMeter] = {}
    count = 0
    try:
        sub = Subscriber(address, prefixes or [""])
        await sub.aopen()  # a plugin's address (nats://...) connects here
    except (zmq.ZMQError, OSError) as exc:
        print(f"spiceflow tail: cannot connect to {address!r}: {exc}", file=sys.stderr)
        return 2
    try:
        while True:
            if screen is not None and screen.dirty:
                # Throttled redraw still pending: wait for a message only until it
                # is due, so a quiet topic's last update does not stay hidden.
                received = None
                with anyio.move_on_after(max(screen.next_draw - time.monotonic(), 0.0)):
                    received = await sub.receive()
                if received is None:
                    screen.draw()
                    screen.next_draw = time.monotonic() + _REDRAW_INTERVAL_S
                    continue
            else:
                received = await sub.receive()
            count += 1
            done = limit is not None and count >= limit
            if as_json:
                body = json_encode(received.message)  # '{"type":...,...}'
                out.write('{"topic":' + json_encode(received.topic).decode() + "," + body[1:].decode() + "\n")
                if done:
                    out.flush()
            else:
                now = time.monotonic()
                meter = meters.get(received.topic)
                if meter is None:
                    meter = meters[received.topic] = RateMeter()
                meter.tick(now)
                line = format_line(received, meter.rate(now))
                if screen is not None:
                    screen.update(received.topic, line, now, force=done)
                else:
                    out.write(line + "\n")
            if done:
                out.flush()
                return 0
    finally:
        await sub.aclose()
        try:
            out.flush()
        except (ValueError, OSError):
            pass
