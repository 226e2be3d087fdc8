"""``spiceflow record``, ``spiceflow replay`` and ``spiceflow export``.

``record`` runs the normal pipeline (every ``run`` option applies) and writes every
received WebSocket frame, every sent frame and every REST answer of each venue to
``OUT/<venue>-<start>.sfrec`` (format: ``spiceflow_core.recording.sfrec``), from a writer
thread per venue so the event loop never waits for the disk.

``replay`` runs a recording -- or a ``shared/recorded`` text capture -- through the
runtime's router and order book actor without sockets (``spiceflow_core.recording.replay``)
and publishes the wire messages on the ZeroMQ broadcast (default), or writes one JSON line
per message (``--jsonl FILE`` or ``-`` for stdout; with ``--broadcast`` both).

``export`` is the same replay with the Parquet plugin's writer as its output
(``--parquet DIR``: the layout of the ``[sinks.parquet]`` sink). pyarrow lives in that
plugin (``spiceflow-parquet``), imported when the command runs, so the core does not
depend on it; without the plugin the command says what to install.

Both show a progress bar (``rich``) when stderr is a terminal, and nothing else when it is
not (a pipe or a file gets only the summary): ``replay`` the recorded bytes replayed out
of the source's size, ``record`` the frames recorded, the bytes written and the elapsed
time. Log lines are routed above the bar meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from spiceflow_core.recording.sfrec import SUFFIX, Recorder

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Iterator

    from rich.progress import Progress, ProgressColumn, Task
    from rich.text import Text

    from spiceflow_core.broadcast.wire import WireMessage
    from spiceflow_core.cli.main import AddCommon, Command, Subcommands
    from spiceflow_core.config import Settings
    from spiceflow_core.model import Feed
    from spiceflow_core.plugin.contract import Venue
    from spiceflow_core.plugin.registry import VenueRegistry
    from spiceflow_core.recording.replay import Replayer


def add_recording_commands(sub: Subcommands, common: AddCommon) -> None:
    run_parser = sub.choices.get("run")
    p = sub.add_parser(
        "record",
        help="run the pipeline and record every frame and REST answer (same options as run, plus --out)",
        add_help=False,
        conflict_handler="resolve",
    )
    if run_parser is not None:
        # every ``run`` option (and its -h) without a second copy of the definitions
        p._add_container_actions(run_parser)
    else:  # pragma: no cover
        p.add_argument("-h", "--help", action="help")
        common(p)
    p.add_argument(
        "--out", required=True, metavar="DIR", help="directory for the .sfrec recordings (created if missing)"
    )

    p = sub.add_parser("replay", help="replay a recording or a capture through the parsers and book engine, offline")
    common(p)
    _source_arguments(p)
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        metavar="X",
        help="pace at X times the recorded speed (1 = real time; default: as fast as possible)",
    )
    p.add_argument(
        "--jsonl",
        metavar="FILE",
        help="write one JSON line per message to FILE ('-' for stdout) instead of ZeroMQ (as well, with --broadcast)",
    )
    p.add_argument("--depth", type=int, default=None, metavar="N", help="levels per side (default: book.depth, 25)")
    p.add_argument("--broadcast", metavar="ADDR", help="ZeroMQ PUB address (default: the config's)")
    _publish_argument(p)
    p.add_argument(
        "--feed",
        action="append",
        choices=["book", "top", "trades"],
        help="feeds to publish: book (default), top (the exchange's best bid/ask), trades; repeatable",
    )
    p.add_argument(
        "--linger",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="ZeroMQ: wait this long after binding before publishing (late joiners) and at exit",
    )

    p = sub.add_parser(
        "export",
        help="replay a recording or a capture through the book engine into Parquet files (needs spiceflow-parquet)",
    )
    common(p)
    _source_arguments(p)
    p.add_argument(
        "--parquet",
        required=True,
        metavar="DIR",
        help="dataset root: DIR/{books,trades,tops}/venue=V/date=D/hour=H/*.parquet (created if missing)",
    )
    p.add_argument(
        "--depth",
        type=int,
        default=None,
        metavar="N",
        help="levels per side, in the book engine and the files (default: [sinks.parquet] depth, 10)",
    )
    _publish_argument(p)
    p.add_argument(
        "--feed",
        action="append",
        choices=["book", "top", "trades"],
        help="feeds to export (default: [sinks.parquet] feeds, all three); repeatable",
    )


def _source_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source", help="a .sfrec file, a directory of them, or a capture prefix (e.g. ../shared/recorded/PREFIX)"
    )
    p.add_argument(
        "--venue", metavar="NAME", help="venue of the source (default: from the recording, or the capture prefix)"
    )


def _publish_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--publish",
        choices=["every", "top-changed", "conflate"],
        help="emit every update, only when the top-N changed, or once per batch of frames (default: book.publish)",
    )


# -- progress on a terminal ------------------------------------------------------------


def _on_terminal() -> bool:
    """A progress bar only where a person watches it."""
    return sys.stderr.isatty()


def _progress(*columns: str | ProgressColumn) -> Progress:
    """A bar on stderr that takes over stderr while it runs (log lines and prints go above
    it); stdout is left alone (``--jsonl -`` writes there)."""
    from rich.console import Console
    from rich.progress import Progress

    return Progress(*columns, console=Console(stderr=True), redirect_stdout=False, redirect_stderr=True)


class _CountingRecorder(Recorder):
    """A recorder that also counts the frames it is handed, for the progress bar."""

    frames = 0

    def frame(self, conn_id: int, frame: str | bytes, recv_ts_ns: int) -> None:
        self.frames += 1
        super().frame(conn_id, frame, recv_ts_ns)


def _counting_recorders(out: str, recorders: list[_CountingRecorder]) -> Callable[[Venue], Recorder]:
    """``recorder_factory(out)``'s files (``OUT/<venue>-<start>.sfrec``, the same metadata),
    written by counting recorders collected in ``recorders``."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    meta = {"argv": sys.argv[1:]}

    def factory(venue: Venue) -> Recorder:
        recorder = _CountingRecorder(Path(out) / f"{venue.name}-{stamp}{SUFFIX}", venue.name, meta)
        recorders.append(recorder)
        return recorder

    return factory


