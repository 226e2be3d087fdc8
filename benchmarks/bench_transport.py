"""Receiving alone: CPU per WebSocket frame of each transport behind SpiceFlow's
``spiceflow_core.runtime.transport.connect``, read the way the runtime's reader reads:
``receive_many()`` in a loop.

    python benchmarks/bench_transport.py [--frames N] [--paced-frames N] [--rate R]

A sender process (a loopback WebSocket server) writes the generated Binance frames; this
process receives every frame through the transport and nothing else. Two runs per
transport:

* flood: the sender writes as fast as the socket takes them (the most frames per read);
* paced: ``--rate`` frames/s in 1 ms batches, so each read finds a few frames and the
  loop's wake-ups are part of the cost, as on a live feed.

Transports: ``httpx-ws`` (the default: httpx handshake, wsproto decoded in the reading
task), ``websockets``, and for reference ``httpx_ws-session``: httpx-ws's own session
(a background task reads the socket and queues each event; drained with
``receive_nowait``), the path the default transport replaced.

Reported: CPU microseconds per frame (this process's CPU time / frames), frames per
second, frames per ``receive_many`` call. Writes benchmarks/results/transport.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_live import _ws_text_frame  # noqa: E402

TRANSPORTS = ("httpx-ws", "websockets", "httpx_ws-session")


def serve(stream_dir: Path, port_file: Path, rate: float) -> None:
    import anyio
    import streams

    from spiceflow_core.testkit import LoopbackServer

    _, frames, _ = streams.load(stream_dir)
    framed = [_ws_text_frame(f) for f in frames]

    async def ws(conn) -> None:
        transport = conn.transport
        if rate <= 0:
            for start in range(0, len(framed), 500):
                transport.write(b"".join(framed[start : start + 500]))
                await anyio.sleep(0)
        else:
            batch = max(1, round(rate / 1000))  # one batch per millisecond
            t0 = time.perf_counter()
            for i, start in enumerate(range(0, len(framed), batch)):
                transport.write(b"".join(framed[start : start + batch]))
                ahead = t0 + (i + 1) * batch / rate - time.perf_counter()
                await anyio.sleep(ahead if ahead > 0 else 0)
        await anyio.sleep(3600)

    async def main() -> None:
        async with LoopbackServer(ws=ws, ping_interval=None, max_size=2**22) as server:
            port_file.write_text(str(server.port))
            await anyio.sleep(600)

    anyio.run(main)


class _HttpxWsSession:
    """httpx-ws's session read as SpiceFlow read it before its own transport: one
    awaited ``receive()``, then whatever the background task has queued already."""

    def __init__(self, ws) -> None:
        self._ws = ws
        self._nowait = ws._receive_event.receive_nowait

    async def receive_many(self) -> list[str | bytes]:
        frames = [(await self._ws.receive()).data]
        while True:
            try:
                event = self._nowait()
            except Exception:  # WouldBlock: nothing more queued
                return frames
            frames.append(event.data)


@contextlib.asynccontextmanager
async def _open(url: str, transport: str) -> AsyncIterator:
    if transport == "httpx_ws-session":
        import httpx
        import httpx_ws

        async with (
            httpx.AsyncClient() as client,
            httpx_ws.aconnect_ws(url, client, keepalive_ping_interval_seconds=None, queue_size=4096) as ws,
        ):
            yield _HttpxWsSession(ws)
    else:
        from spiceflow_core.runtime.transport import connect

        async with connect(url, transport=transport, ping_interval=None) as ws:
            yield ws


def measure(port: int, n: int, transport: str) -> dict:
    import anyio

    async def main() -> dict:
        async with _open(f"ws://127.0.0.1:{port}", transport) as ws:
            got = await ws.receive_many()  # connected and streaming: start the clocks
            cpu0, wall0 = time.process_time(), time.perf_counter()
            frames = calls = size = 0
            while frames < n - len(got):
                batch = await ws.receive_many()
                calls += 1
                frames += len(batch)
                for frame in batch:
                    size += len(frame)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        return {
            "transport": transport,
            "frames": frames,
            "bytes": size,
            "cpu_us_per_frame": cpu / frames * 1e6,
            "frames_per_s": frames / wall,
            "frames_per_call": frames / calls,
        }

    return anyio.run(main)


def _run(d: Path, frames: int, transport: str, rate: float) -> dict:
    import streams

    if not (d / "meta.json").exists() or streams.load(d)[2]["frames"] != frames:
        streams.generate("binance", frames, d)
    port_file = d / ".port"
    port_file.unlink(missing_ok=True)
    sender = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(d), str(port_file), str(rate)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        return measure(int(port_file.read_text()), frames, transport)
    finally:
        sender.kill()
        sender.wait()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, default=100_000, help="frames of the flood run")
    ap.add_argument("--paced-frames", type=int, default=30_000, help="frames of the paced run (0: skip it)")
    ap.add_argument("--rate", type=float, default=10_000, help="frames/s of the paced run")
    ap.add_argument("--transport", action="append", choices=TRANSPORTS)
    ap.add_argument("--stream-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), float(args.serve[2]))
        return {}
    root = args.stream_dir or Path(tempfile.mkdtemp(prefix="spiceflow-transport-"))
    results: dict = {"benchmark": "transport", "runs": []}
    modes = [("flood", args.frames, 0.0)]
    if args.paced_frames:
        modes.append((f"paced {args.rate:,.0f}/s", args.paced_frames, args.rate))
    for mode, frames, rate in modes:
        d = root / f"binance-transport-{frames}"
        for transport in args.transport or TRANSPORTS:
            r = _run(d, frames, transport, rate)
            r["mode"] = mode
            results["runs"].append(r)
            print(
                f"{transport:17s} {mode:13s}: {r['cpu_us_per_frame']:6.1f} us CPU per frame, "
                f"{r['frames_per_s']:9,.0f} frames/s, {r['frames_per_call']:6.1f} frames per receive_many",
                flush=True,
            )
    out = HERE / "results" / "transport.json"
    out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
