"""``spiceflow run --workers N``: N worker processes on this machine sharing the
instruments as members of one cluster.

The parent process:

* uses ``[cluster] nats`` / ``--cluster`` when given, else starts an embedded
  nats-server (``nats_server``) with a temporary JetStream store;
* with the ``demo`` profile, runs the simulators itself (one market for every worker)
  and gives the workers their endpoints (the workers use fixtures for reference data);
* writes one config file per worker (the parent's settings, with the cluster URL,
  member id ``worker-<i>``, ZeroMQ on the base port + 1 + i, control API on the API
  port + 1 + i) and starts ``spiceflow run --config <it>`` for each, restarting a worker
  that fails (a clean exit, e.g. after ``--duration``, is not restarted; a configuration
  error, exit 2, e.g. its member id live in the cluster already, stops them all);
* binds the configured broadcast address itself and forwards every worker's messages
  there (a ZeroMQ XSUB/XPUB proxy): consumers connect to the usual address, or to the
  workers directly (``spiceflow status --cluster`` lists their addresses);
* on SIGINT/SIGTERM stops the workers (SIGTERM, then SIGKILL after a grace period),
  the proxy, the simulators and the embedded nats-server.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import zmq
from loguru import logger

from spiceflow_core.api.server import parse_address
from spiceflow_core.config import Settings

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.plugin.registry import VenueRegistry

#: a worker that does not exit this long after SIGTERM is killed
STOP_GRACE_S = 10.0
#: wait before restarting a worker that exited on its own
RESTART_DELAY_S = 1.0
#: a worker's exit code for a usage or configuration error (``spiceflow_core.cli.main``)
EXIT_USAGE = 2


def _toml_value(value: Any) -> str:
    """TOML for plain data (inline tables and arrays; JSON strings and numbers are TOML)."""
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + items + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def to_toml(data: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in data.items() if v is not None)


def _port_of(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def worker_settings(settings: Settings, i: int, nats_url: str, endpoints: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Worker ``i``'s configuration as plain data."""
    raw: dict[str, Any] = msgspec.to_builtins(settings)
    prefix, base = _port_of(settings.broadcast.address)
    raw["broadcast"]["address"] = f"{prefix}:{base + 1 + i}"
    api_host, api_port = parse_address(settings.api.address)
    raw["api"]["address"] = f"{api_host}:{api_port + 1 + i}"
    raw["cluster"]["nats"] = nats_url
    raw["cluster"]["member"] = f"worker-{i}"
    if endpoints:
        raw["profiles"] = [p for p in raw["profiles"] if p != "demo"] + ["fixtures"]
        for name, (ws_url, rest_url) in endpoints.items():
            venue = raw["venues"].setdefault(name, {})
            venue["ws_url"], venue["rest_url"] = ws_url, rest_url
    return raw


class _Proxy:
    """Every worker's broadcast forwarded to one address, in a ZeroMQ proxy thread."""

    def __init__(self, address: str, upstreams: list[str]) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.front = self.context.socket(zmq.XPUB)
        self.front.setsockopt(zmq.SNDHWM, 1_000_000)
        self.front.bind(address)
        self.back = self.context.socket(zmq.XSUB)
        self.back.setsockopt(zmq.RCVHWM, 1_000_000)
        for upstream in upstreams:
            self.back.connect(upstream)
        self.thread = threading.Thread(target=self._run, name="spiceflow-proxy", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(zmq.ContextTerminated, zmq.ZMQError):
            zmq.proxy(self.front, self.back)

    def close(self) -> None:
        for sock in (self.front, self.back):
            sock.close(linger=0)
        self.context.term()
        self.thread.join(timeout=2)


async def _supervise_worker(i: int, config: Path, names: list[str], stopping: anyio.Event) -> int:
    """Run worker ``i`` until ``stopping``, restarting it when it fails; its last exit
    code (EXIT_USAGE sets ``stopping``: the same configuration would fail again)."""
    cmd = [sys.executable, "-m", "spiceflow_core.cli.main", "run", "--config", str(config)]
    for name in names:
        cmd += ["--venue", name]
    log = logger.bind(actor="workers", worker=i)
    while not stopping.is_set():
        process = subprocess.Popen(cmd)
        log.info("worker-{} started (pid {})", i, process.pid)
        try:
            while process.poll() is None and not stopping.is_set():
                await anyio.sleep(0.1)
        finally:
            with anyio.CancelScope(shield=True):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    with anyio.move_on_after(STOP_GRACE_S):
                        while process.poll() is None:
                            await anyio.sleep(0.05)
                    if process.poll() is None:
                        log.warning("worker-{} did not stop in {:.0f}s: killed", i, STOP_GRACE_S)
                        process.kill()
                        process.wait()
        if process.returncode == 0:
            return 0  # a clean exit (--duration, or a Ctrl-C that reached the whole process group)
        if process.returncode == EXIT_USAGE and not stopping.is_set():
            log.error("worker-{} refused its configuration (exit {}): stopping every worker", i, EXIT_USAGE)
            stopping.set()
            return EXIT_USAGE
        if not stopping.is_set():
            log.warning("worker-{} exited with {}; restarting it", i, process.returncode)
            await anyio.sleep(RESTART_DELAY_S)
    return 0


async def _run(settings: Settings, registry: VenueRegistry, names: list[str], n: int) -> int:
    from spiceflow_core.cluster.nats_server import nats_server

    async with contextlib.AsyncExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spiceflow-workers-")))
        nats_url = settings.cluster.nats
        if not nats_url:
            server = await stack.enter_async_context(nats_server(root))
            nats_url = server.url
            logger.info("embedded nats-server on {}", nats_url)
        endpoints: dict[str, tuple[str, str]] = {}
        if settings.demo:
            for name in names:
                vs = settings.venues.get(name)
                venue = registry.get(name)
                wanted = list(vs.instruments) if vs and vs.instruments else list(venue.default_instruments)
                symbols = [s for s in wanted if not any(ch in s for ch in "*?[")] or None
                sim = await stack.enter_async_context(venue.simulator(symbols=symbols))
                endpoints[name] = (sim.endpoints.ws_url, sim.endpoints.rest_url)
                logger.info("{} simulator serving {}", name, sim.endpoints.ws_url)
        configs = []
        for i in range(n):
            path = root / f"worker-{i}.toml"
            path.write_text(to_toml(worker_settings(settings, i, nats_url, endpoints)), encoding="utf-8")
            configs.append(path)
        prefix, base = _port_of(settings.broadcast.address)
        upstreams = [f"{prefix}:{base + 1 + i}".replace("*", "127.0.0.1") for i in range(n)]
        proxy = _Proxy(settings.broadcast.address, upstreams)
        stack.callback(proxy.close)
        logger.info("broadcasting on {} (forwarding workers {})", settings.broadcast.address, ", ".join(upstreams))
        stopping = anyio.Event()
        codes: list[int] = []

        async def supervise(i: int, config: Path) -> None:
            codes.append(await _supervise_worker(i, config, names, stopping))

        async with anyio.create_task_group() as tg:

            async def on_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        logger.info("{} received: stopping {} worker(s)", signal.Signals(signum).name, n)
                        stopping.set()
                        return

            tg.start_soon(on_signals)
            async with anyio.create_task_group() as workers:
                for i, config in enumerate(configs):
                    workers.start_soon(supervise, i, config)
            tg.cancel_scope.cancel()
    return max(codes, default=0)


def run_workers(settings: Settings, registry: VenueRegistry, names: list[str], n: int) -> int:
    return anyio.run(_run, settings, registry, names, n)
