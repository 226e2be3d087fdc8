"""Offline replay throughput: generated venue frames through SpiceFlow's decoder and book
engine on one core (no sockets), as ``spiceflow replay`` runs them.

    python benchmarks/bench_replay.py [--frames N] [--stream-dir DIR]

Three figures per venue, frames per second:
- ``decode+book``: ``session.parse(frame)`` (the plugin's msgspec decoder) +
  ``BookSync.on_delta`` (sequence policy, exact book update, crossed check);
- ``decode+book+publish``: plus, for every update, the top-25 ``BookMessage`` built,
  msgpack-encoded and sent on a ZeroMQ PUB socket (``Publisher.publish``; no subscriber
  attached, so this is the publisher's CPU cost, not delivery -- see bench_publish);
- ``...+publish top-changed``: the same with ``book.publish = "top-changed"``: a
  message only when the top-25 levels changed (most changes are near the top, so this
  only skips changes deeper than 25 levels).
- ``...+publish conflate``: ``book.publish = "conflate"`` as the runtime's book actor
  does it: every delta applied, then one message per drained batch. Offline there is no
  inbox, so the batch is fixed at ``CONFLATE_BATCH`` frames (a burst already waiting
  when the actor wakes up); the figure depends on that choice and is NOT the
  every-update figure the target is defined on.
Also the full replay engine (``spiceflow_core.recording.replay.Replayer``: the runtime's
router and order book actor, every wire message built), alone and with its JSON-lines
output, for reference. Writes benchmarks/results/replay.json.

Time is the measuring thread's CPU time (``time.thread_time``): on a machine shared with
other work, time slices given to other processes do not count against the loop (ZeroMQ's
I/O thread, which sends in parallel, does not count either, as on an idle 2-core machine).
``cryptofeed_handlers.py`` measures the same way.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import streams  # noqa: E402

from spiceflow_core.book import BookSync, BookUpdated, Synced  # noqa: E402
from spiceflow_core.broadcast.publisher import Publisher  # noqa: E402
from spiceflow_core.broadcast.wire import BookMessage  # noqa: E402
from spiceflow_core.model import BookDelta, BookSnapshot  # noqa: E402
from spiceflow_core.plugin.registry import discover  # noqa: E402

TARGETS = {"decode+book": 300_000, "decode+book+publish": 150_000}
#: frames per drained inbox batch modelled by the conflate figure
CONFLATE_BATCH = 10


def _setup(venue, snapshot_body: bytes, meta: dict):
    session = venue.new_session()
    symbol = meta["symbol"]
    sync = BookSync(venue.name, symbol, venue.sequence_policy(None))  # type: ignore[arg-type]
    if venue.resync == "rest":
        snap = venue.parse_snapshot(_snapshot_url(venue, meta), snapshot_body, 0)
    else:
        (snap,) = [e for e in session.parse(snapshot_body.decode(), 0) if isinstance(e, BookSnapshot)]
    assert snap is not None
    sync.on_snapshot(snap)
    return session, sync


def _snapshot_url(venue, meta) -> str:
    """The REST depth URL the stream's snapshot answers (Binance: the plugin's path)."""
    return f"http://bench{venue.spec.depth_path}?symbol={meta['symbol']}&limit=1000"


def run_decode_book(venue, snapshot_body, frames, meta) -> tuple[float, int]:
    session, sync = _setup(venue, snapshot_body, meta)
    parse = session.parse
    on_delta = sync.on_delta
    gc.collect()
    gc.disable()
    t0 = time.thread_time()
    updates = 0
    for frame in frames:
        for ev in parse(frame, 0):
            if isinstance(ev, BookDelta):
                updates += len(on_delta(ev))
    elapsed = time.thread_time() - t0
    gc.enable()
    assert sync.state.value == "synced" and sync.counters.gaps == 0, sync.counters
    return len(frames) / elapsed, updates


def run_decode_book_publish(
    venue, snapshot_body, frames, meta, mode: str = "every", depth: int = 25
) -> tuple[float, int]:
    session, sync = _setup(venue, snapshot_body, meta)
    parse = session.parse
    on_delta = sync.on_delta
    publisher = Publisher("tcp://127.0.0.1:*", hwm=1_000_000)
    publish = publisher.publish
    top = sync.book.top
    name, symbol = venue.name, meta["symbol"]
    last_key = None
    sent = 0
    gc.collect()
    gc.disable()
    t0 = time.thread_time()
    for frame in frames:
        for ev in parse(frame, 0):
            if not isinstance(ev, BookDelta):
                continue
            for out in on_delta(ev):
                if out.__class__ is BookUpdated or out.__class__ is Synced:
                    bids, asks = top(depth)
                    if mode == "top-changed":
                        key = (bids, asks)
                        if key == last_key:
                            continue
                        last_key = key
                    publish(
                        BookMessage(
                            venue=name,
                            symbol=symbol,
                            sequence=sync.last_sequence,
                            bids=bids,
                            asks=asks,
                            exchange_ts_ms=sync.last_exchange_ts_ms,
                            recv_ts_ns=ev.recv_ts_ns,
                        )
                    )
                    sent += 1
    elapsed = time.thread_time() - t0
    gc.enable()
    publisher.close(linger_ms=0)
    return len(frames) / elapsed, sent


def run_decode_book_conflate(
    venue, snapshot_body, frames, meta, batch: int = CONFLATE_BATCH, depth: int = 25
) -> tuple[float, int]:
    session, sync = _setup(venue, snapshot_body, meta)
    parse = session.parse
    on_delta = sync.on_delta
    publisher = Publisher("tcp://127.0.0.1:*", hwm=1_000_000)
    publish = publisher.publish
    top = sync.book.top
    name, symbol = venue.name, meta["symbol"]
    sent = 0
    gc.collect()
    gc.disable()
    t0 = time.thread_time()
    for start in range(0, len(frames), batch):
        dirty = False
        recv = 0
        for frame in frames[start : start + batch]:
            for ev in parse(frame, 0):
                if not isinstance(ev, BookDelta):
                    continue
                for out in on_delta(ev):
                    if out.__class__ is BookUpdated or out.__class__ is Synced:
                        dirty = True
                        recv = ev.recv_ts_ns
        if dirty:
            bids, asks = top(depth)
            publish(
                BookMessage(
                    venue=name,
                    symbol=symbol,
                    sequence=sync.last_sequence,
                    bids=bids,
                    asks=asks,
                    exchange_ts_ms=sync.last_exchange_ts_ms,
                    recv_ts_ns=recv,
                )
            )
            sent += 1
    elapsed = time.thread_time() - t0
    gc.enable()
    publisher.close(linger_ms=0)
    return len(frames) / elapsed, sent


def run_replayer(venue, snapshot_body, frames, meta, jsonl: bool = False) -> float:
    """``spiceflow replay``'s engine: the runtime's router and order book actor fed
    recorded items; every wire message handed to a callable that drops it, or
    (``jsonl``) written as a JSON line to /dev/null."""
    from spiceflow_core.recording.replay import JsonLines

    with open(os.devnull, "wb") as sink:
        rep = _synced_replayer(venue, snapshot_body, meta, JsonLines(sink).publish if jsonl else _drop)
        items = [(0, "recv", f, "", 1) for f in frames]
        gc.collect()
        gc.disable()
        t0 = time.thread_time()
        feed = rep.feed
        for item in items:
            feed(item)
        elapsed = time.thread_time() - t0
        gc.enable()
    stats = rep.finish()
    assert stats.gaps == 0 and stats.updates >= len(frames), stats
    return len(frames) / elapsed


def _drop(message) -> None:
    pass


def _synced_replayer(venue, snapshot_body, meta, emit):
    """A replay engine (``Replayer``, depth 25) handing its messages to ``emit``, its
    book synced on the stream's snapshot (a replay Item is ``(ts_ns, kind, data, url,
    conn)``)."""
    from spiceflow_core.recording.replay import Replayer

    rep = Replayer(venue, depth=25, emit=emit)
    if venue.resync == "rest":
        rep.feed((0, "rest", snapshot_body, _snapshot_url(venue, meta), 0))
    else:
        rep.feed((0, "recv", snapshot_body.decode(), "", 1))
    return rep


def replay_floor(venue, snapshot_body, frames, meta) -> dict:
    """What no replay of these frames with ``--jsonl`` can spend less on, in seconds of
    CPU for the whole stream: decoding every frame exactly once (msgspec's untyped
    decoder, every number kept as its JSON text: the cheapest exact decode there is) and
    writing the JSON lines the replay writes (``JsonLines.publish``, msgspec encoding
    into a reused buffer, to /dev/null), taken over the messages the replay engine
    emitted, collected first. Reading the files, routing, the book and building each
    top-25 message are left out: they cost more than nothing, so a real replay is slower
    than start-up + this floor."""
    import msgspec

    from spiceflow_core.recording.replay import JsonLines

    messages: list = []
    rep = _synced_replayer(venue, snapshot_body, meta, messages.append)
    for frame in frames:
        rep.feed((0, "recv", frame, "", 1))
    decode = msgspec.json.Decoder(float_hook=str.strip).decode
    gc.collect()
    gc.disable()
    t0 = time.thread_time()
    for frame in frames:
        decode(frame)
    decode_s = time.thread_time() - t0
    with open(os.devnull, "wb") as sink:
        publish = JsonLines(sink).publish
        t0 = time.thread_time()
        for message in messages:
            publish(message)
        jsonl_s = time.thread_time() - t0
    gc.enable()
    return {"decode_s": decode_s, "jsonl_s": jsonl_s, "lines": len(messages)}


def best_of(repeat: int, run, *args) -> float:
    """The best frames/s of ``repeat`` calls of ``run(*args)`` (which returns the rate,
    or a tuple that starts with it)."""
    rates = []
    for _ in range(repeat):
        result = run(*args)
        rates.append(result[0] if isinstance(result, tuple) else result)
    return max(rates)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument(
        "--stream-dir", type=Path, default=None, help="where the generated streams are (generated if missing)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = ap.parse_args(argv)
    from loguru import logger

    logger.remove()  # the engine's debug lines (no reference data in a generated stream) are not results
    logger.add(sys.stderr, level="WARNING")
    registry = discover()
    root = args.stream_dir or Path(tempfile.mkdtemp(prefix="spiceflow-bench-"))
    results: dict = {"benchmark": "replay", "python": platform.python_version(), "frames": args.frames, "venues": {}}
    for vname, plugin in (("binance", "binance"), ("deribit", "deribit")):
        d = root / vname
        if not (d / "meta.json").exists() or streams.load(d)[2]["frames"] != args.frames:
            streams.generate(vname, args.frames, d)
        body, frames, meta = streams.load(d)
        venue = registry.get(plugin)
        stream = (venue, body, frames, meta)
        db = best_of(args.repeat, run_decode_book, *stream)
        dbp = best_of(args.repeat, run_decode_book_publish, *stream)
        dbc = best_of(args.repeat, run_decode_book_publish, *stream, "top-changed")
        _, sent_changed = run_decode_book_publish(*stream, "top-changed")
        dbf = best_of(args.repeat, run_decode_book_conflate, *stream)
        rp = best_of(args.repeat, run_replayer, *stream)
        rpj = best_of(args.repeat, run_replayer, *stream, True)
        results["venues"][vname] = {
            "decode+book frames/s": round(db),
            "decode+book+publish frames/s": round(dbp),
            "decode+book+publish top-changed frames/s": round(dbc),
            "top-changed messages per frame": round(sent_changed / len(frames), 3),
            f"decode+book+publish conflate (batches of {CONFLATE_BATCH}) frames/s": round(dbf),
            "replay engine (Replayer.feed) frames/s": round(rp),
            "replay engine + JSON lines frames/s": round(rpj),
            "stream": str(d),
        }
        print(
            f"{vname:8s} decode+book {db:10,.0f}/s   +publish {dbp:10,.0f}/s   +publish(top-changed) {dbc:10,.0f}/s "
            f"({sent_changed / len(frames):.2f} msg/frame)   +publish(conflate/{CONFLATE_BATCH}) {dbf:10,.0f}/s   Replayer {rp:10,.0f}/s"
            f" (+JSON lines {rpj:10,.0f}/s)",
            flush=True,
        )
    out = HERE / "results" / "replay.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
