"""The running scope of a simulator built on :class:`LiveConnections`: its loopback
server, the connection faults applied all along, and a task group for the simulator's
own background tasks (its market), all ended with the scope."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc

from spiceflow_core.testkit.connection_faults import FaultFrames, apply_connection_faults_forever
from spiceflow_core.testkit.connections import LiveConnections
from spiceflow_core.testkit.server import LoopbackServer


@contextlib.asynccontextmanager
async def serving(
    server: LoopbackServer, connections: LiveConnections[Any], fault_frames: FaultFrames
) -> AsyncIterator[anyio.abc.TaskGroup]:
    """``async with serving(...) as tg: tg.start_soon(market); yield sim`` inside a
    simulator's ``running()``; on the way out every connection still open is reset."""
    async with server:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(apply_connection_faults_forever, connections.delivery, connections, fault_frames)
                yield tg
                tg.cancel_scope.cancel()
        finally:
            connections.reset_all()
