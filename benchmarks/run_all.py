"""Every SpiceFlow benchmark in one command: a table (metric, figure, target, ratio, pass)
printed and saved to benchmarks/results/latest.json.

    .venv/bin/python benchmarks/run_all.py            # ~5-8 minutes on 2 cores
    .venv/bin/python benchmarks/run_all.py --quick    # smaller streams, ~2-3 minutes
    .venv/bin/python benchmarks/run_all.py --no-cryptofeed --no-live

Parts (each also runnable alone, see benchmarks/README.md): bench_replay.py (offline
decode + book [+ publish] per venue), cryptofeed_handlers.py (the same frames through
cryptofeed's handlers, in the throwaway venv benchmarks/.venv-cryptofeed that this
script creates on first use -- never in the project venv), bench_live.py (loopback
sender -> WebSocket -> spiceflow run -> ZeroMQ -> subscriber), bench_memory.py, and the
core's bench_book.py and bench_publish.py.
"""

from __future__ import annotations

import argparse
import json
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
PY = sys.executable
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

rows: list[dict] = []


def row(metric: str, value, target=None, *, higher_better: bool = True, unit: str = "") -> None:
    ratio = None
    ok = None
    if value is not None and target:
        ratio = value / target if higher_better else target / value if value else None
        ok = ratio is not None and ratio >= 1.0
    rows.append({"metric": metric, "value": value, "unit": unit, "target": target, "ratio": ratio, "pass": ok})


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) < 100:
        return f"{v:,.2f}"
    return f"{v:,.0f}"


def print_table() -> None:
    print()
    print(f"{'metric':64s} {'figure':>14s} {'target':>12s} {'ratio':>7s}  pass")
    print("-" * 106)
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        ok = {True: "yes", False: "NO", None: ""}[r["pass"]]
        tgt = (
            ("<= " if r["target"] and r["metric"].endswith("(lower is better)") else "") + _fmt(r["target"])
            if r["target"]
            else "-"
        )
        print(f"{r['metric']:64s} {_fmt(r['value']):>14s} {tgt:>12s} {ratio:>7s}  {ok}")


