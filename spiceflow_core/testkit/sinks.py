"""Helpers for testing a sink plugin: wire messages stamped and encoded by the core's
real :class:`Publisher` (the exact topic and bytes the broadcast actor offers every
sink), a sink's task run as the broadcast actor runs it, and polling (``wait_for``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar, cast

import anyio

from spiceflow_core.broadcast.publisher import Publisher
from spiceflow_core.broadcast.wire import (
    BookLevel,
    BookMessage,
    StatusMessage,
    TopMessage,
    TradeMessage,
    WireMessage,
)
from spiceflow_core.sinks.contract import Sink
from spiceflow_core.testkit.polling import wait_for

__all__ = ["Offered", "Wire", "loaded_by_discovery", "offer", "running", "wait_for"]

#: what a sink's ``offer`` takes: (topic, body, message)
Offered = tuple[str, bytes, WireMessage]
SinkT = TypeVar("SinkT", bound=Sink)


class Wire:
    """Wire messages of a toy venue, each published once so it carries the topic, the
    ``topic_seq`` and the bytes a live run would give the sinks."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.sequence = 0

    def _stamped(self, message: WireMessage) -> Offered:
        self.publisher.publish(message)
        return self.publisher.last_topic, self.publisher.last_body, message

    def book(
        self,
        symbol: str,
        venue: str = "toy",
        bid: str = "100.5",
        *,
        bids: list[tuple[str, str]] | None = None,
        asks: list[tuple[str, str]] | None = None,
        recv_ts_ns: int | None = None,
    ) -> Offered:
        """A book whose best bid is ``bid`` (two bids, one ask) unless ``bids`` / ``asks``
        say otherwise."""
        self.sequence += 1
        return self._stamped(
            BookMessage(
                venue=venue,
                symbol=symbol,
                instrument=f"{venue}.spot.{symbol}",
                sequence=self.sequence,
                # (price, size) tuples encode exactly as the array-like BookLevel
                bids=cast("list[BookLevel]", [(bid, "1.25"), ("100.4", "3")] if bids is None else bids),
                asks=cast("list[BookLevel]", [("100.6", "0.5")] if asks is None else asks),
                exchange_ts_ms=1_700_000_000_000 + self.sequence,
                recv_ts_ns=time.time_ns() if recv_ts_ns is None else recv_ts_ns,
            )
        )

    def trade(self, symbol: str, venue: str = "toy", price: str = "100.55") -> Offered:
        self.sequence += 1
        return self._stamped(
            TradeMessage(
                venue=venue,
                symbol=symbol,
                trade_id=str(self.sequence),
                price=price,
                size="0.1",
                side="buy",
                recv_ts_ns=time.time_ns(),
            )
        )

    def top(self, symbol: str, venue: str = "toy") -> Offered:
        self.sequence += 1
        return self._stamped(
            TopMessage(
                venue=venue,
                symbol=symbol,
                bid_price="100.5",
                bid_size="2",
                ask_price=None,
                ask_size=None,
                sequence=self.sequence,
                recv_ts_ns=time.time_ns(),
            )
        )

    def status(self, venue: str = "toy", symbol: str = "*") -> Offered:
        return self._stamped(StatusMessage(venue=venue, symbol=symbol, state="stats", counters={"published": 1}))


def offer(sink: Sink, messages: Iterable[Offered]) -> None:
    for topic, body, message in messages:
        sink.offer(topic, body, message)


@contextlib.asynccontextmanager
async def running(sink: SinkT) -> AsyncIterator[SinkT]:
    """The sink's task running (as the broadcast actor runs it), then cancelled and the
    sink closed (as the actor closes it)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(sink.run)
        try:
            yield sink
        finally:
            tg.cancel_scope.cancel()
    await sink.aclose()


def loaded_by_discovery(sink: str, modules: Iterable[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported once it discovered the sink
    plugins (as every command does); asserts ``sink`` was among them. A sink plugin
    should import its heavy libraries only when a run configures it."""
    import subprocess
    import sys

    probe = (
        "import sys; from spiceflow_core.sinks.registry import discover_sinks; "
        f"names = discover_sinks().names(); assert {sink!r} in names, names; "
        f"print(','.join(m for m in {sorted(modules)!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]
