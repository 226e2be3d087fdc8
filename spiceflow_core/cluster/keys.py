"""Names in the cluster's KV buckets and the records stored under them.

NATS KV keys allow ``[-/_=.a-zA-Z0-9]`` and use ``.`` as a token separator, so each
part of a key (venue, symbol, feed) is escaped: every other character, and ``.`` and
``=`` themselves, becomes ``=XX`` (its UTF-8 bytes in hex). ``BTC.USDT`` -> ``BTC=2EUSDT``.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from spiceflow_core.model import Feed

#: live members, one key per member, refreshed every heartbeat; the bucket's TTL expires the dead
MEMBERS_BUCKET = "spiceflow_members"
#: desired subscriptions ``venue.symbol.feed`` (the cluster-wide subscription list)
DESIRED_BUCKET = "spiceflow_desired"
#: owner and ownership epoch of each instrument ``venue.symbol``
OWNERS_BUCKET = "spiceflow_owners"
#: what the owner of a subscription reports about it ``venue.symbol.feed``
STATUS_BUCKET = "spiceflow_status"

T = TypeVar("T")

_PLAIN = re.compile(r"[-_/a-zA-Z0-9]")


def escape(part: str) -> str:
    """One key token: the allowed characters as they are, others as ``=XX`` bytes."""
    if not part:
        raise ValueError("empty key part")
    return "".join(ch if _PLAIN.fullmatch(ch) else "".join(f"={b:02X}" for b in ch.encode()) for ch in part)


def unescape(token: str) -> str:
    out = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "=":
            out.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            out += token[i].encode()
            i += 1
    return out.decode()


def instrument_key(venue: str, symbol: str) -> str:
    return f"{escape(venue)}.{escape(symbol)}"


def subscription_key(venue: str, symbol: str, feed: str) -> str:
    return f"{instrument_key(venue, symbol)}.{escape(feed)}"


def split_key(key: str) -> list[str]:
    return [unescape(token) for token in key.split(".")]


class MemberInfo(msgspec.Struct, kw_only=True):
    """A member's heartbeat value: who it is and where its consumers find it."""

    member: str
    venues: list[str]
    broadcast: str = ""  # its ZeroMQ address
    api: str = ""  # its control API address ("" when disabled)
    pid: int = 0
    host: str = ""
    #: random per process run: tells a member its own key (rejoining after a step-down)
    #: from another process's with the same member id
    incarnation: str = ""


class Desired(msgspec.Struct, kw_only=True):
    venue: str
    symbol: str
    feed: Feed = "book"


class Owner(msgspec.Struct, kw_only=True):
    """The owner of an instrument; ``member`` is "" once released. ``epoch`` only grows:
    each new owner increments it (compare-and-set) and stamps it on what it publishes.

    A record outlives its instrument's desired keys: consumers fence by the highest
    epoch they have seen per topic, so a record deleted and claimed again from epoch 1
    would have the new owner's messages dropped as stale. Kept, it costs a few bytes per
    instrument the cluster ever carried (and a KV delete would leave a marker anyway)."""

    member: str
    epoch: int


class SubscriptionStatus(msgspec.Struct, kw_only=True):
    """The owner's report on one desired subscription. ``desired_rev`` is the revision of
    the desired key it acted on: a client that wrote revision R waits for a report >= R."""

    member: str
    state: str  # "subscribed" or "error"
    epoch: int = 0
    desired_rev: int = 0
    topic: str = ""
    error: str = ""


encode = msgspec.json.Encoder().encode


def decode(data: bytes, type_: type[T]) -> T:
    return msgspec.json.decode(data, type=type_)
