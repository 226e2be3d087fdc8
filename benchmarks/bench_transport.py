"""Receiving alone: CPU per WebSocket frame of each transport behind SpiceFlow's
``spiceflow_core.runtime.transport.connect`` (what the WebSocket actor reads through).

    python benchmarks/bench_transport.py [--frames N]

A sender process (a loopback WebSocket server) writes the generated Binance frames as
fast as the socket takes them; this process receives every frame through the transport
and nothing else. Reported per transport: CPU microseconds per frame (this process's
CPU time / frames) and frames per second. It isolates the library's own cost, which is
what caps the live path with httpx-ws (see bench_live.py). Writes
benchmarks/results/transport.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_live import _ws_text_frame  # noqa: E402


def serve(stream_dir: Path, port_file: Path) -> None:
    import anyio
    import streams

    from spiceflow_core.testkit import LoopbackServer

    _, frames, _ = streams.load(stream_dir)
    framed = [_ws_text_frame(f) for f in frames]

    async def ws(conn) -> None:
        transport = conn.transport
        for start in range(0, len(framed), 500):
            transport.write(b"".join(framed[start : start + 500]))
            await anyio.sleep(0)
        await anyio.sleep(3600)

    async def main() -> None:
        async with LoopbackServer(ws=ws, ping_interval=None, max_size=2**22) as server:
            port_file.write_text(str(server.port))
            await anyio.sleep(600)

    anyio.run(main)


def measure(port: int, n: int, transport: str) -> dict:
    import anyio

    from spiceflow_core.runtime.transport import connect

    async def main() -> dict:
        async with connect(f"ws://127.0.0.1:{port}", transport=transport, ping_interval=None) as ws:
            first = await ws.receive()  # connected and streaming: start the clocks
            cpu0, wall0 = time.process_time(), time.perf_counter()
            size = len(first)
            for _ in range(n - 1):
                size += len(await ws.receive())
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        return {
            "transport": transport,
            "frames": n - 1,
            "bytes": size,
            "cpu_us_per_frame": cpu / (n - 1) * 1e6,
            "frames_per_s": (n - 1) / wall,
        }

    return anyio.run(main)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--stream-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]))
        return {}
    import streams

    root = args.stream_dir or Path(tempfile.mkdtemp(prefix="spiceflow-transport-"))
    d = root / "binance-transport"
    if not (d / "meta.json").exists() or streams.load(d)[2]["frames"] != args.frames:
        streams.generate("binance", args.frames, d)
    results: dict = {"benchmark": "transport", "runs": []}
    for transport in ("httpx-ws", "websockets"):
        port_file = d / ".port"
        port_file.unlink(missing_ok=True)
        sender = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(d), str(port_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                if port_file.exists() and port_file.read_text():
                    break
                time.sleep(0.05)
            r = measure(int(port_file.read_text()), args.frames, transport)
        finally:
            sender.kill()
            sender.wait()
        results["runs"].append(r)
        print(
            f"{transport:10s} receive only: {r['cpu_us_per_frame']:6.1f} us CPU per frame, {r['frames_per_s']:9,.0f} frames/s",
            flush=True,
        )
    out = HERE / "results" / "transport.json"
    out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
