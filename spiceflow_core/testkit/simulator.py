"""The shape every venue simulator has, so tests, the chaos suite, ``spiceflow
simulate`` and the demo profile drive any venue the same way."""

from __future__ import annotations

from typing import Protocol

from spiceflow_core.model import Level
from spiceflow_core.plugin.contract import Endpoints
from spiceflow_core.testkit.faults import FaultSwitches


class Simulator(Protocol):
    endpoints: Endpoints  # loopback ws_url / rest_url to point the pipeline at
    faults: FaultSwitches
    client_frames: list[str]  # every frame clients sent, in order (tests assert on them)

    def symbols(self) -> list[str]:
        """The symbols this simulator streams."""
        ...

    def truth(self, symbol: str) -> tuple[int, list[Level], list[Level]] | None:
        """The exchange's full book (sequence, bids best-first, asks best-first) as of
        the last update sent for ``symbol``, or None if nothing was sent yet."""
        ...
