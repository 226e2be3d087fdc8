"""Rendezvous (highest random weight) hashing: each key goes to the member with the
highest score ``hash(member, key)``. Every member computes the same answer from the
same member list, and a membership change moves only the keys of the member that left
(to the others, spread evenly) or the keys the newcomer now wins."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def score(member: str, key: str) -> int:
    digest = hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, members: Iterable[str]) -> str | None:
    """The member that owns ``key`` (None with no member); ties broken by name."""
    best: tuple[int, str] | None = None
    for member in members:
        candidate = (score(member, key), member)
        if best is None or candidate > best:
            best = candidate
    return best[1] if best is not None else None


def assign(keys: Iterable[str], members: Iterable[str]) -> dict[str, str]:
    """key -> owning member, for every key (empty with no member)."""
    pool = sorted(set(members))
    if not pool:
        return {}
    return {key: owner(key, pool) or "" for key in keys}