def _recording_columns(recorders: list[_CountingRecorder]) -> list[ProgressColumn]:
    from rich.progress import ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class Recorded(ProgressColumn):
        # read at each refresh: the recorders count, nothing updates the task per frame
        def render(self, task: Task) -> Text:
            frames = sum(r.frames for r in recorders)
            written = sum(r.writer.written_bytes for r in recorders)
            return Text(f"{frames:,} frames, {written / 1e6:,.1f} MB written")

    return [SpinnerColumn(), TextColumn("record {task.description}"), Recorded(), TimeElapsedColumn()]


def cmd_record(args: argparse.Namespace) -> int:
    from spiceflow_core.cli.main import cmd_run
    from spiceflow_core.recording.sfrec import recorder_factory

    if not _on_terminal():
        return cmd_run(args, recorder_factory=recorder_factory(args.out))
    recorders: list[_CountingRecorder] = []
    with _progress(*_recording_columns(recorders)) as bar:
        bar.add_task(f"-> {args.out}", total=None)
        # the bar runs first: the run configures its logging on the stderr the bar took over
        return cmd_run(args, recorder_factory=_counting_recorders(args.out, recorders))


def _source_bytes(source: str) -> int | None:
    """The size of a replay source's files, or None when it is not one (the replay says why)."""
    from spiceflow_core.recording.capture import capture_files
    from spiceflow_core.recording.sfrec import recording_files

    try:
        files = recording_files(source) or capture_files(source)
        return sum(f.stat().st_size for f in files)
    except OSError:
        return None


