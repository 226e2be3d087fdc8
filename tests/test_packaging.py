"""The three distributions build as wheels and discover each other only through the
``spiceflow.venues`` entry point; a broken plugin is reported by name while the real
venues keep working. Uses a fresh virtual environment (slow: it installs wheels)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(*cmd, cwd=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    for project in (ROOT, ROOT / "plugins" / "spiceflow-binance", ROOT / "plugins" / "spiceflow-deribit"):
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, project)
    found = {p.name.split("-")[0].replace("_", "-"): p for p in out.glob("*.whl")}
    assert set(found) == {"spiceflow-core", "spiceflow-binance", "spiceflow-deribit"}, found
    return found


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory, wheels) -> Path:
    env = tmp_path_factory.mktemp("env")
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    run(py, "-m", "pip", "install", "-q", wheels["spiceflow-core"], wheels["spiceflow-binance"])
    return env


def venues(env: Path) -> subprocess.CompletedProcess:
    return run(env / "bin" / "spiceflow", "venues", check=False)


def test_wheels_have_complete_metadata(wheels):
    import zipfile

    for name, wheel in wheels.items():
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            text = zf.read(meta).decode()
        for field in (
            "Name: ",
            "Version: ",
            "Summary: ",
            "License-Expression: ",
            "Classifier: ",
            "Requires-Python: >=3.11",
        ):
            assert field in text, f"{name} lacks {field!r}"
        if name != "spiceflow-core":
            assert "Requires-Dist: spiceflow-core" in text


def test_core_plus_binance_lists_binance_only_then_deribit_is_added(fresh_env, wheels):
    result = venues(fresh_env)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert "binance" in names and "deribit" not in names
    line = next(out for out in result.stdout.splitlines() if out.split()[0] == "binance")
    assert "spiceflow-binance" in line and "0.1.0" in line
    run(fresh_env / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", wheels["spiceflow-deribit"])
    names = [line.split()[0] for line in venues(fresh_env).stdout.splitlines()]
    assert "binance" in names and "deribit" in names


BROKEN = {
    "spiceflow-broken-import": ("broken_import_venue", "raise ImportError('this plugin is broken on purpose')\n"),
    "spiceflow-bad-venue": (
        "bad_venue_plugin",
        "from spiceflow_core.plugin.hookspecs import hookimpl\n\n@hookimpl\ndef spiceflow_venues():\n    return [object()]\n",
    ),
}


def test_broken_plugins_are_reported_by_name_while_real_venues_still_list(fresh_env, tmp_path):
    for dist, (module, source) in BROKEN.items():
        project = tmp_path / dist
        (project / module).mkdir(parents=True)
        (project / module / "__init__.py").write_text(source)
        (project / "pyproject.toml").write_text(
            textwrap.dedent(f"""
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"
            [project]
            name = "{dist}"
            version = "6.6.6"
            [project.entry-points."spiceflow.venues"]
            {module} = "{module}"
            [tool.hatch.build.targets.wheel]
            packages = ["{module}"]
        """)
        )
        run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path / "w",
            project,
        )
    for wheel in (tmp_path / "w").glob("*.whl"):
        run(fresh_env / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", wheel)
    result = venues(fresh_env)
    assert result.returncode == 0
    assert "binance" in [line.split()[0] for line in result.stdout.splitlines()]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: plugin")]
    assert any("spiceflow-broken-import 6.6.6" in e and "this plugin is broken on purpose" in e for e in errors), (
        result.stderr
    )
    assert any(
        "spiceflow-bad-venue 6.6.6" in e and "not a spiceflow_core.plugin.contract.Venue" in e for e in errors
    ), result.stderr
    assert len(errors) == 2


def test_core_wheel_carries_the_compiled_loop_or_falls_back_to_pure_python(wheels, tmp_path):
    import os
    import zipfile

    core = wheels["spiceflow-core"]
    names = zipfile.ZipFile(core).namelist()
    assert any(n.startswith("spiceflow_core/book/_levels_c.") and n.endswith(".so") for n in names), names
    assert "spiceflow_core/book/_levels.py" in names  # the fallback always ships
    for page_file in ("index.html", "status.css", "status.js"):  # the status page is package data
        assert f"spiceflow_core/api/page/{page_file}" in names, names
    assert not core.name.endswith("-none-any.whl"), core.name  # a platform wheel
    env = dict(os.environ, SPICEFLOW_NO_EXTENSIONS="1")
    out = tmp_path / "pure"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    (pure,) = out.glob("*.whl")
    assert pure.name.endswith("-py3-none-any.whl"), pure.name
    assert not [n for n in zipfile.ZipFile(pure).namelist() if n.endswith((".so", ".pyx", ".c"))]
