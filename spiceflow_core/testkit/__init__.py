"""Building blocks for venue simulators and tests: a real loopback WebSocket + HTTP
server, fault switches, and helpers. Plugins' simulators build on this."""

from .server import HttpAnswer, LoopbackServer, json_answer
from .faults import FaultSwitches

__all__ = ["HttpAnswer", "LoopbackServer", "json_answer", "FaultSwitches"]
