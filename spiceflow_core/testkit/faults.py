"""Fault switches shared by every simulator: tests and the chaos suite flip them,
the simulator consumes them at its next opportunity."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FaultSwitches:
    """One-shot counters (each consumed once) plus persistent modes.

    - ``drop``: close the connections cleanly; ``reset``: abort them (TCP reset)
    - ``stall``: seconds to send nothing (but keep the connection open)
    - ``gap``: skip one update id on the next book frame of some instrument
    - ``malformed``: send one frame that is not valid JSON
    - ``rest_errors``: list of HTTP statuses the next REST answers use (e.g. [429, 500])
    - ``slow``: seconds to sleep between frames (persistent while non-zero)
    - ``oversized``: send one frame of ``oversized_bytes`` (valid JSON, over the limit)
    - ``binary``: send one binary WebSocket frame
    - ``bad_size``: the next book update goes out with a level whose size is negative
      or not a number (alternating); the truth has the real update
    - ``stale_snapshot``: the next REST snapshot is an older one (a venue whose REST
      cache lags the stream), older than the deltas the client has buffered
    - ``rest_faults``: like ``rest_errors`` but "timeout" (answer after
      ``rest_timeout_s``) or "invalid_json" (a 200 whose body is not JSON)
    - ``ignore_heartbeat_answers``: the server ignores the next heartbeat answer(s) and
      closes the connection as if it had not been answered
    - ``refuse_connect``: the next WebSocket handshake(s) are answered 503 (a reconnect
      that fails)
    """

    drop: int = 0
    reset: int = 0
    stall: float = 0.0
    gap: int = 0
    malformed: int = 0
    duplicate: int = 0
    reorder: int = 0
    unknown_shape: int = 0
    rest_errors: list[int] = field(default_factory=list)
    slow: float = 0.0
    refuse_subscribe: int = 0
    skip_heartbeats: int = 0
    # additions for the chaos suite (tests/chaos)
    oversized: int = 0
    oversized_bytes: int = 5 * 2**20
    binary: int = 0
    bad_size: int = 0
    stale_snapshot: int = 0
    rest_faults: list[str] = field(default_factory=list)
    rest_timeout_s: float = 3.0
    ignore_heartbeat_answers: int = 0
    refuse_connect: int = 0

    def take(self, name: str) -> bool:
        """Consume one occurrence of a one-shot fault; True if it was armed."""
        value = getattr(self, name)
        if value > 0:
            setattr(self, name, value - 1)
            return True
        return False

    def take_rest_error(self) -> int | None:
        return self.rest_errors.pop(0) if self.rest_errors else None

    def take_rest_fault(self) -> str | None:
        return self.rest_faults.pop(0) if self.rest_faults else None
