"""BroadcastActor: owns the ZeroMQ publisher shared by every venue.

Publishing is a synchronous, non-blocking call: the ZeroMQ socket's own send queue
(bounded by the high-water mark) is this actor's inbox, so a book update costs no extra
task hop. The actor's task emits periodic per-venue stats on ``status.<venue>.*`` topics
and flushes and closes the socket at shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

import anyio
import msgspec
from loguru import logger

from spiceflow_core.broadcast.wire import BookLevel, BookMessage, StatusMessage, StatusState, WireMessage
from spiceflow_core.instruments import normalized_or_symbol
from spiceflow_core.model import Instrument, Level, TopOfBook, Trade

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.broadcast.publisher import Publisher
    from spiceflow_core.runtime.metrics import Metrics
    from spiceflow_core.sinks.contract import Sink, SinkStats


class BroadcastActor:
    def __init__(
        self, address: str, *, hwm: int, status_interval: float, sinks: Sequence[Sink] = (), bind: bool = True
    ) -> None:
        """``bind=False``: no ZeroMQ socket, for a subclass whose ``publish`` hands the
        messages elsewhere (a replay's output)."""
        from spiceflow_core.broadcast.publisher import Publisher

        #: the other sinks every published message is offered to (``[sinks.<name>]``)
        self.sinks = list(sinks)
        self.publisher: Publisher | None = Publisher(address, hwm=hwm) if bind else None
        self.address = getattr(self.publisher, "address", address)
        self.status_interval = status_interval
        self.instruments: dict[tuple[str, str], Instrument] = {}
        #: (venue, symbol) -> normalized id, built once at registration (not per message)
        self.normalized_ids: dict[tuple[str, str], str] = {}
        self.metrics: dict[str, Metrics] = {}
        #: venue -> callable giving {symbol: (state, reason)}, republished periodically so
        #: late-joining consumers learn every feed's state
        self.state_sources: dict[str, Callable[[], Mapping[str, tuple[StatusState, str]]]] = {}
        #: depth of ``staged()`` blocks: inside one, publish stages and the outermost
        #: block's end flushes
        self._staging = 0
        #: the receive stamp of the outermost open block (see staged)
        self._staged_recv_ts_ns = 0
        self._staged_block = _Staged(self)
        self.log = logger.bind(actor="broadcast")

    def register(self, instrument: Instrument) -> None:
        key = (instrument.venue, instrument.symbol)
        self.instruments[key] = instrument
        self.normalized_ids[key] = normalized_or_symbol(instrument, instrument.symbol)

    def _normalized(self, venue: str, symbol: str) -> str:
        return self.normalized_ids.get((venue, symbol), symbol)

    def staged(self, recv_ts_ns: int = 0) -> _Staged:
        """``with broadcaster.staged(recv_ts_ns):`` messages published inside go to ZeroMQ
        together when the block ends (``Publisher.stage``/``flush``: a run of one topic is
        one ZeroMQ message). The frame path wraps the frames of each socket read in it
        (``FrameRouter.route_batch``; the transports bound a read's batch), and nothing
        else publishes inside one, so a message waits at most for the rest of the read
        it came from to be routed. ``recv_ts_ns`` is that read's receive stamp, the one
        every message of the block carries: their receive -> publish latency is measured
        from it when the block ends. Nested blocks keep the outermost one's stamp."""
        if not self._staging:
            self._staged_recv_ts_ns = recv_ts_ns
        return self._staged_block

    def _flush_staged(self, recv_ts_ns: int) -> None:
        """Send what the block staged; count it per run, its latency measured now (when
        ZeroMQ takes it) from the block's receive stamp: the per-message bookkeeping of
        :meth:`publish` cost ~7% of a frame's CPU on the live path."""
        publisher = self.publisher
        if publisher is None:
            return
        now = time.time_ns()
        for run in publisher.flush():
            metrics = self.metrics.get(run.venue)
            if metrics is None:
                continue
            if run.sent:
                metrics.inc("published", run.symbol, run.sent)
                if run.received and recv_ts_ns:
                    metrics.observe_latency(now - recv_ts_ns, run.sent)
            if run.refused:
                metrics.inc("publish_drops", run.symbol, run.refused)

    def publish(self, message: WireMessage) -> bool:
        if self.publisher is None:  # closed during shutdown
            return False
        publisher = self.publisher
        staging = self._staging
        if staging:
            publisher.stage(message)  # ZeroMQ takes it at the block's end (see staged)
            ok = True
        else:
            ok = publisher.publish(message)
        for sink in self.sinks:
            sink.offer(publisher.last_topic, publisher.last_body, message)
        if staging:
            return True  # counted at the block's end
        metrics = self.metrics.get(message.venue)
        if metrics is not None:
            if ok:
                metrics.inc("published", message.symbol)
                recv = getattr(message, "recv_ts_ns", 0)
                if recv:
                    metrics.observe_latency(message.publish_ts_ns - recv)
            else:
                metrics.inc("publish_drops", message.symbol)
        return ok

    def publish_book(
        self,
        venue: str,
        symbol: str,
        sequence: int,
        bids: list[Level],
        asks: list[Level],
        exchange_ts_ms: int | None,
        recv_ts_ns: int,
        checksum_verified: bool = False,
    ) -> bool:
        return self.publish(
            BookMessage(
                venue=venue,
                symbol=symbol,
                instrument=self._normalized(venue, symbol),
                sequence=sequence,
                # a (price, size) tuple encodes exactly as the array-like BookLevel
                bids=cast("list[BookLevel]", bids),
                asks=cast("list[BookLevel]", asks),
                exchange_ts_ms=exchange_ts_ms,
                recv_ts_ns=recv_ts_ns,
                checksum_verified=checksum_verified,
            )
        )

    def _forward(self, event: Trade | TopOfBook) -> bool:
        """Trades and tops are wire messages themselves: stamp the normalized id and send."""
        event.instrument = self._normalized(event.venue, event.symbol)
        return self.publish(event)

    def publish_trade(self, trade: Trade) -> bool:
        return self._forward(trade)

    def publish_top(self, top: TopOfBook) -> bool:
        return self._forward(top)

    def publish_status(
        self,
        venue: str,
        symbol: str,
        state: StatusState,
        reason: str = "",
        counters: dict[str, int] | None = None,
    ) -> bool:
        return self.publish(
            StatusMessage(
                venue=venue,
                symbol=symbol,
                instrument=self._normalized(venue, symbol),
                state=state,
                reason=reason,
                counters=counters or {},
            )
        )

    async def run(self) -> None:
        """Periodic stats on ``status.<venue>.*`` (the live view of ``spiceflow status``)
        and every feed's current state on ``status.<venue>.<symbol>``."""
        try:
            async with anyio.create_task_group() as tg:
                for sink in self.sinks:
                    tg.start_soon(self._run_sink, sink)
                while True:
                    await anyio.sleep(self.status_interval)
                    self._publish_stats()
        finally:
            with anyio.CancelScope(shield=True):
                await self.aclose()

    def _publish_stats(self) -> None:
        for venue, source in list(self.state_sources.items()):
            for symbol, (state, reason) in source().items():
                self.publish_status(venue, symbol, state, reason)
        for venue, metrics in list(self.metrics.items()):
            counters = metrics.snapshot()
            lat = metrics.latency.percentiles(0.5, 0.99)
            counters["latency_p50_us"] = int(lat["p50"] * 1000)
            counters["latency_p99_us"] = int(lat["p99"] * 1000)
            self.publish_status(venue, "*", "stats", counters=counters)
        for stats in self.sink_stats():
            counters = {k: v for k, v in msgspec.structs.asdict(stats).items() if isinstance(v, int)}
            self.publish_status("sinks", stats.name, "stats", stats.last_error, counters=counters)

    def sink_stats(self) -> list[SinkStats]:
        return [sink.current_stats() for sink in self.sinks]

    async def _run_sink(self, sink: Sink) -> None:
        """A sink's own task; its failure is logged and counted, the others go on."""
        try:
            await sink.run()
        except Exception as exc:
            sink.stats.errors += 1
            sink.stats.last_error = f"{type(exc).__name__}: {exc}"
            self.log.bind(sink=sink.name).opt(exception=exc).error(
                "sink {} stopped: {}; the pipeline and the other sinks go on", sink.name, sink.stats.last_error
            )

    def close(self) -> None:
        """Close at once (no flush when called on the event loop; see ``Publisher.close``)."""
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            publisher.close()

    async def aclose(self) -> None:
        """Flush what is queued for connected consumers (off the event loop) and close."""
        publisher, self.publisher = self.publisher, None
        for sink in self.sinks:
            with anyio.move_on_after(1.0):
                try:
                    await sink.aclose()
                except Exception as exc:
                    self.log.bind(sink=sink.name).error("sink {} failed to close: {}", sink.name, exc)
        if publisher is not None:
            started = time.monotonic()
            await publisher.aclose()
            self.log.debug("publisher flushed and closed in {:.0f} ms", (time.monotonic() - started) * 1000)


class _Staged:
    """The block of :meth:`BroadcastActor.staged` (one object per actor, entered once per
    socket read; blocks may nest, the outermost one flushes)."""

    __slots__ = ("_actor",)

    def __init__(self, actor: BroadcastActor) -> None:
        self._actor = actor

    def __enter__(self) -> None:
        self._actor._staging += 1

    def __exit__(self, *exc: object) -> None:
        actor = self._actor
        actor._staging -= 1
        if not actor._staging:
            actor._flush_staged(actor._staged_recv_ts_ns)
