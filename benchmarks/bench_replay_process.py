"""Replay as a user runs it, whole process: ``spiceflow replay`` vs cryptofeed's own
playback of the same session, wall time from process start to exit.

    python benchmarks/bench_replay_process.py [--frames 200000] [--runs 3] [--session-dir DIR]

Per venue (Binance: the depth stream of ``streams.py``; Deribit: its ``book.*.raw``
notifications), one instrument, a 1,000-level book, 2-5 level changes per frame, the
session is written in the text capture format of ``shared/recorded`` (``NAME.0``:
reference data + configuration line; ``NAME.http.0.0``: the REST depth snapshot
(Binance); ``NAME.ws.1.0``: the WebSocket session) and as a ``.sfrec`` recording with the
same records (``VENUE-session.sfrec``). Timed, each the best of ``--runs`` (rounds that
run every command once in turn: see ``time_runs``), after one untimed run whose output is
checked (every frame applied, no gap):

* ``spiceflow replay NAME --venue V --jsonl /dev/null`` (the capture);
* ``spiceflow replay NAME.sfrec --jsonl /dev/null`` (the recording);
* ``cryptofeed_playback.py``: cryptofeed's ``playback`` of the capture in its own
  virtualenv (reads the files, runs its handler, a callback that only counts).

Both sides pay interpreter start, imports and reading the files; the same commands on
a one-frame session tell what starting costs each side (``startup``). SpiceFlow also writes
one JSON line per book update (top 25 levels a side) to /dev/null; cryptofeed's callback
does nothing. Ratio = cryptofeed's time / SpiceFlow's (higher = faster for SpiceFlow), on wall time
and on the process's CPU time.
Writes benchmarks/results/replay_process.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import streams  # noqa: E402

SPICEFLOW = str(Path(sys.executable).parent / "spiceflow")
CF_PYTHON = HERE / ".venv-cryptofeed" / "bin" / "python"
BINANCE_FIXTURES = REPO / "plugins/spiceflow-binance/spiceflow_binance/fixtures"
DERIBIT_FIXTURES = REPO / "plugins/spiceflow-deribit/spiceflow_deribit/fixtures"
#: capture names: also the prefixes ``spiceflow replay`` maps to venues
NAMES = {"binance": "BINANCE", "deribit": "DERIBIT"}
T0 = 1_700_000_000.0


def _one_line(path: Path) -> str:
    return json.dumps(json.loads(path.read_text()), separators=(",", ":"))


def write_session(venue: str, stream_dir: Path, out: Path) -> dict:
    """The stream of ``stream_dir`` as a capture ``out/NAME.*`` and a recording
    ``out/NAME.sfrec``; returns what the checks need."""
    from spiceflow_core.recording.sfrec import TEXT, Record, RecordingWriter

    out.mkdir(parents=True, exist_ok=True)
    name = NAMES[venue]
    snapshot = (stream_dir / "snapshot.json").read_text()
    meta = json.loads((stream_dir / "meta.json").read_text())
    frames_path = stream_dir / "frames.txt"
    rest: list[tuple[float, str, str]] = []  # (ts, url, body) in order
    if venue == "binance":
        ws_url = "wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms"
        rest.append(
            (
                T0,
                "https://api.binance.com/api/v3/exchangeInfo",
                _one_line(BINANCE_FIXTURES / "api_v3_exchangeInfo.json"),
            )
        )
        config = {"l2_book": ["BTC-USDT"]}
        depth = ("https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000", snapshot)
        sends: list[str] = []
        first_frames = []
    else:
        ws_url = "wss://www.deribit.com/ws/api/v2"
        # in the order cryptofeed asks for them (its playback answers in file order)
        for cur in ("BTC", "ETH", "USDC", "SOL"):
            rest.append(
                (
                    T0,
                    f"https://www.deribit.com/api/v2/public/get_instruments?currency={cur}&expired=false",
                    _one_line(DERIBIT_FIXTURES / f"get_instruments.{cur}.json"),
                )
            )
        config = {"l2_book": ["BTC-USD-PERP"]}
        depth = None
        channel = f"book.{meta['symbol']}.raw"
        sends = [
            json.dumps({"jsonrpc": "2.0", "id": 101, "method": "public/subscribe", "params": {"channels": [channel]}})
        ]
        first_frames = [json.dumps({"jsonrpc": "2.0", "id": 101, "result": [channel]}), snapshot]

    files = {
        "0": out / f"{name}.0",
        "ws": out / f"{name}.ws.1.0",
        "http": out / f"{name}.http.0.0",
        # not NAME.*: that glob is the capture's
        "sfrec": out / f"{venue}-session.sfrec",
    }
    for stale in ("http", "sfrec"):  # a recording is appended to: start afresh
        files[stale].unlink(missing_ok=True)
    with open(files["0"], "w") as fh:
        for ts, url, body in rest:
            fh.write(f"{url} -> {ts:.6f}: {body}\n")
        fh.write(f"configuration: {json.dumps(config)}\n")
    with RecordingWriter(files["sfrec"]) as rec:
        rec.write(Record("meta", int(T0 * 1e9), data=json.dumps({"venue": venue, "format": 1}).encode()))
        for ts, url, body in rest:
            rec.write(Record("rest", int(ts * 1e9), 0, 200, url, body.encode()))
        if depth is not None:
            with open(files["http"], "w") as fh:
                fh.write(f"{depth[0]} -> {T0 + 0.0005:.6f}: {depth[1]}\n")
            rec.write(Record("rest", int((T0 + 0.0005) * 1e9), 0, 200, depth[0], depth[1].encode()))
        connect_ts = T0 + 0.0006
        rec.write(Record("open", int(connect_ts * 1e9), 1, 0, ws_url))
        n = 0
        with open(files["ws"], "w") as fh, open(frames_path) as frames:
            fh.write(f"{ws_url} <-> {connect_ts:.6f}\n")
            for body in sends:
                fh.write(f"{ws_url} <- {connect_ts:.6f}: {body}\n")
                rec.write(Record("sent", int(connect_ts * 1e9), 1, TEXT, "", body.encode()))
            for body in [*first_frames, *(line.rstrip("\n") for line in frames)]:
                # distinct receive times (10,000 frames/s): one frame per recorded read
                ts_ns = int(T0 * 1e9) + 1_000_000 + n * 100_000
                fh.write(f"{ts_ns / 1e9:.6f}: {body}\n")
                rec.write(Record("recv", ts_ns, 1, TEXT, "", body.encode()))
                n += 1
    return {"name": name, "frames": meta["frames"], "files": {k: str(v) for k, v in files.items() if v.exists()}}


def commands(venue: str, session: dict, cf_python: Path | None) -> dict[str, list[str]]:
    name = session["name"]
    out = {
        "spiceflow replay (capture)": [SPICEFLOW, "replay", name, "--venue", venue, "--jsonl", "/dev/null"],
        "spiceflow replay (.sfrec)": [SPICEFLOW, "replay", f"{venue}-session.sfrec", "--jsonl", "/dev/null"],
    }
    if cf_python is not None:
        out["cryptofeed playback (capture)"] = [str(cf_python), str(HERE / "cryptofeed_playback.py"), venue, name]
    return out


def check(label: str, argv: list[str], cwd: Path, frames: int) -> str | None:
    """Run once untimed; None when the output shows every frame applied, else why not."""
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {proc.stderr[-600:]}"
    if label.startswith("spiceflow"):
        line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("replay ")), "")
        # "replay binance: N frames, R REST answers, S snapshots, D deltas, U book updates, 1/1 books in sync, 0 gaps"
        if f"{frames} deltas" not in line or "1/1 books in sync" not in line or " 0 gaps" not in line:
            return f"unexpected summary: {line or proc.stderr[-600:]}"
    else:
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
        updates = stats["callbacks"].get("l2_book", 0)
        if updates < frames:  # the snapshot is an update too
            return f"cryptofeed applied {updates} of {frames} frames: {stats}"
    return None


def time_runs(cmds: dict[str, list[str]], cwd: Path, runs: int) -> dict[str, dict]:
    """label -> {"best_s", "median_s", "cpu_best_s"}: ``runs`` rounds, each running every
    command once in turn, so a burst of load from elsewhere on a shared machine hits all
    sides alike rather than every run of one command (what timing each command's runs
    back to back, as hyperfine does, risks). Wall time from start to exit; CPU = the
    child's user + system time (``os.wait4``)."""
    walls: dict[str, list[float]] = {label: [] for label in cmds}
    cpus: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(runs):
        for label, cmd in cmds.items():
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            walls[label].append(time.perf_counter() - t0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise RuntimeError(f"{label}: exit {proc.returncode}")
            cpus[label].append(usage.ru_utime + usage.ru_stime)
    return {
        label: {
            "best_s": min(walls[label]),
            "median_s": statistics.median(walls[label]),
            "cpu_best_s": min(cpus[label]),
            "runs_s": walls[label],
        }
        for label in cmds
    }


def run_session(venue: str, stream_dir: Path, cwd: Path, frames: int, cf_python, runs: int, kind: str) -> dict:
    session = write_session(venue, stream_dir, cwd)
    cmds = commands(venue, session, cf_python)
    failed = {}
    for label, cmd in list(cmds.items()):
        problem = check(label, cmd, cwd, frames)
        if problem:
            print(f"{venue}: {label}: {problem}", flush=True)
            failed[label] = problem
            del cmds[label]
    timed = time_runs(cmds, cwd, runs) if cmds else {}
    theirs = timed.get("cryptofeed playback (capture)", {}).get("best_s")
    figures = {}
    for label, t in timed.items():
        t["frames_per_s"] = frames / t["best_s"]
        if theirs and label.startswith("spiceflow"):
            t["ratio_vs_cryptofeed"] = theirs / t["best_s"]
            t["cpu_ratio_vs_cryptofeed"] = timed["cryptofeed playback (capture)"]["cpu_best_s"] / t["cpu_best_s"]
        figures[label] = t
        ratio = (
            f"  {t['ratio_vs_cryptofeed']:.2f}x cryptofeed (CPU {t['cpu_ratio_vs_cryptofeed']:.2f}x)"
            if "ratio_vs_cryptofeed" in t
            else ""
        )
        rate = f"({t['frames_per_s']:9,.0f} frames/s)" if kind == "session" else "(1-frame session: start-up)"
        print(
            f"{venue:8s} {label:30s} best {t['best_s']:6.2f} s, CPU {t['cpu_best_s']:6.2f} s {rate}{ratio}",
            flush=True,
        )
    return {"session": str(cwd), "frames": frames, "figures": figures, "failed": failed}


def floor(venue: str, stream_dir: Path, timed: dict) -> dict:
    """Start-up (the one-frame session) + ``bench_replay.replay_floor``: the least any
    replay of this session with ``--jsonl`` can take, set beside a third of cryptofeed's
    time (what a 3x target leaves)."""
    import bench_replay
    from loguru import logger

    from spiceflow_core.plugin.registry import discover

    logger.remove()  # the engine's debug lines are not results
    body, frames, meta = streams.load(stream_dir)
    parts = bench_replay.replay_floor(discover().get(venue), body, frames, meta)
    startup = timed["startup"]["figures"].get("spiceflow replay (capture)", {}).get("best_s")
    theirs = timed["session"]["figures"].get("cryptofeed playback (capture)", {}).get("best_s")
    out = {**parts, "startup_s": startup, "floor_s": None, "third_of_cryptofeed_s": theirs / 3 if theirs else None}
    if startup is not None:
        out["floor_s"] = startup + parts["decode_s"] + parts["jsonl_s"]
    per = 1e6 / len(frames)
    print(
        f"{venue:8s} floor: start-up {startup or 0:.2f} s + exact decode {parts['decode_s']:.2f} s "
        f"({parts['decode_s'] * per:.2f} us/frame) + JSON lines {parts['jsonl_s']:.2f} s "
        f"({parts['jsonl_s'] * per:.2f} us/frame) = {out['floor_s'] or 0:.2f} s"
        + (f"; a third of cryptofeed's time: {out['third_of_cryptofeed_s']:.2f} s" if theirs else ""),
        flush=True,
    )
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3, help="best of N")
    ap.add_argument("--stream-dir", type=Path, default=None, help="where the generated streams are (made if missing)")
    ap.add_argument("--session-dir", type=Path, default=None, help="where the sessions are written")
    ap.add_argument("--cf-python", type=Path, default=CF_PYTHON)
    ap.add_argument("--venue", action="append", choices=sorted(NAMES))
    args = ap.parse_args(argv)
    root = args.stream_dir or Path(tempfile.mkdtemp(prefix="spiceflow-bench-"))
    # a fixed name: cryptofeed's playback looks for "ws" / "http" in the file names
    sessions = args.session_dir or Path(tempfile.gettempdir()) / "spiceflow-replay-sessions"
    cf_python = args.cf_python if args.cf_python.exists() else None
    if cf_python is None:
        print(f"cryptofeed: {args.cf_python} not found (run_all.py creates it); SpiceFlow only", flush=True)
    results: dict = {"benchmark": "replay_process", "frames": args.frames, "runs": args.runs, "venues": {}}
    for venue in args.venue or ["binance", "deribit"]:
        results["venues"][venue] = {}
        # the session, and a one-frame session: what starting the process costs each side
        for kind, frames in (("session", args.frames), ("startup", 1)):
            d = root / (venue if kind == "session" else f"{venue}-1")
            if not (d / "meta.json").exists() or streams.load(d)[2]["frames"] != frames:
                streams.generate(venue, frames, d)
            cwd = sessions / (venue if kind == "session" else f"{venue}-1")
            results["venues"][venue][kind] = run_session(venue, d, cwd, frames, cf_python, args.runs, kind)
        results["venues"][venue]["floor"] = floor(venue, root / venue, results["venues"][venue])
    out = HERE / "results" / "replay_process.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
