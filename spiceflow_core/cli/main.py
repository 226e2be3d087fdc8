"""The ``spiceflow`` command line. Exit codes: 0 success, 1 runtime failure,
2 usage or configuration error (with a one-line message naming what was wrong)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import anyio
import msgspec

from spiceflow_core import __version__
from spiceflow_core.config import (
    PROFILES,
    ConfigError,
    Settings,
    VenueSettings,
    config_path,
    load_settings,
    with_profiles,
)
from spiceflow_core.logs import configure_logging
from spiceflow_core.model import FEEDS

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.plugin.contract import Endpoints, Venue
    from spiceflow_core.plugin.registry import VenueRegistry
    from spiceflow_core.recording.sfrec import Recorder

#: a subcommand: parsed arguments -> exit code
Command = Callable[[argparse.Namespace], int]
#: adds the options every subcommand shares (``--config``, logging) to a subcommand's parser
AddCommon = Callable[[argparse.ArgumentParser], None]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


# -- argument parsing -------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2) even when the offending
    argument contains newlines or control characters."""

    def error(self, message: str) -> NoReturn:
        flat = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {flat} (see --help)\n")


#: what ``add_subparsers`` returns (a string: argparse's class is not generic at run time)
Subcommands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="config file (default: ./spiceflow.toml if present)")
    parser.add_argument("--log-level", choices=["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"], help="log level")
    parser.add_argument(
        "--log-format", choices=["text", "json"], help="human-readable lines or one JSON object per line"
    )


