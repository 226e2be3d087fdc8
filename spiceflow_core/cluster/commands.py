"""``spiceflow subscribe|unsubscribe|status --cluster URL``: edit or read the cluster's
shared state directly in NATS, with no local ``spiceflow run``."""

from __future__ import annotations

import argparse
from typing import Any

import anyio
import msgspec

from spiceflow_core.cluster import control
from spiceflow_core.cluster.store import ClusterUnavailable, open_store
from spiceflow_core.runtime.workflows import (
    DuplicateSubscription,
    NotSubscribed,
    SubscriptionRefused,
    SubscriptionTimeout,
)

#: how long the CLI waits for the owner's report
ANSWER_TIMEOUT = 30.0


def cluster_subscribe(args: argparse.Namespace) -> int:
    async def main() -> str:
        async with open_store(args.cluster) as store:
            if args.command == "subscribe":
                status = await control.subscribe(store, args.venue, args.instrument, args.feed, timeout=ANSWER_TIMEOUT)
                return f"subscribed {args.venue}:{args.instrument}:{args.feed} topic={status.topic} on {status.member}"
            await control.unsubscribe(store, args.venue, args.instrument, args.feed, timeout=ANSWER_TIMEOUT)
            return f"unsubscribed {args.venue}:{args.instrument}:{args.feed}"

    try:
        print(anyio.run(main))
    except (
        ClusterUnavailable,
        DuplicateSubscription,
        NotSubscribed,
        SubscriptionRefused,
        SubscriptionTimeout,
    ) as exc:
        print(f"spiceflow {args.command}: {exc}")
        return 1
    return 0


def cluster_status(args: argparse.Namespace) -> int:
    async def main() -> dict[str, Any]:
        async with open_store(args.cluster) as store:
            return await control.describe(store)

    try:
        view = anyio.run(main)
    except ClusterUnavailable as exc:
        print(f"spiceflow status: {exc}")
        return 1
    if getattr(args, "json", False):
        print(msgspec.json.encode(view).decode())
        return 0
    for member, info in sorted(view["members"].items()):
        owns = sorted(k for k, o in view["owners"].items() if o["member"] == member)
        print(f"member {member}: broadcast={info['broadcast']} api={info['api']} venues={','.join(info['venues'])}")
        print(f"  owns {len(owns)}: {' '.join(owns)}")
    for sub in view["subscriptions"]:
        print(
            f"{sub['venue']}:{sub['symbol']}:{sub['feed']}\t{sub['state']}\t{sub['member'] or '-'}\tepoch={sub['epoch']}"
        )
    return 0