def ensure_cryptofeed() -> Path | None:
    py = CF_VENV / "bin" / "python"
    if py.exists():
        ok = subprocess.run([str(py), "-c", "import cryptofeed"], capture_output=True).returncode == 0
        if ok:
            return py
    print("creating benchmarks/.venv-cryptofeed (pip install cryptofeed) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(CF_VENV)], check=True)
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "cryptofeed"], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"cryptofeed install failed: {proc.stderr[-500:]}", flush=True)
        return None
    return py


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-cryptofeed", action="store_true")
    ap.add_argument("--no-live", action="store_true")
    ap.add_argument("--no-core", action="store_true", help="skip bench_book.py and bench_publish.py")
    args = ap.parse_args()
    started = time.monotonic()
    RESULTS.mkdir(exist_ok=True)
    frames = 100_000 if args.quick else 200_000
    stream_root = Path(tempfile.mkdtemp(prefix="spiceflow-bench-"))
    report: dict = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "parts": {},
    }

    # 1. offline replay throughput -------------------------------------------------------
    import bench_replay

    print(
        f"== offline replay, {frames:,} generated frames per venue (1,000 levels a side, 5 changes per frame)",
        flush=True,
    )
    rep = bench_replay.main(
        ["--frames", str(frames), "--stream-dir", str(stream_root), "--repeat", "2" if args.quick else "3"]
    )
    report["parts"]["replay"] = rep
    for venue, figs in rep["venues"].items():
        t1 = bench_replay.TARGETS["decode+book"] if venue == "binance" else None
        t2 = bench_replay.TARGETS["decode+book+publish"] if venue == "binance" else None
        row(f"{venue}: decode+book frames/s (1 core)", figs["decode+book frames/s"], t1)
        row(f"{venue}: decode+book+publish top-25 frames/s", figs["decode+book+publish frames/s"], t2)
        row(
            f"{venue}: ...+publish, book.publish=top-changed frames/s",
            figs["decode+book+publish top-changed frames/s"],
            t2,
        )
        row(
            f"{venue}: ...+publish, book.publish=conflate (batches of {bench_replay.CONFLATE_BATCH}) frames/s",
            figs[f"decode+book+publish conflate (batches of {bench_replay.CONFLATE_BATCH}) frames/s"],
        )
        row(f"{venue}: replay engine (Replayer.feed) frames/s", figs["replay engine (Replayer.feed) frames/s"])

    # 2. cryptofeed side by side ---------------------------------------------------------------
    if not args.no_cryptofeed:
        py = ensure_cryptofeed()
        report["parts"]["cryptofeed"] = {}
        for venue, fixtures in (
            ("binance", "plugins/spiceflow-binance/spiceflow_binance/fixtures"),
            ("deribit", "plugins/spiceflow-deribit/spiceflow_deribit/fixtures"),
        ):
            if py is None:
                row(f"{venue}: cryptofeed handler frames/s", None)
                continue
            proc = subprocess.run(
                [
                    str(py),
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
                row(f"{venue}: cryptofeed handler frames/s", None)
                continue
            cf = json.loads(proc.stdout.strip().splitlines()[-1])
            report["parts"]["cryptofeed"][venue] = cf
            ours = rep["venues"][venue]["decode+book frames/s"]
            print(
                f"cryptofeed {venue}: {cf['frames_per_s']:,.0f} frames/s (SpiceFlow {ours:,.0f}/s, {ours / cf['frames_per_s']:.2f}x)",
                flush=True,
            )
            row(f"{venue}: cryptofeed message_handler frames/s", round(cf["frames_per_s"]))
            row(f"{venue}: SpiceFlow / cryptofeed (decode+book), x", ours / cf["frames_per_s"], 3.0)

    # 3. live path -----------------------------------------------------------------------------
    if not args.no_live:
        import bench_live

        print("== live loopback path (sender -> WebSocket -> spiceflow run -> ZeroMQ -> subscriber)", flush=True)
        rates = "1000,10000,25000" if args.quick else "1000,5000,10000,25000,40000"
        live = bench_live.main(
            ["--rates", rates, "--duration", "3" if args.quick else "4", "--stream-dir", str(stream_root)]
        )
        report["parts"]["live"] = live
        for transport in ("httpx-ws", "websockets"):
            runs = [r for r in live["runs"] if r["transport"] == transport]
            kept = [r["target_rate"] for r in runs if r["kept_up"]]
            row(f"live {transport}: highest sustained frames/s (tested rates)", max(kept) if kept else 0, 25_000)
            for rate in (1000, 10000):
                r = next((r for r in runs if r["target_rate"] == rate), None)
                if r is None:
                    continue
                behind = "" if r["kept_up"] else f", FELL BEHIND (drained {r['drain_ms']:,.0f} ms late)"
                row(f"live {transport}: recv->deliver p50 us @ {rate:,}/s{behind}", r["p50_us"])
                row(
                    f"live {transport}: recv->deliver p99 us @ {rate:,}/s{behind} (lower is better)",
                    r["p99_us"],
                    2000 if rate == 10000 else None,
                    higher_better=False,
                )
                if behind and rows[-1]["pass"]:
                    rows[-1]["pass"] = False  # a backlog is latency the reader's stamp does not show

        import bench_transport

        print("== receiving alone, per transport (what caps the live path)", flush=True)
        tr = bench_transport.main(["--frames", "50000" if args.quick else "100000", "--stream-dir", str(stream_root)])
        report["parts"]["transport"] = tr
        for r in tr["runs"]:
            row(
                f"transport {r['transport']} ({r['mode']}): receive only, CPU us per frame (lower is better)",
                r["cpu_us_per_frame"],
                higher_better=False,
            )

    # 4. memory -----------------------------------------------------------------------------------
    print("== memory", flush=True)
    mem = json.loads(
        subprocess.run([PY, str(HERE / "bench_memory.py")], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    report["parts"]["memory"] = mem
    row("memory: resident bytes per book level", mem["bytes_per_level"])
    row("memory: 1,000 instruments x 1,000 levels a side, MB", mem["rss_growth_bytes"] / 1e6)

    # 5. the core's own benchmarks ------------------------------------------------------------------
    if not args.no_core:
        print("== bench_book.py / bench_publish.py", flush=True)
        quick = ["--quick"] if args.quick else []
        subprocess.run(
            [PY, str(HERE / "bench_book.py"), *quick],
            check=False,
            cwd=REPO,
            stdout=subprocess.DEVNULL if not args.quick else None,
        )
        subprocess.run(
            [PY, str(HERE / "bench_publish.py"), "--quick"],
            check=False,
            cwd=REPO,
            stdout=subprocess.DEVNULL if not args.quick else None,
        )
        try:
            book = json.loads((RESULTS / "book.json").read_text())
            report["parts"]["book"] = book
            m = book["metrics"]
            row(
                "book: level updates/s (OrderBook.apply)",
                m["apply_level_updates_per_s"],
                m.get("apply_target", 1_000_000),
            )
            row("book: top-25 snapshot us", m["top25_us"])
            row("book: memory per level, bytes (tracemalloc, with strings)", m["memory_per_level_bytes_with_strings"])
        except (OSError, KeyError, ValueError) as exc:
            print(f"bench_book.py results unreadable: {exc}")
        try:
            pub = json.loads((RESULTS / "publish.json").read_text())
            report["parts"]["publish"] = pub
            best = max(pub["metrics"], key=lambda m: m["value"] if m.get("unit") == "msg/s" else 0)
            row(f"publish: {best['metric']}", best["value"], best.get("target"))
        except (OSError, KeyError, ValueError) as exc:
            print(f"bench_publish.py results unreadable: {exc}")

    report["rows"] = rows
    report["seconds"] = round(time.monotonic() - started, 1)
    print_table()
    print(f"\n{report['seconds']:.0f} s; saved benchmarks/results/latest.json")
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