def _profiles(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME",
        help="named preset, repeatable and combinable: " + "; ".join(f"{k}: {v}" for k, v in PROFILES.items()),
    )
    parser.add_argument(
        "--fixtures", metavar="DIR", help="fixture root directory (default ./fixtures, then the plugin's own)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spiceflow", description="Real-time multi-venue crypto market data with exact L2 books.")
    parser.add_argument("--version", action="version", version=f"spiceflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="stream books from the selected venues and broadcast them over ZeroMQ")
    _common(p)
    _profiles(p)
    p.add_argument(
        "--venue",
        action="append",
        default=[],
        metavar="NAME",
        help="venue to run (repeatable; default: the config's, else all installed)",
    )
    p.add_argument(
        "--instrument",
        action="append",
        default=[],
        metavar="SYMBOL",
        help="instrument (exchange symbol, glob or normalized id); repeatable",
    )
    p.add_argument(
        "--feed",
        action="append",
        default=[],
        choices=FEEDS,
        help="feeds to subscribe (default: book)",
    )
    p.add_argument(
        "--endpoint",
        metavar="URL",
        help="WebSocket endpoint (e.g. a simulator's ws://127.0.0.1:PORT); REST follows on the same host unless --rest-endpoint",
    )
    p.add_argument("--rest-endpoint", metavar="URL", help="REST base URL override")
    p.add_argument("--broadcast", metavar="ADDR", help="ZeroMQ PUB address (default tcp://127.0.0.1:5555)")
    p.add_argument("--api", metavar="HOST:PORT", help="control API address (default 127.0.0.1:3000)")
    p.add_argument("--no-api", action="store_true", help="do not serve the control API")
    p.add_argument("--depth", type=int, metavar="N", help="levels per side in published books (default 25)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument(
        "--transport",
        choices=["httpx-ws", "websockets"],
        help="WebSocket client library (default: runtime.transport, websockets)",
    )
    p.add_argument(
        "--recording",
        metavar="PREFIX",
        help="demo: drive the simulator with a recorded session instead of the generator",
    )
    p.add_argument("--cluster", metavar="URL", help="share instruments with other runs through NATS (nats://...)")
    p.add_argument("--member", metavar="ID", help="this run's member id in the cluster (default: host-pid)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run N worker processes sharing the instruments (an embedded NATS unless --cluster/[cluster] nats)",
    )

    p = sub.add_parser("venues", help="list installed venues: name, distribution, version")
    _common(p)

    p = sub.add_parser("instruments", help="list a venue's instruments (reference data)")
    _common(p)
    _profiles(p)
    p.add_argument("venue", help="venue name")
    p.add_argument("--kind", choices=["spot", "perpetual", "future", "option"])
    p.add_argument("--base")
    p.add_argument("--quote")
    p.add_argument("--rest-endpoint", metavar="URL")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("version", help="print versions of the core and installed venues")
    _common(p)

    p = sub.add_parser("tail", help="print live books from the broadcast (top of book per topic)")
    _common(p)
    p.add_argument("prefix", nargs="*", default=[], help="topic prefixes, e.g. book.VENUE (default: everything)")
    p.add_argument(
        "--address",
        default=None,
        help="ZeroMQ address, or one a subscriber plugin serves (nats://...; may also come first among the "
        "positional arguments); default: the config's broadcast address",
    )
    p.add_argument("--json", action="store_true", help="print each decoded message as one JSON line")
    p.add_argument("--limit", type=int, metavar="N", help="exit after N messages")

    p = sub.add_parser("simulate", help="run a venue's loopback simulator and print its URLs")
    _common(p)
    p.add_argument("--venue", required=True, action="append", help="venue to simulate (repeatable)")
    p.add_argument(
        "--recording", metavar="PATH-PREFIX", help="drive it with a recorded session (e.g. ../shared/recorded/PREFIX)"
    )
    p.add_argument("--port", type=int, default=0, help="port (default: any free port; only with a single venue)")
    p.add_argument("--symbols", nargs="*", help="generator: symbols to stream")
    p.add_argument("--rate", type=float, help="generator: frames per second per symbol")
    p.add_argument("--duration", type=float, help="stop after this many seconds")

    from spiceflow_core.api.client import add_control_commands

    add_control_commands(sub, _common)

    from spiceflow_core.recording.commands import add_recording_commands

    add_recording_commands(sub, _common)
    return parser


# -- helpers ------------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if getattr(args, "profile", None):
        settings = with_profiles(settings, args.profile)
    log = settings.log
    if args.log_level or args.log_format:
        log = msgspec.structs.replace(log, level=args.log_level or log.level, format=args.log_format or log.format)
        settings = msgspec.structs.replace(settings, log=log)
    if getattr(args, "fixtures", None):
        settings = msgspec.structs.replace(settings, fixtures_dir=args.fixtures)
    configure_logging(settings.log.level, settings.log.format)
    return settings


def _registry() -> VenueRegistry:
    from spiceflow_core.plugin.registry import discover

    return discover()


def _configured_registry(args: argparse.Namespace, settings: Settings) -> VenueRegistry:
    """The installed venues, each configured by its ``[venues.<name>.options]``."""
    from spiceflow_core.plugin.registry import configure_venues

    registry = _registry()
    configure_venues(registry, settings, str(config_path(args.config)))
    return registry


def _check_api_exposure(settings: Settings) -> None:
    """The control API changes what runs: on an address others can reach, it needs a
    token (refused at start otherwise, exit 2 with the reason)."""
    from spiceflow_core.api.guard import TOKEN_ENV, api_token, is_loopback
    from spiceflow_core.api.server import parse_address

    if not settings.api.enabled or settings.ws_only:
        return
    try:
        host, _ = parse_address(settings.api.address)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not is_loopback(host) and not api_token(settings.api.token):
        raise UsageError(
            f"the control API address {settings.api.address} is not a loopback address: set [api] token "
            f"or {TOKEN_ENV} (anyone who can reach it could change the subscriptions), or use --no-api"
        )


def derive_endpoints(default: Endpoints, ws: str | None, rest: str | None) -> Endpoints:
    """``--endpoint ws://host:port`` keeps the venue's default paths on that host."""
    from spiceflow_core.plugin.contract import Endpoints

    ws_url, rest_url = default.ws_url, default.rest_url
    if ws:
        parts = urlsplit(ws)
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.netloc:
            raise UsageError(f"--endpoint: {ws!r} is not a ws://, wss:// or http(s):// URL")
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        dws = urlsplit(default.ws_url)
        ws_url = urlunsplit((scheme, parts.netloc, parts.path or dws.path, parts.query or dws.query, ""))
        if not rest:
            drest = urlsplit(default.rest_url)
            rest_url = urlunsplit(("https" if scheme == "wss" else "http", parts.netloc, drest.path, "", ""))
    if rest:
        parts = urlsplit(rest)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--rest-endpoint: {rest!r} is not an http(s):// URL")
        rest_url = rest.rstrip("/")
    return Endpoints(ws_url=ws_url, rest_url=rest_url)


def _select_venues(args: argparse.Namespace, settings: Settings, registry: VenueRegistry) -> list[str]:
    names = list(dict.fromkeys(args.venue)) or list(settings.venues) or registry.names()
    for name in names:
        if name not in registry.venues:
            installed = ", ".join(registry.names()) or "none"
            raise UsageError(f"unknown venue {name!r} (installed: {installed})")
    if not names:
        raise UsageError("no venue plugin is installed (pip install spiceflow-VENUE)")
    return names


# -- commands -------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, recorder_factory: Callable[[Venue], Recorder] | None = None) -> int:
    """``recorder_factory(venue) -> recorder`` (``spiceflow record``) sees every frame and
    REST answer of every venue."""
    from spiceflow_core.runtime.orchestrator import Orchestrator
    from spiceflow_core.sinks.registry import build_sinks, discover_sinks

    settings = _settings(args)
    registry = _configured_registry(args, settings)
    names = _select_venues(args, settings, registry)
    venues = dict(settings.venues)
    for name in names:
        vs = venues.get(name, VenueSettings())
        if args.instrument:
            vs = msgspec.structs.replace(vs, instruments=list(args.instrument), select=[])
        if args.feed:
            vs = msgspec.structs.replace(vs, feeds=list(dict.fromkeys(args.feed)))
        venues[name] = vs
    changes: dict[str, Any] = {"venues": venues}
    if args.broadcast:
        changes["broadcast"] = msgspec.structs.replace(settings.broadcast, address=args.broadcast)
    if args.api or args.no_api:
        changes["api"] = msgspec.structs.replace(
            settings.api, address=args.api or settings.api.address, enabled=not args.no_api
        )
    if args.depth is not None:
        if args.depth < 1:
            raise UsageError("--depth must be at least 1")
        changes["book"] = msgspec.structs.replace(settings.book, depth=args.depth)
    if args.duration is not None:
        changes["duration"] = args.duration
    if args.transport:
        changes["runtime"] = msgspec.structs.replace(settings.runtime, transport=args.transport)
    if args.cluster or args.member:
        changes["cluster"] = msgspec.structs.replace(
            settings.cluster, nats=args.cluster or settings.cluster.nats, member=args.member or settings.cluster.member
        )
    settings = msgspec.structs.replace(settings, **changes)
    if args.workers is not None:
        if args.workers < 1:
            raise UsageError("--workers must be at least 1")
        if args.endpoint or args.rest_endpoint or args.recording or recorder_factory is not None:
            raise UsageError("--workers: use [venues.<name>] ws_url/rest_url instead of --endpoint/--recording")
        from spiceflow_core.cluster.workers import run_workers

        return run_workers(settings, registry, names, args.workers)
    _check_api_exposure(settings)
    overrides: dict[str, Endpoints] = {}
    if args.endpoint or args.rest_endpoint:
        if len(names) != 1:
            raise UsageError("--endpoint/--rest-endpoint need exactly one --venue")
        overrides[names[0]] = derive_endpoints(
            registry.get(names[0]).default_endpoints, args.endpoint, args.rest_endpoint
        )
    sim_options = {"recording": args.recording} if args.recording else {}
    sinks = build_sinks(discover_sinks(), settings, str(config_path(args.config)))
    orchestrator = Orchestrator(
        settings,
        registry,
        names,
        endpoint_overrides=overrides,
        simulator_options=sim_options,
        recorder_factory=recorder_factory,
        sinks=sinks,
    )
    return anyio.run(orchestrator.run)


def cmd_venues(args: argparse.Namespace) -> int:
    _settings(args)
    registry = _registry()
    for name in registry.names():
        loaded = registry.venues[name]
        print(f"{name}\t{loaded.distribution}\t{loaded.version}")
    for failure in registry.failures:
        print(f"error: {failure.line()}", file=sys.stderr)
    return EXIT_OK


def cmd_version(args: argparse.Namespace) -> int:
    _settings(args)
    from spiceflow_core.book.orderbook import COMPILED

    engine = "compiled (Cython)" if COMPILED else "pure Python"
    print(f"spiceflow-core {__version__} (book loop: {engine})")
    registry = _registry()
    seen: set[str] = set()
    for loaded in registry.venues.values():
        if loaded.distribution not in seen:
            seen.add(loaded.distribution)
            print(f"{loaded.distribution} {loaded.version}")
    return EXIT_OK


def cmd_instruments(args: argparse.Namespace) -> int:
    from spiceflow_core.instruments import Selection, matches
    from spiceflow_core.plugin.rest import RestClient
    from spiceflow_core.runtime.reference import ReferenceDataActor

    settings = _settings(args)
    registry = _configured_registry(args, settings)
    if args.venue not in registry.venues:
        raise UsageError(f"unknown venue {args.venue!r} (installed: {', '.join(registry.names()) or 'none'})")
    venue = registry.get(args.venue)
    vs = settings.venues.get(venue.name, VenueSettings())
    rest_url = args.rest_endpoint or vs.rest_url or venue.default_endpoints.rest_url
    rule = Selection(kind=args.kind, base=args.base, quote=args.quote)

    async def main() -> int:
        async with RestClient(rest_url) as rest:
            actor = ReferenceDataActor(
                venue,
                use_fixtures=settings.use_fixtures,
                fixtures_root=settings.fixtures_dir,
                fixtures_override=vs.fixtures,
                rest=rest,
            )
            instruments = await actor.load()
        for inst in sorted(instruments.values(), key=lambda i: i.symbol):
            if not matches(inst, rule):
                continue
            if args.json:
                print(msgspec.json.encode({**msgspec.structs.asdict(inst), "normalized": inst.normalized}).decode())
            else:
                print(
                    f"{inst.symbol}\t{inst.normalized}\t{inst.kind}\ttick={inst.tick_size}\tlot={inst.lot_size}\t{'active' if inst.active else 'inactive'}"
                )
        return EXIT_OK

    return anyio.run(main)


def cmd_tail(args: argparse.Namespace) -> int:
    from spiceflow_core.broadcast.tail import tail

    settings = _settings(args)
    prefixes = list(args.prefix)
    if args.address is None and prefixes and "://" in prefixes[0]:
        args.address = prefixes.pop(0)  # `spiceflow tail nats://host:4222 book.`: an address first
    address = args.address or settings.broadcast.address
    return anyio.run(lambda: tail(address, prefixes, as_json=args.json, limit=args.limit))


def cmd_simulate(args: argparse.Namespace) -> int:
    import contextlib

    settings = _settings(args)
    registry = _registry()
    names = _select_venues(args, settings, registry)
    if args.port and len(names) > 1:
        raise UsageError("--port needs a single --venue")
    options: dict[str, Any] = {}
    if args.symbols:
        options["symbols"] = args.symbols
    if args.rate:
        options["rate"] = args.rate

    async def main() -> int:
        async with contextlib.AsyncExitStack() as stack:
            for name in names:
                sim = await stack.enter_async_context(
                    registry.get(name).simulator(recording=args.recording, port=args.port, **options)
                )
                e = sim.endpoints
                print(f"{name}: ws_url={e.ws_url} rest_url={e.rest_url}", flush=True)
                print(f"  spiceflow run --venue {name} --endpoint {e.ws_url} --rest-endpoint {e.rest_url}", flush=True)
            if args.duration:
                await anyio.sleep(args.duration)
            else:
                await anyio.sleep_forever()
        return EXIT_OK

    try:
        return anyio.run(main)
    except KeyboardInterrupt:
        return EXIT_OK


COMMANDS: dict[str, Command] = {
    "run": cmd_run,
    "venues": cmd_venues,
    "instruments": cmd_instruments,
    "version": cmd_version,
    "tail": cmd_tail,
    "simulate": cmd_simulate,
}


def _usage_error(exc: BaseException) -> BaseException | None:
    """The usage or configuration error ``exc`` is or holds: one found by a task of the
    run (a cluster member id already live) comes wrapped in anyio's task groups."""
    from spiceflow_core.runtime.errors import leaf_errors

    return next((e for e in leaf_errors(exc) if isinstance(e, ConfigError | UsageError)), None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from spiceflow_core.api.client import CONTROL_COMMANDS
    from spiceflow_core.recording.commands import RECORDING_COMMANDS

    handler = {**COMMANDS, **CONTROL_COMMANDS, **RECORDING_COMMANDS}[args.command]
    try:
        return handler(args)
    except (ConfigError, UsageError, BaseExceptionGroup) as exc:
        error = _usage_error(exc)
        if error is None:
            raise
        print(f"spiceflow {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyError as exc:  # unknown venue from the registry
        print(f"spiceflow {args.command}: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
