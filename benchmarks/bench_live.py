"""Live path over loopback: a Binance-speaking sender process -> WebSocket ->
``spiceflow run`` (its own process: router, book, ZeroMQ publisher) -> a subscriber (this
process) decoding every book message.

    python benchmarks/bench_live.py [--transport httpx-ws|websockets] [--rates 1000,10000,...]

The sender replays the generated Binance stream (``streams.py``, 1,000 levels a side,
5 level changes per frame) at a fixed rate, answering SUBSCRIBE and the REST depth
snapshot like Binance. For each rate: frames sent, book messages delivered, receive->
deliver latency (``BookMessage.recv_ts_ns``, stamped by the WebSocket reader, to the
subscriber's decode time, same clock) p50/p99, the drain time (last book message after
the sender's last frame: a backlog waiting in the kernel or the WebSocket client's queue
is invisible to the latency, which starts at the reader's stamp) and whether the
pipeline kept up (the sender reached >= 95% of the rate, >= 99% delivered, p99 below
50 ms and drained within DRAIN_LIMIT_MS). Writes benchmarks/results/live.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

SPICEFLOW = str(Path(sys.executable).parent / "spiceflow")
#: the last book message must arrive within this long after the sender's last frame
DRAIN_LIMIT_MS = 100


# -- the sender (a subprocess) ---------------------------------------------------------
def serve(stream_dir: Path, rate: float, duration: float, port_file: Path) -> None:
    import anyio
    import streams

    from spiceflow_core.testkit import LoopbackServer, json_answer

    snapshot, frames, _meta = streams.load(stream_dir)
    info = (REPO / "plugins/spiceflow-binance/spiceflow_binance/fixtures/api_v3_exchangeInfo.json").read_bytes()
    total = min(len(frames), int(rate * duration))
    frames = frames[:total]
    done = anyio.Event()

    async def http(path: str, query: dict) -> object:
        if path.endswith("/depth"):
            return json_answer(snapshot)
        return json_answer(info)

    async def ws(conn) -> None:
        started = False
        async for text in conn:
            req = json.loads(text)
            await conn.send(json.dumps({"result": None, "id": req.get("id")}))
            if req.get("method") == "SUBSCRIBE" and not started:
                started = True
                break
        await anyio.sleep(0.5)  # the client fetches the snapshot meanwhile
        # The sender is not what is measured: every frame is framed once up front and
        # each tick writes the frames due in one transport write (valid unmasked server
        # text frames, RFC 6455 5.2), so the sender costs little next to the pipeline.
        # Safe here: nothing else is sent on this connection from now on (no pings).
        framed = [_ws_text_frame(f) for f in frames]
        transport = conn.transport
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - t0) * rate) + 1)
            if due > sent:
                transport.write(b"".join(framed[sent:due]))
                sent = due
            await anyio.sleep(0.0005)
        elapsed = time.perf_counter() - t0
        print(json.dumps({"sent": sent, "send_seconds": elapsed, "end_ns": time.time_ns()}), flush=True)
        done.set()
        await anyio.sleep(3600)

    async def main() -> None:
        async with LoopbackServer(ws=ws, http=http, ping_interval=None, max_size=2**22) as server:
            port_file.write_text(str(server.port))
            with anyio.move_on_after(duration + 60):
                await done.wait()
            await anyio.sleep(2)

    anyio.run(main)


def _ws_text_frame(text: str) -> bytes:
    """One unmasked, final WebSocket text frame (server -> client)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