@contextlib.contextmanager
def _replay_progress(source: str, reroute_logs: Callable[[], None]) -> Iterator[Callable[[int], object] | None]:
    """``progress(bytes replayed)`` for :func:`replay` while a bar shows it on a terminal,
    or None (no bar) when stderr is not one. ``reroute_logs`` is called once the bar has
    taken stderr over and again after it gave it back."""
    if not _on_terminal():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    total = _source_bytes(source)
    with _progress(
        TextColumn("replay {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task(Path(source).name, total=total)
        reroute_logs()

        def update(done: int) -> None:
            bar.update(task, completed=min(done, total) if total else done)

        try:
            yield update
            # the recorded data is the source less its framing: the whole of it was read
            bar.update(task, completed=total)
        finally:
            bar.stop()
            reroute_logs()


def cmd_replay(args: argparse.Namespace) -> int:
    from spiceflow_core.cli.main import EXIT_FAILURE, EXIT_OK, UsageError, _registry, _settings
    from spiceflow_core.recording.replay import JsonLines, OutputError, ReplayError

    settings = _settings(args)
    registry = _registry()
    depth = args.depth if args.depth is not None else settings.book.depth
    if depth < 1:
        raise UsageError("--depth must be at least 1")
    if args.speed is not None and args.speed <= 0:
        raise UsageError("--speed must be positive")
    _check_venue(args, registry)
    publish = args.publish or settings.book.publish
    feeds = list(dict.fromkeys(args.feed or ["book"]))

    out = None
    publisher = None
    outputs: list[Callable[[WireMessage], object]] = []
    if args.jsonl:
        # closed in the finally below (stdout only flushed), so no with-block
        out = sys.stdout.buffer if args.jsonl == "-" else open(args.jsonl, "wb")  # noqa: SIM115
        outputs.append(JsonLines(out).publish)
    if not args.jsonl or args.broadcast:
        from spiceflow_core.broadcast.publisher import Publisher

        publisher = Publisher(args.broadcast or settings.broadcast.address, hwm=settings.broadcast.hwm)
        print(f"replay: publishing on {publisher.address}", file=sys.stderr, flush=True)
        time.sleep(args.linger)  # let subscribers connect before the first message
        outputs.append(publisher.publish)

    def emit(message: WireMessage) -> None:
        for output in outputs:
            output(message)

    started = time.perf_counter()
    try:
        replayers = _replay_source(
            args,
            settings,
            registry,
            depth=depth,
            speed=args.speed,
            publish=publish,
            feeds=feeds,
            emit=outputs[0] if len(outputs) == 1 else emit,
        )
        if out is not None:
            try:
                out.flush()  # a full disk shows here (or in a write), not at close
            except OSError as exc:
                raise OutputError(f"cannot write {args.jsonl}: {exc}") from exc
    except ReplayError as exc:
        raise UsageError(str(exc)) from None
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except OutputError as exc:
        if isinstance(exc.__cause__, BrokenPipeError):  # the reader of ``--jsonl -`` stopped (``| head``)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        print(f"replay: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if out is not None and out is not sys.stdout.buffer:
            with contextlib.suppress(OSError):  # already reported above
                out.close()
        if publisher is not None:
            time.sleep(args.linger)
            publisher.close()
    return _report("replay", replayers, time.perf_counter() - started)


def _check_venue(args: argparse.Namespace, registry: VenueRegistry) -> None:
    from spiceflow_core.cli.main import UsageError

    if args.venue and args.venue not in registry.venues:
        raise UsageError(f"unknown venue {args.venue!r} (installed: {', '.join(registry.names()) or 'none'})")


def _replay_source(
    args: argparse.Namespace,
    settings: Settings,
    registry: VenueRegistry,
    *,
    depth: int,
    publish: str,
    feeds: list[Feed],
    emit: Callable[[WireMessage], object],
    speed: float | None = None,
) -> dict[str, Replayer]:
    """``args.source`` through the replay engine with the configured limits (``replay``
    and ``export``), a progress bar on a terminal."""
    from spiceflow_core.logs import configure_logging
    from spiceflow_core.recording.replay import replay

    def reroute_logs() -> None:
        configure_logging(settings.log.level, settings.log.format)  # to whatever sys.stderr is now

    with _replay_progress(args.source, reroute_logs) as progress:
        return replay(
            args.source,
            _installed_venue(registry),
            venue=args.venue,
            capture_prefixes=registry.capture_prefixes(),
            depth=depth,
            speed=speed,
            publish=publish,
            feeds=feeds,
            emit=emit,
            max_buffer=settings.book.max_buffer,
            max_frame_bytes=settings.runtime.max_frame_bytes,
            progress=progress,
        )


def _installed_venue(registry: VenueRegistry) -> Callable[[str], Venue]:
    """The venue of a replay's source, by name (a usage error when not installed)."""
    from spiceflow_core.cli.main import UsageError

    def get(name: str) -> Venue:
        if name not in registry.venues:
            raise UsageError(
                f"the source is from venue {name!r}, which is not installed (installed: {', '.join(registry.names())})"
            )
        return registry.get(name)

    return get


def _report(command: str, replayers: dict[str, Replayer], elapsed: float) -> int:
    """The summary of a replay on stderr, a venue per line; EXIT_FAILURE when a venue's
    source held nothing to replay."""
    from spiceflow_core.cli.main import EXIT_FAILURE, EXIT_OK

    code = EXIT_OK
    for name, rep in replayers.items():
        s = rep.stats
        books = rep.book_feeds
        synced = sum(1 for f in books.values() if f.state == "synced")
        extra = "".join(f", {n} {what}" for n, what in ((s.tops, "tops"), (s.trades, "trades")) if n)
        verified = sum(f.sync.counters.checksums_verified for f in books.values())
        failed = sum(f.sync.counters.checksum_failures for f in books.values())
        if verified or failed:  # venues that send checksums (OKX, Kraken)
            extra += f", checksums {verified} verified {failed} failed"
        print(
            f"{command} {name}: {s.frames} frames, {s.rest} REST answers, {s.snapshots} snapshots, {s.deltas} deltas, "
            f"{s.updates} book updates{extra}, {synced}/{len(books)} books in sync, {s.gaps} gaps, "
            f"{s.parse_errors} bad frames in {elapsed:.2f}s"
            + (f"; recording truncated: {s.truncated_bytes} trailing bytes ignored" if s.truncated_bytes else ""),
            file=sys.stderr,
        )
        if s.recording_gaps:
            print(
                f"  recording gaps: {s.recording_gaps}, {s.lost_records} records lost "
                "(the recorder's writer fell behind; see spiceflow_core.recording.sfrec)",
                file=sys.stderr,
            )
        for reason in s.gap_reasons[:5]:
            print(f"  gap: {reason}", file=sys.stderr)
        for symbol, f in books.items():
            if f.state != "synced":
                print(
                    f"  {symbol}: {f.state} at the end ({f.reason}); no later snapshot in the source", file=sys.stderr
                )
        if not s.frames and not s.rest:
            code = EXIT_FAILURE
    return code


def cmd_export(args: argparse.Namespace) -> int:
    from spiceflow_core.cli.main import EXIT_FAILURE, UsageError, _registry, _settings
    from spiceflow_core.config import config_path
    from spiceflow_core.recording.replay import OutputError, ReplayError

    try:
        from spiceflow_parquet.export import Exporter, ExportError
    except ImportError:
        raise UsageError(
            "writing Parquet needs the spiceflow-parquet plugin (pyarrow): pip install spiceflow-parquet"
        ) from None
    settings = _settings(args)
    registry = _registry()
    if args.depth is not None and args.depth < 1:
        raise UsageError("--depth must be at least 1")
    _check_venue(args, registry)
    feeds = list(dict.fromkeys(args.feed)) if args.feed else None
    exporter = Exporter.from_config(
        settings.sinks.get("parquet", {}), args.parquet, str(config_path(args.config)), depth=args.depth, feeds=feeds
    )
    options = exporter.options

    started = time.perf_counter()
    try:
        replayers = _replay_source(
            args,
            settings,
            registry,
            depth=options.depth,
            publish=args.publish or settings.book.publish,
            feeds=list(options.feeds),
            emit=exporter.emit,
        )
        summary = exporter.close()
    except (ReplayError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    except (OutputError, ExportError) as exc:
        print(f"export: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    code = _report("export", replayers, time.perf_counter() - started)
    print(f"export: {summary.rows} rows in {summary.files} files under {args.parquet}", file=sys.stderr)
    return code


RECORDING_COMMANDS: dict[str, Command] = {"record": cmd_record, "replay": cmd_replay, "export": cmd_export}
