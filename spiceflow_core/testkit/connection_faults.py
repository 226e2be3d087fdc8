"""The connection faults every queueing simulator applies the same way (``stall``,
``drop``, ``reset``, ``malformed``, ``unknown_shape``, ``binary``, ``oversized``) to all
of its connections; the frames they send are the venue's own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import anyio

from spiceflow_core.testkit.connections import Delivery, Frame, QueuedConnection

#: about what an oversized frame carries besides its padding
_OVERSIZED_ENVELOPE = 60


@dataclass(frozen=True)
class FaultFrames:
    """A venue's frames for the faults that send one: its own protocol gone wrong.
    A fault whose frame is None is not the venue's: it stays armed."""

    malformed: str  # not valid JSON, cut where the venue's book frames begin
    unknown_shape: str  # valid JSON of no shape the venue sends
    binary: bytes | None = None
    #: a valid frame of the venue around the padding it is given
    oversized: Callable[[str], str] | None = None


def apply_connection_faults(delivery: Delivery, connections: Sequence[QueuedConnection], frames: FaultFrames) -> None:
    """Consume the armed connection faults once."""
    f = delivery.faults
    if f.stall > 0:
        delivery.stall_until = time.monotonic() + f.stall
        f.stall = 0.0
    if f.take("drop"):
        for conn in connections:
            conn.close(1001, "going away (fault)")
    if f.take("reset"):
        for conn in connections:
            conn.reset()
    if not connections:
        return  # a fault that sends a frame waits for a connection to send it to
    one_frame: tuple[tuple[str, Frame | None], ...] = (
        ("malformed", frames.malformed),
        ("unknown_shape", frames.unknown_shape),
        ("binary", frames.binary),
    )
    for name, frame in one_frame:
        if frame is not None and f.take(name):
            _send_to_all(connections, frame)
    if frames.oversized is not None and f.take("oversized"):
        _send_to_all(connections, frames.oversized("x" * max(0, f.oversized_bytes - _OVERSIZED_ENVELOPE)))


def _send_to_all(connections: Sequence[QueuedConnection], frame: Frame) -> None:
    for conn in connections:
        conn.send(frame)


async def apply_connection_faults_forever(
    delivery: Delivery, connections: Iterable[QueuedConnection], frames: FaultFrames, *, every: float = 0.01
) -> NoReturn:
    while True:
        await anyio.sleep(every)
        apply_connection_faults(delivery, list(connections), frames)
