"""CLI and configuration errors: exit code 2 and one line naming the key and file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spiceflow_core.cli.main import main
from spiceflow_core.config import ConfigError, load_settings, with_profiles


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spiceflow.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, expected",
    [
        ("bogus = 1\n", "bogus: unknown key"),
        ("[book]\ndepth = 'deep'\n", "book.depth: Expected `int`, got `str`"),
        ("[venues.binance]\ninstrument = ['BTCUSDT']\n", "venues.binance.instrument: unknown key"),
        ("[venues.binance]\nfeeds = ['candles']\n", "venues.binance.feeds[0]: Invalid enum value 'candles'"),
        ("profiles = ['turbo']\n", "unknown profile 'turbo'"),
        ("[book\n", "invalid TOML"),
        ('"a\\nb" = 1\n', "a\\nb: unknown key"),  # a quoted key with a newline: shown escaped
    ],
)
def test_config_errors_exit_2_with_one_line_naming_key_and_file(tmp_path, capsys, text, expected):
    path = write(tmp_path, text)
    code = main(["run", "--config", str(path), "--no-api"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and expected in err


def test_unknown_profile_on_the_command_line(capsys):
    assert main(["run", "--profile", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err


def test_unknown_venue_names_the_installed_ones(capsys):
    assert main(["run", "--venue", "nosuchvenue", "--no-api"]) == 2
    err = capsys.readouterr().err
    assert "unknown venue 'nosuchvenue'" in err and "installed:" in err


def test_missing_explicit_config_file(tmp_path, capsys):
    assert main(["venues", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_profiles_combine_like_feature_flags(tmp_path):
    settings = with_profiles(load_settings(write(tmp_path, "profiles = ['demo']\n")), ["ws-only"])
    assert settings.demo and settings.ws_only and settings.use_fixtures
    with pytest.raises(ConfigError):
        with_profiles(settings, ["bogus"])


def test_usage_errors_exit_2_and_help_exits_0():
    for args, code in ((["run", "--depth", "x"], 2), (["frobnicate"], 2), (["run", "--help"], 0), (["--help"], 0)):
        result = subprocess.run(
            [sys.executable, "-m", "spiceflow_core.cli.main", *args], capture_output=True, text=True
        )
        assert result.returncode == code, (args, result.stderr)


def test_json_log_format_prints_one_object_per_line(tmp_path):
    import json

    path = write(tmp_path, "[venues.binance]\ninstruments = ['NOPE']\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spiceflow_core.cli.main",
            "venues",
            "--config",
            str(path),
            "--log-format",
            "json",
            "--log-level",
            "DEBUG",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    for line in result.stderr.splitlines():
        if line.startswith("{"):
            json.loads(line)
