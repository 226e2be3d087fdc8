"""The orchestrator: runs the workflows for every selected venue, each venue in its own
supervised task group, plus the broadcaster, the optional simulators (``demo``), the
control API and the periodic status line; stops gracefully on SIGINT/SIGTERM.

    Full:          reference -> websocket -> router -> books -> broadcast
    WebSocketOnly: reference -> websocket -> dummy router; done at the first heartbeat
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from loguru import logger

from spiceflow_core.broadcast.actor import BroadcastActor
from spiceflow_core.config import Settings
from spiceflow_core.plugin.contract import Endpoints, Venue
from spiceflow_core.plugin.registry import VenueRegistry
from spiceflow_core.runtime.errors import describe_error
from spiceflow_core.runtime.supervision import restart_on_failure
from spiceflow_core.runtime.venue_runtime import VenueRuntime

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.cluster.member import ClusterMember
    from spiceflow_core.recording.sfrec import Recorder
    from spiceflow_core.sinks.contract import Sink


#: a venue that ran this long before failing was healthy: its backoff starts over
VENUE_HEALTHY_AFTER_S = 60.0


class StartupError(Exception):
    """The run cannot start (message says which venue and why)."""


@dataclass
class RunReport:
    exit_code: int = 0
    lines: list[str] = field(default_factory=list)


class Orchestrator:
    def __init__(
        self,
        settings: Settings,
        registry: VenueRegistry,
        venue_names: list[str],
        *,
        endpoint_overrides: dict[str, Endpoints] | None = None,
        simulator_options: dict[str, Any] | None = None,
        recorder_factory: Callable[[Venue], Recorder] | None = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.settings = settings
        #: sinks besides ZeroMQ (``[sinks.<name>]``), run by the broadcaster
        self.sinks = list(sinks)
        self.registry = registry
        self.venue_names = venue_names
        self.endpoint_overrides = dict(endpoint_overrides or {})
        self.simulator_options = simulator_options or {}
        self.recorder_factory = recorder_factory
        self.runtimes: dict[str, VenueRuntime] = {}
        self.broadcaster: BroadcastActor | None = None
        self.simulators: dict[str, object] = {}
        self.report = RunReport()
        self.api_address: str | None = None  # set once the control API listens
        self.ready = anyio.Event()
        #: this process as a cluster member (``[cluster] nats``) from when it starts joining
        #: (``describe()["joined"]`` tells whether it has)
        self.cluster: ClusterMember | None = None
        self._stopping = False
        self.log = logger.bind(actor="orchestrator")

    # -- endpoints -------------------------------------------------------------
    def endpoints_for(self, venue: Venue) -> Endpoints:
        if venue.name in self.endpoint_overrides:
            return self.endpoint_overrides[venue.name]
        vs = self.settings.venues.get(venue.name)
        base = venue.default_endpoints
        return Endpoints(
            ws_url=(vs.ws_url if vs and vs.ws_url else base.ws_url),
            rest_url=(vs.rest_url if vs and vs.rest_url else base.rest_url),
        )

    # -- run ---------------------------------------------------------------------
    async def run(self) -> int:
        ws_only = self.settings.ws_only
        async with contextlib.AsyncExitStack() as stack:
            try:
                if self.settings.demo:
                    await self._start_simulators(stack)
                if not ws_only:
                    self.broadcaster = BroadcastActor(
                        self.settings.broadcast.address,
                        hwm=self.settings.broadcast.hwm,
                        status_interval=self.settings.broadcast.status_interval,
                        sinks=self.sinks,
                    )
                    stack.push_async_callback(self.broadcaster.aclose)
                    self.log.info("broadcasting on {}", self.broadcaster.address)
            except StartupError as exc:
                self.log.error("{}", exc)
                return 1
            except Exception as exc:
                self.log.error("startup failed: {}", describe_error(exc))
                return 1
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._signals, tg.cancel_scope)
                try:
                    for name in self.venue_names:
                        await tg.start(self._supervise, name)
                except Exception as exc:
                    self.log.error("startup failed: {}", describe_error(exc))
                    self.report.exit_code = 1
                    tg.cancel_scope.cancel()
                    return 1
                if self.broadcaster is not None:
                    tg.start_soon(self.broadcaster.run)
                tg.start_soon(self._status_loop)
                await self._start_api(tg)
                if self.settings.cluster.nats and not ws_only:
                    try:
                        await tg.start(self._run_cluster)
                    except Exception as exc:
                        self.log.error("cluster: {}", describe_error(exc))
                        self.report.exit_code = 1
                        tg.cancel_scope.cancel()
                        return 1
                self.ready.set()
                if ws_only:
                    await self._await_first_heartbeats()
                    await self._stop(tg.cancel_scope)
                elif self.settings.duration is not None:
                    await anyio.sleep(self.settings.duration)
                    await self._stop(tg.cancel_scope)
        for line in self.report.lines:
            print(line, flush=True)
        return self.report.exit_code

    async def _start_simulators(self, stack: contextlib.AsyncExitStack) -> None:
        for name in self.venue_names:
            venue = self.registry.get(name)
            vs = self.settings.venues.get(name)
            wanted = list(vs.instruments) if vs and vs.instruments else list(venue.default_instruments)
            symbols = [s for s in wanted if not any(ch in s for ch in "*?[")] or None
            try:
                sim = await stack.enter_async_context(venue.simulator(symbols=symbols, **self.simulator_options))
            except NotImplementedError as exc:
                raise StartupError(f"demo profile: {exc}") from None
            self.simulators[name] = sim
            self.endpoint_overrides.setdefault(name, sim.endpoints)
            self.log.info("{} simulator serving {} and {}", name, sim.endpoints.ws_url, sim.endpoints.rest_url)

    async def _supervise(self, name: str, *, task_status: TaskStatus[None]) -> None:
        """Run one venue; a failure after startup restarts it with backoff, isolated
        from the other venues; a failure during startup ends the run."""
        venue = self.registry.get(name)
        started = False

        async def run_venue() -> None:
            nonlocal started
            recorder = self.recorder_factory(venue) if self.recorder_factory else None
            runtime = VenueRuntime(
                venue,
                self.settings,
                self.endpoints_for(venue),
                self.broadcaster,
                ws_only=self.settings.ws_only,
                recorder=recorder,
                subscribe_configured=not self.settings.cluster.nats,
            )
            self.runtimes[name] = runtime
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(runtime.run)
                    if not started:
                        started = True
                        task_status.started()
            finally:
                if recorder is not None:
                    with anyio.CancelScope(shield=True):
                        await recorder.aclose()

        def failed(exc: Exception) -> None:
            if not started:
                raise StartupError(f"{name}: {describe_error(exc)}") from None
            self.log.bind(venue=name).error("venue failed: {}; restarting it", describe_error(exc))

        await restart_on_failure(
            run_venue, on_failure=failed, initial=1.0, maximum=60.0, healthy_after=VENUE_HEALTHY_AFTER_S
        )

    async def _await_first_heartbeats(self) -> None:
        timeout = self.settings.runtime.first_heartbeat_timeout
        for name, runtime in self.runtimes.items():
            with anyio.move_on_after(timeout):
                await runtime.first_heartbeat.wait()
            if runtime.first_heartbeat.is_set():
                connected = f"{runtime.connected_ms:.0f} ms" if runtime.connected_ms is not None else "?"
                self.report.lines.append(
                    f"ws-only {name}: connected after {connected}, first heartbeat after {runtime.first_heartbeat_ms:.0f} ms"
                )
            else:
                state = "connected" if runtime.connected_ms is not None else "never connected"
                self.report.lines.append(f"ws-only {name}: FAILED, no heartbeat within {timeout:.0f}s ({state})")
                self.report.exit_code = 1

    async def _status_loop(self) -> None:
        interval = max(self.settings.broadcast.status_interval, 1.0)
        while True:
            await anyio.sleep(interval)
            for name, runtime in self.runtimes.items():
                connections = runtime.connection_states()
                conns = sum(1 for c in connections if c["up"])
                logger.bind(venue=name, actor="status").info(
                    "status: {} subscriptions, {}/{} connections up, {}",
                    len(runtime.table),
                    conns,
                    len(connections),
                    runtime.metrics.status_line(),
                )

    async def _start_api(self, tg: TaskGroup) -> None:
        if self.settings.ws_only or not self.settings.api.enabled:
            return
        from spiceflow_core.api.server import serve_api

        await tg.start(serve_api, self)

    async def _run_cluster(self, *, task_status: TaskStatus[None]) -> None:
        """Membership and reconciliation (``spiceflow_core.cluster``): the cluster's
        desired subscriptions, split between the live members, become this process's."""
        from spiceflow_core.cluster.member import ClusterMember
        from spiceflow_core.cluster.store import open_store

        cs = self.settings.cluster
        assert cs.nats is not None
        async with open_store(cs.nats, ttl=cs.ttl, replicas=cs.replicas) as store:
            member = ClusterMember(self, store, cs)
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(member.run)
                    self.cluster = member
                    task_status.started()
            finally:
                self.cluster = None

    async def _signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                self.log.info("{} received: shutting down", signal.Signals(signum).name)
                await self._stop(scope)
                return

    async def _stop(self, scope: anyio.CancelScope) -> None:
        if self._stopping:
            return
        self._stopping = True
        with anyio.CancelScope(shield=True):
            for runtime in self.runtimes.values():
                await runtime.shutdown()
        scope.cancel()

    # -- used by the control API ---------------------------------------------------
    def runtime(self, venue: str) -> VenueRuntime:
        if venue not in self.runtimes:
            known = ", ".join(sorted(self.runtimes)) or "none"
            raise KeyError(f"venue {venue!r} is not running (running: {known})")
        return self.runtimes[venue]
