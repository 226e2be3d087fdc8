"""Building blocks for venue simulators and tests: a real loopback WebSocket + HTTP
server, fault switches, and helpers. Plugins' simulators build on this."""

from spiceflow_core.testkit.faults import FaultSwitches
from spiceflow_core.testkit.server import HttpAnswer, LoopbackServer, json_answer

__all__ = ["FaultSwitches", "HttpAnswer", "LoopbackServer", "json_answer"]
