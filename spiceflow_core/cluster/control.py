"""Editing the cluster's desired subscriptions and reading who carries what: for the
control API of a member and for ``spiceflow subscribe --cluster URL`` (no local run).

A subscribe writes the desired key and waits until the owner reports it (a status whose
``desired_rev`` is at least the revision written); a refusal or no answer in time rolls
the desired key back, like the Subscribe workflow. An unsubscribe deletes the desired
key and waits until the owner has removed the subscription's status.
"""

from __future__ import annotations

from typing import Any

import anyio

from spiceflow_core.cluster import keys as K
from spiceflow_core.cluster.store import ClusterStore
from spiceflow_core.model import Feed
from spiceflow_core.runtime.workflows import (
    DuplicateSubscription,
    NotSubscribed,
    SubscriptionRefused,
    SubscriptionTimeout,
)

#: how often a waiting client reads the status key
POLL_S = 0.05


async def subscribe(
    store: ClusterStore, venue: str, symbol: str, feed: Feed, *, timeout: float
) -> K.SubscriptionStatus:
    skey = K.subscription_key(venue, symbol, feed)
    rev = await store.create(store.desired, skey, K.encode(K.Desired(venue=venue, symbol=symbol, feed=feed)))
    if rev is None:
        raise DuplicateSubscription(f"{venue} {symbol} {feed} is already subscribed in the cluster")
    with anyio.move_on_after(timeout):
        while True:
            item = await store.get(store.status, skey)
            if item is not None:
                status = K.decode(item.value, K.SubscriptionStatus)
                if status.desired_rev >= rev:
                    if status.state == "subscribed":
                        return status
                    await store.delete(store.desired, skey, last=rev)
                    raise SubscriptionRefused(f"{venue} {symbol} {feed} on member {status.member}: {status.error}")
            await anyio.sleep(POLL_S)
    await store.delete(store.desired, skey, last=rev)
    raise SubscriptionTimeout(
        f"{venue} {symbol} {feed}: no cluster member reported it within {timeout:.0f}s "
        "(is a member running this venue?)"
    )


async def unsubscribe(store: ClusterStore, venue: str, symbol: str, feed: Feed, *, timeout: float) -> None:
    skey = K.subscription_key(venue, symbol, feed)
    if await store.get(store.desired, skey) is None:
        raise NotSubscribed(f"{venue} {symbol} {feed} is not subscribed in the cluster")
    await store.delete(store.desired, skey)
    with anyio.move_on_after(timeout):
        while await store.get(store.status, skey) is not None:
            await anyio.sleep(POLL_S)
        return
    raise SubscriptionTimeout(f"{venue} {symbol} {feed}: its owner did not report the unsubscription in {timeout:.0f}s")


async def describe(store: ClusterStore) -> dict[str, Any]:
    """Members (with their addresses), owners and subscription status, as plain data."""
    members = {}
    for key, item in (await store.snapshot(store.members)).items():
        info = K.decode(item.value, K.MemberInfo)
        members[key] = {"venues": info.venues, "broadcast": info.broadcast, "api": info.api, "pid": info.pid}
    owners = {}
    for key, item in (await store.snapshot(store.owners)).items():
        owner = K.decode(item.value, K.Owner)
        venue, symbol = K.split_key(key)
        owners[f"{venue}:{symbol}"] = {"member": owner.member, "epoch": owner.epoch}
    subscriptions = []
    statuses = await store.snapshot(store.status)
    for key, item in sorted((await store.snapshot(store.desired)).items()):
        desired = K.decode(item.value, K.Desired)
        status = K.decode(statuses[key].value, K.SubscriptionStatus) if key in statuses else None
        subscriptions.append(
            {
                "venue": desired.venue,
                "symbol": desired.symbol,
                "feed": desired.feed,
                "member": status.member if status else "",
                "state": status.state if status else "pending",
                "epoch": status.epoch if status else 0,
            }
        )
    return {"members": members, "owners": owners, "subscriptions": subscriptions}
