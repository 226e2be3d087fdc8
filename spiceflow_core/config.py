"""Typed settings decoded from ``spiceflow.toml`` with msgspec, plus named profiles.

Every error names the key and the file: ``ConfigError("spiceflow.toml: venues.binance.depth:
Expected `int`, got `str`")``. Profiles are presets that combine like feature flags:
``--profile demo --profile ws-only`` runs the WebSocket-only workflow on simulators.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from spiceflow_core.instruments import Selection
from spiceflow_core.model import Feed

S = TypeVar("S")

DEFAULT_CONFIG_FILE = "spiceflow.toml"
PROFILES = {
    "live": "live REST reference data and live exchange endpoints (the default)",
    "fixtures": "reference data from fixture files instead of REST",
    "ws-only": "WebSocketOnly workflow: connect, subscribe, done at the first heartbeat",
    "demo": "fixtures + local simulated exchanges started in the same run",
}


class ConfigError(Exception):
    """A configuration problem; the message names the file and the key."""


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class VenueSettings(_Strict, frozen=True):
    #: exchange symbols, globs ("BTC*") or normalized ids; unset = the venue's defaults,
    #: [] = none (subscribe later through the control API)
    instruments: list[str] | None = None
    select: list[Selection] = []
    feeds: list[Feed] = msgspec.field(default_factory=lambda: ["book"])
    ws_url: str | None = None  # override the plugin's live default
    rest_url: str | None = None
    fixtures: str | None = None  # fixture directory override
    snapshot_depth: int | None = None
    max_streams_per_connection: int | None = None
    #: the ``[venues.<name>.options]`` table, kept raw: it is decoded into the venue's own
    #: ``options_type`` once the plugins are loaded (:func:`venue_options`)
    options: dict[str, Any] = {}


class BookSettings(_Strict, frozen=True):
    depth: int = 25  # levels per side in published book messages
    max_buffer: int = 10_000  # deltas buffered per instrument while (re)syncing
    publish: Literal["every", "top-changed", "conflate"] = "every"


class BroadcastSettings(_Strict, frozen=True):
    address: str = "tcp://127.0.0.1:5555"
    hwm: int = 100_000
    status_interval: float = 5.0  # seconds between status/stats messages


class ApiSettings(_Strict, frozen=True):
    enabled: bool = True
    address: str = "127.0.0.1:3000"
    #: bearer token every request must carry (``SPICEFLOW_API_TOKEN`` overrides it);
    #: required when ``address`` is not a loopback address
    token: str | None = None
    #: origins allowed to call the API from a browser page (CORS); none by default
    cors_origins: list[str] = []
    #: ``GET /metrics``: instruments with series of their own; the others are summed into
    #: ``symbol="_other"`` (bounds the number of series a scrape returns)
    metrics_max_instruments: int = 1000


class RuntimeSettings(_Strict, frozen=True):
    silence_timeout: float = 30.0  # no frame for this long -> reconnect
    ping_interval: float = 20.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    ack_timeout: float = 10.0
    rest_timeout: float = 10.0  # per REST request (retried with backoff)
    first_heartbeat_timeout: float = 30.0  # ws-only workflow
    heartbeat_timeout: float | None = None  # no venue heartbeat for this long -> reconnect (None: the venue's default)
    max_frame_bytes: int = 4 * 2**20
    max_connection_age: float | None = None  # seconds; None = the venue's own limit
    #: the WebSocket client; chosen by the live benchmark (README, Performance)
    transport: Literal["httpx-ws", "websockets"] = "websockets"


class ClusterSettings(_Strict, frozen=True):
    """``[cluster]``: share instruments with other ``spiceflow run`` processes through
    NATS JetStream KV (``spiceflow_core.cluster``). No ``nats`` URL: no clustering."""

    nats: str | None = None  # e.g. "nats://127.0.0.1:4222" (comma-separated for several servers)
    member: str | None = None  # this member's id (default: host-pid); unique per running process
    ttl: float = 3.0  # seconds without a heartbeat before a member is dead and loses its instruments
    replicas: int = 1  # JetStream replicas of the cluster's KV buckets (3 on a 3-node NATS cluster)
    answer_timeout: float = 30.0  # the API's wait for the owner to report a subscription


class LogSettings(_Strict, frozen=True):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"


class Settings(_Strict, frozen=True):
    profiles: list[str] = []
    venues: dict[str, VenueSettings] = {}
    book: BookSettings = BookSettings()
    broadcast: BroadcastSettings = BroadcastSettings()
    api: ApiSettings = ApiSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    log: LogSettings = LogSettings()
    cluster: ClusterSettings = ClusterSettings()
    #: ``[sinks.<name>]``: sink plugins to run besides ZeroMQ, each table decoded into
    #: the plugin's options type once plugins are discovered
    sinks: dict[str, dict[str, Any]] = {}
    fixtures_dir: str = "fixtures"
    duration: float | None = None  # stop after this many seconds (None = until signalled)

    @property
    def use_fixtures(self) -> bool:
        return bool({"fixtures", "demo"} & set(self.profiles))

    @property
    def ws_only(self) -> bool:
        return "ws-only" in self.profiles

    @property
    def demo(self) -> bool:
        return "demo" in self.profiles


def _path_of(msg: str) -> tuple[str, str]:
    """Split msgspec's ``... - at `$.venues.binance.depth``` into (reason, key)."""
    reason, sep, where = msg.rpartition(" - at `")
    if not sep:
        return msg, ""
    key = where.rstrip("`").removeprefix("$").lstrip(".")
    return reason, key


