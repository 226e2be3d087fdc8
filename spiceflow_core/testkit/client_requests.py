"""What tests read of the frames clients sent a simulator."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec


def client_requests(frames: Iterable[str], field: str, value: str) -> list[dict[str, Any]]:
    """The decoded JSON objects among ``frames`` whose ``field`` is ``value`` (a venue's
    ``op`` or ``method``), in order; frames that are not JSON objects are passed over."""
    out = []
    for frame in frames:
        try:
            obj = msgspec.json.decode(frame)
        except msgspec.DecodeError:
            continue
        if isinstance(obj, dict) and obj.get(field) == value:
            out.append(obj)
    return out
