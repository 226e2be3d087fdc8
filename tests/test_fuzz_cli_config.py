"""Fuzzing the config loader and the CLI (hypothesis): every input gives either valid
Settings / a normal exit, or a ConfigError / exit code 2 with a one-line message --
never another exception, never a traceback. Bounded: no input starts a real run (every
command that would is given a config that cannot load, or fails on its arguments)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiceflow_core.cli.main import main
from spiceflow_core.config import ConfigError, Settings, load_settings

# -- the config loader ---------------------------------------------------------------
SECTIONS = {
    "book": ["depth", "max_buffer", "publish"],
    "broadcast": ["address", "hwm", "status_interval"],
    "api": ["enabled", "address"],
    "runtime": [
        "silence_timeout",
        "ping_interval",
        "reconnect_initial",
        "reconnect_max",
        "ack_timeout",
        "first_heartbeat_timeout",
        "max_frame_bytes",
        "max_connection_age",
        "transport",
    ],
    "log": ["level", "format"],
}
TOP = ["profiles", "fixtures_dir", "duration"]
VENUE_KEYS = [
    "instruments",
    "select",
    "feeds",
    "ws_url",
    "rest_url",
    "fixtures",
    "snapshot_depth",
    "max_streams_per_connection",
    "options",
]
GOOD_STRINGS = [
    "demo",
    "fixtures",
    "ws-only",
    "live",
    "book",
    "trades",
    "top",
    "every",
    "top-changed",
    "INFO",
    "json",
    "text",
    "websockets",
    "httpx-ws",
    "tcp://127.0.0.1:5555",
    "BTCUSDT",
    "BTC*",
    "spot",
    "option",
]

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(GOOD_STRINGS),
    st.text(max_size=12),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)


def _key(name_pool: list[str]):
    return st.one_of(st.sampled_from(name_pool), st.text(min_size=1, max_size=10))


@st.composite
def documents(draw) -> dict:
    doc: dict = {}
    for key in draw(st.lists(_key(TOP), max_size=3)):
        doc[key] = draw(values)
    for section in draw(st.lists(st.sampled_from(list(SECTIONS)), max_size=4, unique=True)):
        if draw(st.booleans()):
            doc[section] = {k: draw(values) for k in draw(st.lists(_key(SECTIONS[section]), max_size=3))}
        else:
            doc[section] = draw(values)
    if draw(st.booleans()):
        venues = {}
        for name in draw(st.lists(st.sampled_from(["binance", "deribit", "x y", "ünï"]), max_size=2, unique=True)):
            venues[name] = {k: draw(values) for k in draw(st.lists(_key(VENUE_KEYS), max_size=3))}
            if draw(st.booleans()):
                venues[name]["select"] = [
                    {
                        k: draw(values)
                        for k in draw(
                            st.lists(
                                st.sampled_from(
                                    [
                                        "kind",
                                        "base",
                                        "quote",
                                        "inverse",
                                        "expires_within_days",
                                        "symbol",
                                        "limit",
                                        "bogus",
                                    ]
                                ),
                                max_size=3,
                            )
                        )
                    }
                ]
        doc["venues"] = venues if draw(st.booleans()) else draw(values)
    return doc


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)  # out-of-range ints are invalid TOML: the loader must say so
    if isinstance(v, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return v.isoformat()  # dates


def to_toml(doc: dict) -> str:
    return "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in doc.items())


def _check_config_error(exc: ConfigError, path: Path) -> None:
    msg = str(exc)
    assert "\n" not in msg, msg
    assert msg.startswith(str(path) + ": "), msg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_config_documents_load_or_fail_with_one_line(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spiceflow.toml"
        path.write_text(to_toml(doc), encoding="utf-8")
        try:
            result = load_settings(path)
        except ConfigError as exc:
            _check_config_error(exc, path)
        else:
            assert isinstance(result, Settings)


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        st.lists(
            st.sampled_from(
                [
                    "[book",
                    "]",
                    "depth = ",
                    "= 1",
                    "[[venues]]",
                    "\x00",
                    '"',
                    "'''",
                    "[venues.binance]",
                    "instruments = [",
                    "\n",
                    "a.b.c = 1",
                    "inf",
                ]
            ),
            max_size=10,
        ).map("".join),
    )
)
def test_config_text_loads_or_fails_with_one_line(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spiceflow.toml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            load_settings(path)
        except ConfigError as exc:
            _check_config_error(exc, path)


# -- the CLI -----------------------------------------------------------------------------
# Commands that would start something (a run, a simulator, a network call) always get a
# config that cannot load, an unknown venue, or bad arguments: they must fail fast with 2.
FAST_OK = ["venues", "version"]
SLOW = [
    "run",
    "instruments",
    "tail",
    "simulate",
    "subscribe",
    "unsubscribe",
    "subscriptions",
    "status",
    "record",
    "replay",
]
OPTIONS = [
    "--config",
    "--log-level",
    "--log-format",
    "--profile",
    "--fixtures",
    "--venue",
    "--instrument",
    "--feed",
    "--endpoint",
    "--rest-endpoint",
    "--broadcast",
    "--api",
    "--no-api",
    "--depth",
    "--duration",
    "--transport",
    "--recording",
    "--kind",
    "--json",
    "--limit",
    "--port",
    "--rate",
    "--symbols",
    "--address",
]
WORDS = [
    "binance",
    "deribit",
    "nosuchvenue",
    "BTCUSDT",
    "DEBUG",
    "json",
    "demo",
    "ws-only",
    "bogus",
    "-1",
    "0",
    "x",
    "ws://",
    "http://127.0.0.1:1",
    "tcp://127.0.0.1:*",
    "book",
    "1e309",
    "nan",
    "",
    "--",
    "-",
    "ünï",
    "--zz",
]

# No control characters: argparse echoes an unrecognized argument verbatim, so one
# containing a newline makes a two-line message (see docs/reliability.md).
garbage = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
tokens = st.one_of(st.sampled_from(OPTIONS), st.sampled_from(WORDS), garbage)


@st.composite
def argvs(draw) -> tuple[list[str], str]:
    kind = draw(st.sampled_from(["fast", "slow", "garbage"]))
    rest = draw(st.lists(tokens, max_size=6))
    if kind == "garbage":
        return [draw(st.one_of(garbage, st.sampled_from(WORDS))), *rest], kind
    if kind == "fast":
        return [draw(st.sampled_from(FAST_OK)), *rest], kind
    # an unloadable config right after the command (a later --config in ``rest`` wins,
    # but no generated word names a loadable file); no "--", which would turn the
    # options after it into positionals
    breaker = draw(st.sampled_from(["missing", "invalid", "badkey"]))
    return [draw(st.sampled_from(SLOW)), "--config", f"@{breaker}"] + [t for t in rest if t != "--"], kind


@pytest.fixture(scope="module")
def bad_configs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cfg")
    (root / "invalid.toml").write_text("[book\n")
    (root / "badkey.toml").write_text("[book]\ndeepness = 3\n")
    return {
        "@missing": str(root / "absent.toml"),
        "@invalid": str(root / "invalid.toml"),
        "@badkey": str(root / "badkey.toml"),
    }


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=argvs())
def test_cli_exits_0_or_2_with_one_line_never_a_traceback(case, bad_configs, capsys):
    argv, kind = case
    argv = [bad_configs.get(a, a) for a in argv]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors (2), --help/--version (0)
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        lines = [line for line in err.split("\n") if line.strip()]
        assert lines, argv
        # argparse prints its usage first; the error itself is one line, last
        assert "error:" in lines[-1], (argv, err)
        if not lines[0].startswith("usage:"):
            assert len(lines) == 1, (argv, err)
    if kind == "slow":
        assert code == 2 or "--help" in argv or "-h" in argv or "--version" in argv, (argv, code)
