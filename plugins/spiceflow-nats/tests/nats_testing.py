"""Helpers of the NATS plugin's tests: wire messages stamped and encoded by the core's
real Publisher (the exact bytes the broadcast actor offers every sink), the sink's task
run as the actor runs it, a raw NATS collector, polling."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from spiceflow_nats.sink import NatsSink

from spiceflow_core.broadcast.publisher import Publisher
from spiceflow_core.broadcast.wire import BookMessage, StatusMessage, TradeMessage, WireMessage, decoder

Offered = tuple[str, bytes, WireMessage]


class Wire:
    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.sequence = 0

    def _stamped(self, message: WireMessage) -> Offered:
        self.publisher.publish(message)
        return self.publisher.last_topic, self.publisher.last_body, message

    def book(self, symbol: str, venue: str = "toy", bid: str = "100.5") -> Offered:
        self.sequence += 1
        return self._stamped(
            BookMessage(
                venue=venue,
                symbol=symbol,
                instrument=f"{venue}.spot.{symbol}",
                sequence=self.sequence,
                bids=[(bid, "1.25"), ("100.4", "3")],  # type: ignore[list-item]  # tuples encode as levels
                asks=[("100.6", "0.5")],  # type: ignore[list-item]
                recv_ts_ns=time.time_ns(),
            )
        )

    def trade(self, symbol: str, venue: str = "toy", price: str = "100.55") -> Offered:
        self.sequence += 1
        return self._stamped(
            TradeMessage(venue=venue, symbol=symbol, trade_id=str(self.sequence), price=price, size="0.1", side="buy")
        )

    def status(self, venue: str = "toy", symbol: str = "*") -> Offered:
        return self._stamped(StatusMessage(venue=venue, symbol=symbol, state="stats", counters={"published": 1}))


def offer(sink: NatsSink, messages: list[Offered]) -> None:
    for topic, body, message in messages:
        sink.offer(topic, body, message)


@contextlib.asynccontextmanager
async def running(sink: NatsSink) -> AsyncIterator[NatsSink]:
    """The sink's task running (as the broadcast actor runs it), then cancelled and the
    sink closed (as the actor closes it)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(sink.run)
        try:
            yield sink
        finally:
            tg.cancel_scope.cancel()
    await sink.aclose()


class Collector:
    """A plain nats-py subscriber: every (subject, body) in arrival order."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []

    async def on_msg(self, msg: Msg) -> None:
        self.got.append((msg.subject, msg.data))

    def seqs(self, subject: str) -> list[int]:
        return [decoder.decode(body).topic_seq for s, body in self.got if s == subject]


@contextlib.asynccontextmanager
async def collecting(url: str, subject: str = ">", **connect: Any) -> AsyncIterator[Collector]:
    collector = Collector()
    nc: NATS = await nats.connect(url, **connect)
    try:
        await nc.subscribe(subject, cb=collector.on_msg)
        # registered by the server before anything is published: two round trips, as in
        # spiceflow_nats.subscriber (nats-py's PING may overtake its buffered SUB)
        await nc.flush()
        await nc.flush()
        yield collector
    finally:
        await nc.close()


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    with anyio.fail_after(timeout):
        while True:
            value = predicate()
            if value:
                return value
            await anyio.sleep(interval)
