"""Helpers of the NATS plugin's tests: a raw NATS collector; the sink test kit of the core
(wire messages stamped by the real Publisher, the sink's task run as the broadcast actor
runs it, polling) re-exported."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from spiceflow_core.broadcast.wire import decoder
from spiceflow_core.testkit.sinks import Offered, Wire, offer, running, wait_for

__all__ = ["Collector", "Offered", "Wire", "collecting", "offer", "running", "wait_for"]


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
