"""Thin CLI clients of the control API: ``spiceflow subscribe``, ``unsubscribe``,
``subscriptions`` and ``status``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.cli.main import AddCommon, Command, Subcommands


class _ApiFailure(Exception):
    pass


def add_control_commands(sub: Subcommands, common: AddCommon) -> None:
    for name, help_ in (
        ("subscribe", "subscribe an instrument feed in a running spiceflow"),
        ("unsubscribe", "unsubscribe an instrument feed in a running spiceflow"),
    ):
        p = sub.add_parser(name, help=help_)
        common(p)
        p.add_argument("venue", help="venue name (see `spiceflow venues`)")
        p.add_argument("instrument", help="exchange symbol (BTCUSDT) or normalized id (VENUE.spot.BTC.USDT)")
        p.add_argument("--feed", default="book", choices=["book", "trades", "top"])
        p.add_argument("--api", default=None, metavar="HOST:PORT", help="control API address (default: the config's)")
        p.add_argument("--cluster", metavar="URL", help="edit a cluster's desired state in NATS instead (nats://...)")
    p = sub.add_parser("subscriptions", help="list live subscriptions of a running spiceflow")
    common(p)
    p.add_argument("--api", default=None, metavar="HOST:PORT")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("status", help="counters and latency of a running spiceflow")
    common(p)
    p.add_argument("--api", default=None, metavar="HOST:PORT")
    p.add_argument("--cluster", metavar="URL", help="a cluster's members and who owns what (nats://...)")
    p.add_argument("--json", action="store_true")


def _base(args: argparse.Namespace) -> str:
    from spiceflow_core.config import load_settings

    address = args.api or load_settings(args.config).api.address
    return f"http://{address}"


def _auth(args: argparse.Namespace) -> dict[str, str]:
    """The bearer token the running spiceflow expects (``SPICEFLOW_API_TOKEN`` or the
    config's ``[api] token``), if any."""
    from spiceflow_core.api.guard import api_token
    from spiceflow_core.config import load_settings

    token = api_token(load_settings(args.config).api.token)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _call(method: str, url: str, body: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Any:
    """The JSON answer, as decoded (shapes: the control API's OpenAPI document)."""
    # imported here: every ``spiceflow`` command builds the parser of these commands,
    # and only they need the HTTP client
    import httpx

    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        raise _ApiFailure(f"cannot reach the control API at {url}: {exc} (is `spiceflow run` running?)") from None
    data = response.json() if response.content else None
    if response.status_code >= 400:
        message = data.get("error") if isinstance(data, dict) else response.text
        extra = ""
        if isinstance(data, dict) and data.get("close_matches"):
            extra = f" (close matches: {', '.join(data['close_matches'])})"
        raise _ApiFailure(f"HTTP {response.status_code}: {message}{extra}")
    return data


def _run(fn: Command) -> Command:
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except _ApiFailure as exc:
            print(f"spiceflow {args.command}: {exc}", file=sys.stderr)
            return 1

    return wrapper


@_run
def cmd_subscribe(args: argparse.Namespace) -> int:
    if args.cluster:
        from spiceflow_core.cluster.commands import cluster_subscribe

        return cluster_subscribe(args)
    body = {"venue": args.venue, "instrument": args.instrument, "feed": args.feed}
    data = _call("POST", f"{_base(args)}/{args.command}", body, _auth(args))
    print(f"{args.command}d {data['id']} topic={data['topic']} state={data['state']}")
    return 0


@_run
def cmd_subscriptions(args: argparse.Namespace) -> int:
    data = _call("GET", f"{_base(args)}/subscriptions", headers=_auth(args))
    for sub in data:
        if args.json:
            print(msgspec.json.encode(sub).decode())
        else:
            counters = " ".join(f"{k}={v}" for k, v in sorted(sub.get("counters", {}).items()))
            print(f"{sub['id']}\t{sub['topic']}\t{sub['state']}\t{counters}")
    return 0


@_run
def cmd_status(args: argparse.Namespace) -> int:
    if args.cluster:
        from spiceflow_core.cluster.commands import cluster_status

        return cluster_status(args)
    data = _call("GET", f"{_base(args)}/status", headers=_auth(args))
    if args.json:
        print(msgspec.json.encode(data).decode())
        return 0
    for venue, info in sorted(data.items()):
        counters = " ".join(f"{k}={v}" for k, v in info["counters"].items())
        lat = info["latency_ms"]
        print(f"{venue}: {counters} latency_ms p50={lat['p50']:.3f} p99={lat['p99']:.3f}")
    return 0


CONTROL_COMMANDS: dict[str, Command] = {
    "subscribe": cmd_subscribe,
    "unsubscribe": cmd_subscribe,
    "subscriptions": cmd_subscriptions,
    "status": cmd_status,
}
