"""``spiceflow record`` and ``spiceflow replay``.

``record`` runs the normal pipeline (every ``run`` option applies) and writes every
received WebSocket frame, every sent frame and every REST answer of each venue to
``OUT/<venue>-<start>.sfrec`` (format: ``spiceflow_core.recording.sfrec``), from a writer
thread per venue so the event loop never waits for the disk.

``replay`` runs a recording -- or a ``shared/recorded`` text capture -- through the
venue's parser and the book engine without sockets (``spiceflow_core.recording.replay``) and
publishes the books on the ZeroMQ broadcast (default) or writes one JSON line per book
update (``--jsonl FILE`` or ``-`` for stdout).
"""

from __future__ import annotations

import sys
import time


def add_recording_commands(sub, common) -> None:
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
    p.add_argument(
        "source", help="a .sfrec file, a directory of them, or a capture prefix (e.g. ../shared/recorded/BINANCE)"
    )
    p.add_argument(
        "--venue", metavar="NAME", help="venue of the source (default: from the recording, or the capture prefix)"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        metavar="X",
        help="pace at X times the recorded speed (1 = real time; default: as fast as possible)",
    )
    p.add_argument(
        "--jsonl", metavar="FILE", help="write one JSON line per book update to FILE ('-' for stdout) instead of ZeroMQ"
    )
    p.add_argument("--depth", type=int, default=None, metavar="N", help="levels per side (default: book.depth, 25)")
    p.add_argument("--broadcast", metavar="ADDR", help="ZeroMQ PUB address (default: the config's)")
    p.add_argument(
        "--publish", choices=["every", "top-changed"], help="emit every update, or only when the top-N changed"
    )
    p.add_argument(
        "--linger",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="ZeroMQ: wait this long after binding before publishing (late joiners) and at exit",
    )


def cmd_record(args) -> int:
    from spiceflow_core.cli.main import cmd_run
    from spiceflow_core.recording.sfrec import recorder_factory

    factory = recorder_factory(args.out)
    return cmd_run(args, recorder_factory=factory)


def cmd_replay(args) -> int:
    import msgspec

    from spiceflow_core.cli.main import EXIT_FAILURE, EXIT_OK, UsageError, _registry, _settings
    from spiceflow_core.recording.replay import ReplayError, replay

    settings = _settings(args)
    registry = _registry()
    depth = args.depth if args.depth is not None else settings.book.depth
    if depth < 1:
        raise UsageError("--depth must be at least 1")
    if args.speed is not None and args.speed <= 0:
        raise UsageError("--speed must be positive")
    if args.venue and args.venue not in registry.venues:
        raise UsageError(f"unknown venue {args.venue!r} (installed: {', '.join(registry.names()) or 'none'})")
    publish = args.publish or settings.book.publish

    def get(name: str):
        if name not in registry.venues:
            raise UsageError(
                f"the source is from venue {name!r}, which is not installed (installed: {', '.join(registry.names())})"
            )
        return registry.get(name)

    out = None
    publisher = None
    if args.jsonl:
        encoder = msgspec.json.Encoder()
        # closed in the finally below (stdout only flushed), so no with-block
        out = sys.stdout.buffer if args.jsonl == "-" else open(args.jsonl, "wb")  # noqa: SIM115
        write = out.write

        def on_update(update) -> None:
            write(encoder.encode(update) + b"\n")
    else:
        from spiceflow_core.broadcast.publisher import Publisher
        from spiceflow_core.broadcast.wire import BookMessage

        publisher = Publisher(args.broadcast or settings.broadcast.address, hwm=settings.broadcast.hwm)
        print(f"replay: publishing on {publisher.address}", file=sys.stderr, flush=True)
        time.sleep(args.linger)  # let subscribers connect before the first message

        def on_update(update) -> None:
            publisher.publish(
                BookMessage(
                    venue=update.venue,
                    symbol=update.symbol,
                    instrument=update.instrument,
                    sequence=update.sequence,
                    bids=update.bids,
                    asks=update.asks,
                    exchange_ts_ms=update.exchange_ts_ms,
                    recv_ts_ns=update.recv_ts_ns,
                )
            )

    started = time.perf_counter()
    try:
        replayers = replay(
            args.source,
            get,
            venue=args.venue,
            capture_prefixes=registry.capture_prefixes(),
            depth=depth,
            speed=args.speed,
            publish=publish,
            on_update=on_update,
        )
    except ReplayError as exc:
        raise UsageError(str(exc)) from None
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if out is not None and out is not sys.stdout.buffer:
            out.close()
        elif out is not None:
            out.flush()
        if publisher is not None:
            time.sleep(args.linger)
            publisher.close()
    elapsed = time.perf_counter() - started
    code = EXIT_OK
    for name, rep in replayers.items():
        s = rep.stats
        synced = sum(1 for sy in rep.syncs.values() if sy.state.value == "synced")
        print(
            f"replay {name}: {s.frames} frames, {s.rest} REST answers, {s.snapshots} snapshots, {s.deltas} deltas, "
            f"{s.updates} book updates, {synced}/{len(rep.syncs)} books in sync, {s.gaps} gaps, "
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
        if not rep.stats.frames and not rep.stats.rest:
            code = EXIT_FAILURE
    return code


RECORDING_COMMANDS: dict = {"record": cmd_record, "replay": cmd_replay}
