"""How OKX book messages continue each other, and the book checksum.

Sequence (``books`` channel): every message carries ``seqId`` and ``prevSeqId``; the
snapshot has ``prevSeqId = -1``. An update continues the book when its ``prevSeqId``
is the ``seqId`` of the last message applied -- also the first one after the snapshot.
A no-change update (sent when the book is quiet) has ``seqId == prevSeqId``: it
chains like any other and changes nothing. After a maintenance reset OKX sends an
update whose ``seqId`` is *smaller* than its ``prevSeqId``; it still names the last
``seqId`` and the chain goes on from the smaller number. That is the core's
:class:`ChainPolicy` (APPLY if ``prev == last``; DROP if ``seq <= last``; else GAP),
and a GAP is healed by resubscribing (``resync = "resubscribe"``: a fresh snapshot).

Older messages (recorded sessions) carry a checksum but no ``seqId``: the session
numbers them itself, each following the previous one, so the policy accepts them and
the checksum alone validates the book.

Checksum: CRC32 over the best 25 levels, bid and ask interleaved --
``bid1px:bid1sz:ask1px:ask1sz:bid2px:...`` (when one side has fewer levels, the other
side's go on alone) -- of the strings exactly as OKX sent them, as a signed 32-bit
integer. OKX now sends 0 on live messages: the parser makes 0 "absent" (None), never a
pass.
"""

from __future__ import annotations

import zlib

from spiceflow_core.book.policy import ChainPolicy
from spiceflow_core.model import Level

from .config import CHECKSUM_DEPTH

POLICY = ChainPolicy()


def checksum_text(bids: list[Level], asks: list[Level], depth: int = CHECKSUM_DEPTH) -> str:
    """The string OKX computes its CRC32 over (exposed for tests and the simulator)."""
    parts: list[str] = []
    bids, asks = bids[:depth], asks[:depth]
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    return ":".join(parts)


def signed_crc32(text: str) -> int:
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


class OkxChecksum:
    """The core's ``BookChecksum`` for OKX books."""

    depth = CHECKSUM_DEPTH

    def compute(self, bids: list[Level], asks: list[Level]) -> int:
        return signed_crc32(checksum_text(bids, asks, self.depth))

    def __repr__(self) -> str:
        return f"OkxChecksum(depth={self.depth})"


CHECKSUM = OkxChecksum()