def _convert(raw: object, type_: type[S], source: str, prefix: str = "") -> S:
    try:
        return msgspec.convert(raw, type_, strict=True)
    except msgspec.ValidationError as exc:
        reason, key = _path_of(str(exc))
        if reason.startswith("Object contains unknown field"):
            field = reason.split("`")[1] if "`" in reason else "?"
            key = f"{key}.{field}" if key else field
            reason = "unknown key"
        key = ".".join(k for k in (prefix, key) if k)
        raise ConfigError(f"{source}: {_escaped(key) or '<top level>'}: {_escaped(reason)}") from None


def _escaped(text: str) -> str:
    """A user's key with its control characters escaped (``\\n``): an error stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def decode_settings(raw: dict[str, Any], source: str) -> Settings:
    raw = dict(raw)
    venues_raw = raw.pop("venues", {})
    if not isinstance(venues_raw, dict):
        raise ConfigError(f"{source}: venues: Expected a table of venues, got {type(venues_raw).__name__}")
    settings = _convert(raw, Settings, source)
    venues = {name: _convert(value, VenueSettings, source, f"venues.{name}") for name, value in venues_raw.items()}
    check_profiles(settings.profiles, f"{source}: profiles")
    return msgspec.structs.replace(settings, venues=venues)


def check_profiles(profiles: list[str], where: str) -> None:
    for profile in profiles:
        if profile not in PROFILES:
            raise ConfigError(f"{where}: unknown profile {profile!r} (known: {', '.join(PROFILES)})")


def convert_options(raw: object, options_type: type[S], source: str, prefix: str) -> S:
    """A plugin's options table (``raw``) decoded into its ``options_type``; errors name
    the key (under ``prefix``) and the file."""
    return _convert(raw, options_type, source, prefix)


def venue_options(options_type: type[S], settings: Settings, venue: str, source: str) -> S:
    """``[venues.<venue>.options]`` decoded into the venue's ``options_type`` (an absent
    table gives the type's defaults). Errors name the key and the file, like every
    config error: ``spiceflow.toml: venues.deribit.options.foo: unknown key``."""
    raw = settings.venues[venue].options if venue in settings.venues else {}
    return _convert(raw, options_type, source, f"venues.{venue}.options")


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file ``load_settings(path)`` reads: ``path``, else ``./spiceflow.toml``."""
    return Path(path) if path is not None else Path(DEFAULT_CONFIG_FILE)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load the config file. ``path`` None means ``./spiceflow.toml`` if it exists,
    else built-in defaults; an explicit path must exist."""
    explicit = path is not None
    file = config_path(path)
    if not file.exists():
        if explicit:
            raise ConfigError(f"{file}: config file not found")
        return Settings()
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    return decode_settings(raw, str(file))


def with_profiles(settings: Settings, profiles: list[str]) -> Settings:
    check_profiles(profiles, "--profile")
    merged = list(dict.fromkeys([*settings.profiles, *profiles]))
    return msgspec.structs.replace(settings, profiles=merged)
