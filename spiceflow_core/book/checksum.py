"""A venue's book checksum (OKX, Kraken): the venue sends, with a snapshot or an update,
a number computed from the top levels of its book; the local book computes the same
number from its own top levels after applying the message, and a mismatch is a gap."""

from __future__ import annotations

from typing import Protocol

from spiceflow_core.model import Level


class BookChecksum(Protocol):
    #: levels per side the checksum covers
    depth: int

    def compute(self, bids: list[Level], asks: list[Level]) -> int:
        """The checksum of a book whose best ``depth`` levels per side (best first, the
        exact strings as received) are ``bids`` and ``asks``."""
        ...
