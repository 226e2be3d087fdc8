"""cookiecutter-venue: a generated plugin passes the project's checks (ruff, ruff format,
mypy with the plugin rules), installs, passes its own tests and runs the WebSocketOnly
workflow against its simulator; bad answers are refused by the hook.

The slow tests share ONE clean virtual environment per session (spiceflow-core from
this checkout, editable, plus pytest) and install each generated plugin into it under
a distinct slug, so the whole file stays well under two minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

cookiecutter_main = pytest.importorskip("cookiecutter.main")
from cookiecutter.exceptions import FailedHookException  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "cookiecutter-venue"
FIRST_PARTY = ROOT / "plugins" / "spiceflow-binance" / "spiceflow_binance"
#: plugins whose test files every generated plugin has too (the template's are shaped like theirs)
FIRST_PARTY_TESTS = [
    ROOT / "plugins" / name / "tests" for name in ("spiceflow-binance", "spiceflow-deribit", "spiceflow-okx")
]
#: the development tools of this checkout (spiceflow-core[dev]) that `./dev test` runs
BIN = Path(sys.executable).parent

#: generated, pip-installed into the session venv, tests + CLI run there
INSTALLED = [
    ("acme", "plain-json", "websocket-ping"),
    ("rpcx", "json-rpc", "server-heartbeat"),
    ("pingy", "plain-json", "client-ping"),
    ("rping", "json-rpc", "client-ping"),
]
#: the remaining combinations: generated and their own tests run in-process with this
#: interpreter (the plugin is put on sys.path by its conftest; CLI tests skip)
IN_PLACE = [
    ("beat", "plain-json", "server-heartbeat"),
    ("rws", "json-rpc", "websocket-ping"),
]
#: every combination, for the static checks; one slug is long, since class names,
#: import lines and the lines the formatter wraps grow with it
ALL_STYLES = [
    ("acme", "plain-json", "websocket-ping"),
    ("beat", "plain-json", "server-heartbeat"),
    ("coinbase_international_derivatives", "plain-json", "client-ping"),
    ("rws", "json-rpc", "websocket-ping"),
    ("rpcx", "json-rpc", "server-heartbeat"),
    ("rping", "json-rpc", "client-ping"),
]


def generate(output_dir: Path, **answers: str) -> Path:
    path = cookiecutter_main.cookiecutter(
        str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output_dir)
    )
    return Path(path)


def clean_env(venv: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def check(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (
        f"{what} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="session")
def venv(tmp_path_factory) -> Path:
    """A clean virtualenv (no system site-packages) with spiceflow-core from this
    checkout (editable) and pytest; build backends installed first so editable installs
    need no build isolation."""
    path = tmp_path_factory.mktemp("cookiecutter-venv") / "venv"
    env = clean_env()
    check(run([sys.executable, "-m", "venv", str(path)], cwd=path.parent, env=env), "python -m venv")
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    check(run([*pip, "hatchling>=1.25", "editables", "pytest>=8"], cwd=path.parent, env=env), "pip install build tools")
    check(
        run([*pip, "--no-build-isolation", "-e", str(ROOT)], cwd=path.parent, env=env), "pip install -e spiceflow-core"
    )
    return path


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory) -> Path:
    """One mypy cache for every generated plugin (the core's modules are analysed once),
    outside the checkout so it never meets the cache of `./dev test`."""
    return tmp_path_factory.mktemp("mypy-cache")


# -- fast checks -----------------------------------------------------------------------
def test_generated_layout_matches_the_first_party_plugins(tmp_path):
    project = generate(tmp_path, venue_name="Layout Check", venue_slug="layout_check", license="Apache-2.0")
    assert project.name == "spiceflow-layout_check"
    package = project / "spiceflow_layout_check"
    modules = {p.name for p in package.glob("*.py")}
    first_party = {p.name for p in FIRST_PARTY.glob("*.py")}
    assert (
        modules
        == first_party
        == {
            "__init__.py",
            "config.py",
            "rest.py",
            "session.py",
            "parsing.py",
            "schemas.py",
            "sync.py",
            "simulator.py",
            "plugin.py",
        }
    )
    assert (package / "fixtures" / "instruments.json").is_file()
    assert (project / "README.md").is_file() and (project / "LICENSE").read_text().startswith("Copyright")
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "spiceflow-layout_check"
    assert meta["project"]["license"] == "Apache-2.0"
    assert "spiceflow-core>=0.1.0" in meta["project"]["dependencies"]
    assert meta["project"]["entry-points"]["spiceflow.venues"] == {"layout_check": "spiceflow_layout_check.plugin"}
    assert meta["build-system"]["build-backend"] == "hatchling.build"
    # no pytest section: in the repository it would shadow the root configuration
    assert "pytest" not in meta.get("tool", {})
    # the test files every first-party plugin has, under the same names
    shared = set.intersection(*({p.name for p in tests.glob("*.py")} for tests in FIRST_PARTY_TESTS))
    assert {"test_pipeline.py", "test_pipeline_cli.py"} <= shared
    assert shared <= {p.name for p in (project / "tests").glob("*.py")}
    # no Jinja left behind, and every place to fill in is marked
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "{%" not in text and "cookiecutter." not in text, path
    assert "FILL IN" in (package / "parsing.py").read_text()


@pytest.mark.parametrize(
    "answers, message",
    [
        ({"venue_slug": "My-Venue"}, "venue_slug 'My-Venue' is not a valid Python identifier"),
        ({"venue_slug": "Acme"}, "venue_slug 'Acme' must be lowercase"),
        ({"venue_slug": "class"}, "venue_slug 'class' is not a valid Python identifier"),
        ({"ws_url": "http://stream.acme.com/ws"}, "ws_url 'http://stream.acme.com/ws' is not a WebSocket URL"),
        ({"rest_url": "ftp://api.acme.com"}, "rest_url 'ftp://api.acme.com' is not an HTTP URL"),
    ],
)
def test_bad_answers_are_refused_by_the_hook(tmp_path, capfd, answers, message):
    with pytest.raises(FailedHookException):
        generate(tmp_path, **{"venue_name": "Acme", **answers})
    err = capfd.readouterr().err
    assert f"cookiecutter-venue: error: {message}" in err
    assert not any(tmp_path.iterdir()), "a refused answer must leave nothing behind"


@pytest.mark.slow
@pytest.mark.parametrize("slug, protocol, heartbeat", ALL_STYLES)
def test_generated_plugin_passes_ruff_format_and_mypy(tmp_path, mypy_cache, slug, protocol, heartbeat):
    """What `./dev test` checks, with the root pyproject's settings: ruff and ruff format
    run from the checkout's root (so imports sort as in plugins/), mypy with the rules
    the root configuration gives every plugins/*/spiceflow_* package."""
    project = generate(
        tmp_path,
        venue_name=f"{slug.replace('_', ' ').title()} Exchange",
        venue_slug=slug,
        protocol_style=protocol,
        heartbeat_style=heartbeat,
    )
    config = str(ROOT / "pyproject.toml")
    env = clean_env()
    lint = [str(BIN / "ruff"), "check", "--config", config, "--no-cache", "--output-format", "concise", str(project)]
    check(run(lint, cwd=ROOT, env=env), "ruff check")
    check(
        run([str(BIN / "ruff"), "format", "--config", config, "--no-cache", "--diff", str(project)], cwd=ROOT, env=env),
        "ruff format --check",
    )
    mypy = [str(BIN / "mypy"), "--config-file", config, "--cache-dir", str(mypy_cache), f"spiceflow_{slug}"]
    result = check(run(mypy, cwd=project, env=env), "mypy")
    assert "Success: no issues found in 9 source files" in result.stdout, result.stdout


@pytest.mark.slow
def test_a_checksum_written_in_sync_py_is_sent_verified_and_healed(tmp_path):
    """The checksum hook is wired end to end: writing ``sync.CHECKSUM`` is all it takes
    for the simulator to send it, the parser to pass it on, the core to verify every
    book and heal the ``corrupt_checksum`` fault, which the pipeline tests then run."""
    project = generate(tmp_path, venue_name="Crc Exchange", venue_slug="crc", protocol_style="plain-json")
    sync = project / "spiceflow_crc" / "sync.py"
    text = sync.read_text()
    assert "CHECKSUM: BookChecksum | None = None" in text
    sync.write_text(
        text.replace(
            "CHECKSUM: BookChecksum | None = None",
            "class Crc32:\n"
            "    depth = 10\n\n"
            "    def compute(self, bids, asks):\n"
            "        import zlib\n\n"
            '        return zlib.crc32(":".join(f"{p}:{s}" for p, s in [*bids[:10], *asks[:10]]).encode())\n\n\n'
            "CHECKSUM: BookChecksum | None = Crc32()",
        )
    )
    result = check(
        run(
            [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests/test_pipeline.py"],
            cwd=project,
            env=clean_env(),
        ),
        "crc pipeline tests",
    )
    assert "test_fault_heals_with_an_exact_book[corrupt_checksum] PASSED" in result.stdout, result.stdout
    assert "test_books_are_exact PASSED" in result.stdout  # every published book verified


@pytest.mark.slow
@pytest.mark.parametrize("slug, protocol, heartbeat", IN_PLACE)
def test_generated_plugin_tests_pass_in_place(tmp_path, slug, protocol, heartbeat):
    project = generate(
        tmp_path, venue_name=f"{slug} exchange", venue_slug=slug, protocol_style=protocol, heartbeat_style=heartbeat
    )
    result = check(
        run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=clean_env()),
        f"{slug} tests",
    )
    assert " passed" in result.stdout and " failed" not in result.stdout


# -- the whole loop in a clean virtualenv ------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("slug, protocol, heartbeat", INSTALLED)
def test_generated_plugin_installs_passes_its_tests_and_runs_ws_only(venv, tmp_path, slug, protocol, heartbeat):
    project = generate(
        tmp_path,
        venue_name=f"{slug.title()} Exchange",
        venue_slug=slug,
        ws_url=f"wss://ws.{slug}.example/v1/stream",
        rest_url=f"https://api.{slug}.example",
        protocol_style=protocol,
        heartbeat_style=heartbeat,
    )
    env = clean_env(venv)
    bin_ = venv / "bin"
    check(
        run(
            [
                str(bin_ / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-build-isolation",
                "-e",
                str(project),
            ],
            cwd=tmp_path,
            env=env,
        ),
        f"pip install -e {project.name}",
    )

    # the plugin's own tests, with the venv's pytest (CLI tests included: it is installed)
    result = check(
        run([str(bin_ / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"], cwd=project, env=env),
        f"{slug} tests",
    )
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout

    # `spiceflow venues` lists it
    venues = check(run([str(bin_ / "spiceflow"), "venues"], cwd=tmp_path, env=env), "spiceflow venues")
    assert slug in [line.split("\t")[0] for line in venues.stdout.splitlines()]
    assert f"{slug}\tspiceflow-{slug}\t0.1.0" in venues.stdout

    # the bring-up loop: ws-only against the plugin's own simulator
    ws_only = check(
        run(
            [str(bin_ / "spiceflow"), "run", "--profile", "demo", "--profile", "ws-only", "--venue", slug],
            cwd=tmp_path,
            env=env,
            timeout=60,
        ),
        "spiceflow run --profile demo --profile ws-only",
    )
    assert f"ws-only {slug}: connected after" in ws_only.stdout
    assert "first heartbeat after" in ws_only.stdout
