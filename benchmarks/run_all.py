"""Every SpiceFlow benchmark in one command, user-path figures first, each beside
cryptofeed's where cryptofeed does the same thing: a table (metric, SpiceFlow, cryptofeed,
ratio, target, pass) printed and saved to benchmarks/results/latest.json.

    .venv/bin/python benchmarks/run_all.py            # ~8-10 minutes on 2 cores (./dev bench)
    .venv/bin/python benchmarks/run_all.py --quick    # smaller streams, fewer rates
    .venv/bin/python benchmarks/run_all.py --no-cryptofeed --no-live --no-core

Order:
1. user path -- ``spiceflow replay`` as a whole process vs cryptofeed's own playback of
   the same capture (``bench_replay_process.py``); the live path with the default
   configuration vs cryptofeed's Binance feed, same sender, same rates, both publishing
   on ZeroMQ to a subscriber process (``bench_live.py``);
2. inner loops -- decode + book (+ publish) per venue (``bench_replay.py``) beside
   cryptofeed's message handlers on the same frames (``cryptofeed_handlers.py``), the
   WebSocket transports receiving alone (``bench_transport.py``), memory
   (``bench_memory.py``), and the core's ``bench_book.py`` / ``bench_publish.py``.

cryptofeed (2.4.x) runs in the throwaway virtualenv benchmarks/.venv-cryptofeed, which
this script creates on first use (needs PyPI; never the project venv). Ratios: higher =
better for SpiceFlow (ours / theirs for rates, theirs / ours for times and CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
CF_VENV = HERE / ".venv-cryptofeed"
CF_REQUIREMENTS = ["cryptofeed>=2.4,<2.5", "pyzmq"]  # pyzmq: its ZeroMQ backend
PY = sys.executable
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

rows: list[dict] = []


def section(title: str) -> None:
    rows.append({"section": title})


def row(
    metric: str,
    ours,
    theirs=None,
    *,
    target=None,
    higher_better: bool = True,
    unit: str = "",
    note: str = "",
) -> None:
    """One line: our figure, cryptofeed's beside it (if it does the same), the ratio
    (higher = better for us) and, where a target is set, whether ours meets it."""
    ratio = None
    if ours and theirs:
        ratio = ours / theirs if higher_better else theirs / ours
    ok = None
    if ours is not None and target:
        ok = ours >= target if higher_better else ours <= target
    rows.append(
        {
            "metric": metric,
            "spiceflow": ours,
            "cryptofeed": theirs,
            "ratio": ratio,
            "unit": unit,
            "target": target,
            "higher_better": higher_better,
            "pass": ok,
            "note": note,
        }
    )


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) < 100:
        return f"{v:,.2f}"
    return f"{v:,.0f}"


def print_table() -> None:
    print()
    print(f"{'metric':66s} {'SpiceFlow':>11s} {'cryptofeed':>11s} {'ratio':>6s} {'target':>10s}  pass")
    print("-" * 114)
    for r in rows:
        if "section" in r:
            print(f"-- {r['section']}")
            continue
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        ok = {True: "yes", False: "NO", None: ""}[r["pass"]]
        tgt = (("<= " if not r["higher_better"] else "") + _fmt(r["target"])) if r["target"] else "-"
        line = (
            f"{r['metric']:66s} {_fmt(r['spiceflow']):>11s} {_fmt(r['cryptofeed']):>11s} {ratio:>6s} {tgt:>10s}  {ok}"
        )
        print(line + (f"  ({r['note']})" if r["note"] else ""))
    print("ratio: higher = better for SpiceFlow (rates: ours / theirs; times, CPU, latency: theirs / ours)")


def ensure_cryptofeed() -> Path | None:
    py = CF_VENV / "bin" / "python"
    probe = (
        "import cryptofeed, zmq, sys, importlib.metadata as m; sys.exit(not m.version('cryptofeed').startswith('2.4.'))"
    )
    if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0:
        return py
    print(f"creating benchmarks/.venv-cryptofeed (pip install {' '.join(CF_REQUIREMENTS)}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(CF_VENV)], check=True)
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", *CF_REQUIREMENTS], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"cryptofeed install failed: {proc.stderr[-500:]}", flush=True)
        return None
    return py


def cryptofeed_version(py: Path | None) -> str | None:
    if py is None:
        return None
    proc = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('cryptofeed'))"], capture_output=True
    )
    return proc.stdout.decode().strip() or None


def user_path_replay(args, stream_root: Path, cf_py: Path | None, report: dict) -> None:
    import bench_replay_process

    frames = 100_000 if args.quick else 200_000
    print(f"== replay as a user runs it: whole process, {frames:,}-frame sessions", flush=True)
    runs = 2 if args.quick else 3
    argv = ["--frames", str(frames), "--stream-dir", str(stream_root), "--runs", str(runs)]
    argv += ["--cf-python", str(cf_py) if cf_py is not None else "/nonexistent"]
    rp = bench_replay_process.main(argv)
    report["parts"]["replay_process"] = rp
    section(f"user path: replay, whole process, {frames:,} frames, best of {runs} (wall s; cryptofeed: its playback)")
    for venue, kinds in rp["venues"].items():
        figs = kinds["session"]["figures"]
        cf = figs.get("cryptofeed playback (capture)", {})
        for label in ("spiceflow replay (capture)", "spiceflow replay (.sfrec)"):
            ours = figs.get(label, {})
            what = "capture --jsonl /dev/null" if "capture" in label else ".sfrec --jsonl /dev/null"
            row(
                f"{venue}: spiceflow replay {what}, s",
                ours.get("best_s"),
                cf.get("best_s"),
                higher_better=False,
                unit="s",
            )
            row(f"{venue}:   same, process CPU s", ours.get("cpu_best_s"), cf.get("cpu_best_s"), higher_better=False)
        start = kinds["startup"]["figures"]
        row(
            f"{venue}:   start-up alone (1-frame session, capture), s",
            start.get("spiceflow replay (capture)", {}).get("best_s"),
            start.get("cryptofeed playback (capture)", {}).get("best_s"),
            higher_better=False,
        )
        fl = kinds["floor"]
        row(
            f"{venue}:   floor: start-up + exact decode + JSON lines, s",
            fl["floor_s"],
            fl["third_of_cryptofeed_s"] and fl["third_of_cryptofeed_s"] * 3,
            higher_better=False,
            note="its ratio is the most any replay writing these lines can reach",
        )


def user_path_live(args, stream_root: Path, cf_py: Path | None, report: dict) -> None:
    import bench_live

    rates = "10000,20000,40000" if args.quick else "10000,20000,40000,50000,60000,70000,80000,90000,100000"
    duration = "2" if args.quick else "3"
    print(
        f"== live, default configuration: sender -> WebSocket -> receiver -> ZeroMQ -> subscriber, {duration} s per rate",
        flush=True,
    )
    argv = ["--rates", rates, "--duration", duration, "--stream-dir", str(stream_root), "--receiver", "spiceflow"]
    if cf_py is not None:
        argv += ["--receiver", "cryptofeed", "--cf-python", str(cf_py)]
    live = bench_live.main(argv)
    report["parts"]["live"] = live
    ours = bench_live.summary(live["runs"], "spiceflow")
    theirs = bench_live.summary(live["runs"], "cryptofeed")
    section(f"user path: live, default configuration, rates tested {rates.replace(',', ', ')} frames/s")
    row(
        "live: highest rate kept up, frames/s",
        ours["highest_kept_up"],
        theirs["highest_kept_up"] if cf_py is not None else None,
        target=25_000,
    )
    a, b = ours["at"] or {}, theirs["at"] or {}

    def late(r: dict) -> str:
        return "" if not r or r.get("kept_up") else "behind"

    note = ", ".join(f"{who} {late(r)}" for who, r in (("SpiceFlow", a), ("cryptofeed", b)) if late(r))
    row(
        "live @ 10,000/s: receiver CPU per frame, us",
        a.get("cpu_us_per_frame"),
        b.get("cpu_us_per_frame"),
        higher_better=False,
        note=note,
    )
    row("live @ 10,000/s: receive -> deliver p50, us", a.get("p50_us"), b.get("p50_us"), higher_better=False, note=note)
    row(
        "live @ 10,000/s: receive -> deliver p99, us",
        a.get("p99_us"),
        b.get("p99_us"),
        higher_better=False,
        target=2000,
        note=note,
    )
    for rate in live["rates"]:
        if rate == 10_000:
            continue
        ra = next((r for r in live["runs"] if r["receiver"] == "spiceflow" and r["target_rate"] == rate), None)
        rb = next((r for r in live["runs"] if r["receiver"] == "cryptofeed" and r["target_rate"] == rate), None)
        if ra is None and rb is None:
            continue
        row(
            f"live @ {rate:,.0f}/s: receiver CPU per frame, us",
            ra and ra["cpu_us_per_frame"],
            rb and rb["cpu_us_per_frame"],
            higher_better=False,
            note=", ".join(
                f"{who} {bench_live.verdict(r)}"
                for who, r in (("SpiceFlow", ra), ("cryptofeed", rb))
                if r and not r["kept_up"]
            ),
        )


def inner_loops(args, stream_root: Path, cf_py: Path | None, report: dict) -> None:
    import bench_replay

    frames = 100_000 if args.quick else 200_000
    print(f"== inner loops: offline decode + book (+ publish), {frames:,} frames per venue, one core", flush=True)
    rep = bench_replay.main(
        ["--frames", str(frames), "--stream-dir", str(stream_root), "--repeat", "2" if args.quick else "3"]
    )
    report["parts"]["replay"] = rep
    cf: dict[str, dict] = {}
    if cf_py is not None:
        for venue, fixtures in (
            ("binance", "plugins/spiceflow-binance/spiceflow_binance/fixtures"),
            ("deribit", "plugins/spiceflow-deribit/spiceflow_deribit/fixtures"),
        ):
            proc = subprocess.run(
                [
                    str(cf_py),
                    str(HERE / "cryptofeed_handlers.py"),
                    str(stream_root / venue),
                    venue,
                    str(REPO / fixtures),
                    "2" if args.quick else "3",
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                print(f"cryptofeed {venue} failed: {proc.stderr[-800:]}", flush=True)
                continue
            cf[venue] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"cryptofeed {venue}: message_handler {cf[venue]['frames_per_s']:,.0f} frames/s", flush=True)
    report["parts"]["cryptofeed_handlers"] = cf
    section(f"inner loops: offline, {frames:,} frames per venue, one core, best of 3 (frames/s)")
    for venue, figs in rep["venues"].items():
        theirs = cf.get(venue, {}).get("frames_per_s")
        binance = venue == "binance"
        row(
            f"{venue}: decode + book (cryptofeed: message_handler, no-op callback)",
            figs["decode+book frames/s"],
            round(theirs) if theirs else None,
            target=bench_replay.TARGETS["decode+book"] if binance else None,
        )
        t2 = bench_replay.TARGETS["decode+book+publish"] if binance else None
        row(f"{venue}: + top-25 published every update", figs["decode+book+publish frames/s"], target=t2)
        row(
            f"{venue}: + publish, book.publish = top-changed",
            figs["decode+book+publish top-changed frames/s"],
            target=t2,
        )
        row(
            f"{venue}: + publish, book.publish = conflate (batches of {bench_replay.CONFLATE_BATCH})",
            figs[f"decode+book+publish conflate (batches of {bench_replay.CONFLATE_BATCH}) frames/s"],
        )
        row(f"{venue}: replay engine (Replayer.feed, in process)", figs["replay engine (Replayer.feed) frames/s"])
        row(f"{venue}: replay engine + JSON lines", figs["replay engine + JSON lines frames/s"])


def transport(args, stream_root: Path, report: dict) -> None:
    import bench_transport

    print("== receiving alone, per transport", flush=True)
    tr = bench_transport.main(
        [
            "--frames",
            "50000" if args.quick else "100000",
            "--paced-frames",
            "10000" if args.quick else "20000",
            "--stream-dir",
            str(stream_root),
        ]
    )
    report["parts"]["transport"] = tr
    section("inner loops: WebSocket transports receiving alone (CPU us per frame; cryptofeed uses websockets)")
    for r in tr["runs"]:
        row(
            f"transport {r['transport']} ({r['mode']}): receive only, CPU us/frame",
            r["cpu_us_per_frame"],
            higher_better=False,
        )


def memory_and_core(args, report: dict) -> None:
    print("== memory", flush=True)
    mem = json.loads(
        subprocess.run([PY, str(HERE / "bench_memory.py")], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    report["parts"]["memory"] = mem
    section("inner loops: memory and the core's own benchmarks")
    row("memory: resident bytes per book level", mem["bytes_per_level"], higher_better=False)
    row("memory: 1,000 instruments x 1,000 levels a side, MB", mem["rss_growth_bytes"] / 1e6, higher_better=False)
    if args.no_core:
        return
    print("== bench_book.py / bench_publish.py", flush=True)
    subprocess.run([PY, str(HERE / "bench_book.py"), "--quick"], check=False, cwd=REPO, stdout=subprocess.DEVNULL)
    subprocess.run([PY, str(HERE / "bench_publish.py"), "--quick"], check=False, cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        book = json.loads((RESULTS / "book.json").read_text())
        report["parts"]["book"] = book
        m = book["metrics"]
        row(
            "book: level updates/s (OrderBook.apply)",
            m["apply_level_updates_per_s"],
            target=m.get("apply_target", 1_000_000),
        )
        row("book: top-25 snapshot, us", m["top25_us"], higher_better=False)
    except (OSError, KeyError, ValueError) as exc:
        print(f"bench_book.py results unreadable: {exc}")
    try:
        pub = json.loads((RESULTS / "publish.json").read_text())
        report["parts"]["publish"] = pub
        best = max(pub["metrics"], key=lambda m: m["value"] if m.get("unit") == "msg/s" else 0)
        row(f"publish: {best['metric']}", best["value"], target=best.get("target"))
    except (OSError, KeyError, ValueError) as exc:
        print(f"bench_publish.py results unreadable: {exc}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-cryptofeed", action="store_true")
    ap.add_argument("--no-live", action="store_true")
    ap.add_argument("--no-core", action="store_true", help="skip bench_book.py and bench_publish.py")
    args = ap.parse_args()
    started = time.monotonic()
    RESULTS.mkdir(exist_ok=True)
    stream_root = Path(tempfile.mkdtemp(prefix="spiceflow-bench-"))
    cf_py = None if args.no_cryptofeed else ensure_cryptofeed()
    report: dict = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cryptofeed": cryptofeed_version(cf_py),
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "parts": {},
    }
    user_path_replay(args, stream_root, cf_py, report)
    if not args.no_live:
        user_path_live(args, stream_root, cf_py, report)
    inner_loops(args, stream_root, cf_py, report)
    if not args.no_live:
        transport(args, stream_root, report)
    memory_and_core(args, report)

    report["rows"] = rows
    report["seconds"] = round(time.monotonic() - started, 1)
    print_table()
    print(
        f"\n{report['seconds']:.0f} s; cryptofeed {report['cryptofeed'] or 'not run'}; "
        f"{report['cpus']} CPUs shared with whatever else runs; saved benchmarks/results/latest.json"
    )
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