# -- one measured run --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(stream_dir: Path, rate: float, duration: float, transport: str) -> dict:
    import zmq

    from spiceflow_core.broadcast import wire

    port_file = stream_dir / f".port-{os.getpid()}"
    port_file.unlink(missing_ok=True)
    sender = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(stream_dir), str(rate), str(duration), str(port_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            break
        time.sleep(0.05)
    port = int(port_file.read_text())
    zport = _free_port()
    address = f"tcp://127.0.0.1:{zport}"
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"book.")
    sub.connect(address)
    # the child keeps its own copy of the log file descriptor
    with open(stream_dir / "pipeline.log", "w") as pipeline_log:
        pipeline = subprocess.Popen(
            [
                SPICEFLOW,
                "run",
                "--venue",
                "binance",
                "--profile",
                "fixtures",
                "--instrument",
                "BTCUSDT",
                "--endpoint",
                f"ws://127.0.0.1:{port}",
                "--no-api",
                "--broadcast",
                address,
                "--transport",
                transport,
                "--duration",
                str(duration + 6),
                "--log-level",
                "ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=pipeline_log,
            text=True,
        )
    latencies: list[int] = []
    received = 0
    first = last = None
    deadline = time.monotonic() + duration + 12
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    decode = wire.decoder.decode
    while time.monotonic() < deadline:
        if not poller.poll(200):
            if pipeline.poll() is not None:
                break
            continue
        frames = sub.recv_multipart()
        now = time.time_ns()
        for body in frames[1:]:
            msg = decode(body)
            if msg.recv_ts_ns:
                latencies.append(now - msg.recv_ts_ns)
            received += 1
            first = first or now
            last = now
    pipeline.wait(30)
    try:
        out = sender.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        sender.kill()
        out = sender.communicate()[0]
    port_file.unlink(missing_ok=True)
    sub.close(0)
    ctx.term()
    sent_info = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"sent": 0, "send_seconds": 0}
    sent = sent_info["sent"]
    lat = sorted(latencies[len(latencies) // 10 :])  # skip the first 10% (connect, snapshot, warm-up)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1e3 if lat else None  # noqa: E731
    delivered_rate = received / ((last - first) / 1e9) if received > 1 and last != first else 0.0
    result = {
        "transport": transport,
        "target_rate": rate,
        "sent": sent,
        "send_rate": sent / sent_info["send_seconds"] if sent_info["send_seconds"] else 0.0,
        "delivered": received,
        "delivered_rate": delivered_rate,
        "p50_us": p(0.5),
        "p99_us": p(0.99),
        "max_us": lat[-1] / 1e3 if lat else None,
        # how long after the sender's last frame the last book message arrived: frames
        # waiting in the kernel / the WebSocket client's queue are not in the latency
        # above (it starts at the reader's stamp), so this is what shows a backlog
        "drain_ms": (last - sent_info["end_ns"]) / 1e6 if last and sent_info.get("end_ns") else None,
    }
    # the sender shares the 2 cores with the pipeline and the subscriber: a rate it could
    # not produce is not a rate the pipeline sustained
    result["sender_limited"] = result["send_rate"] < 0.95 * rate
    result["kept_up"] = bool(
        sent
        and not result["sender_limited"]
        and received >= 0.99 * sent
        and (result["p99_us"] or 1e9) < 50_000
        and result["drain_ms"] is not None
        and result["drain_ms"] < DRAIN_LIMIT_MS
    )
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--transport", action="append", choices=["httpx-ws", "websockets"])
    ap.add_argument("--rates", default="1000,10000,20000,30000,40000")
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--stream-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.serve:
        d, rate, duration, port_file = args.serve
        serve(Path(d), float(rate), float(duration), Path(port_file))
        return {}
    import tempfile

    import streams

    rates = [float(r) for r in args.rates.split(",")]
    root = args.stream_dir or Path(tempfile.mkdtemp(prefix="spiceflow-live-"))
    d = root / "binance-live"
    need = int(max(rates) * args.duration) + 10
    if not (d / "meta.json").exists() or streams.load(d)[2]["frames"] < need:
        streams.generate("binance", need, d)
    results = {"benchmark": "live", "duration_s": args.duration, "runs": []}
    for transport in args.transport or ["httpx-ws", "websockets"]:
        for rate in rates:
            r = measure(d, rate, args.duration, transport)
            results["runs"].append(r)
            print(
                f"{transport:10s} {rate:8,.0f}/s: sent {r['sent']:7d} at {r['send_rate']:8,.0f}/s, delivered {r['delivered']:7d} "
                f"({r['delivered_rate']:8,.0f}/s), latency p50 {r['p50_us'] or 0:8.0f} us p99 {r['p99_us'] or 0:9.0f} us "
                f"drain {max(0.0, r['drain_ms']) if r['drain_ms'] is not None else float('nan'):,.0f} ms "
                f"{'kept up' if r['kept_up'] else ('SENDER-LIMITED' if r['sender_limited'] else 'FELL BEHIND')}",
                flush=True,
            )
            if not r["kept_up"] and rate >= 10000:  # sender-limited or behind: higher rates will not do better
                break  # higher rates will not do better
    out = HERE / "results" / "live.json"
    out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
