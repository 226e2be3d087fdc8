"""Live path over loopback, side by side: one Binance-speaking sender process, the same
frames at the same fixed rates, to each receiver in turn:

* ``spiceflow``: ``spiceflow run`` as installed (its own process, default configuration:
  default transport, reference data and depth snapshot over REST from the sender; only
  the control API is off, so no port is taken) publishing on ZeroMQ;
* ``cryptofeed``: cryptofeed 2.4's Binance feed in its own virtualenv
  (``cryptofeed_live.py``: a stock ``FeedHandler`` with its ``BookZMQ`` backend, its
  endpoints pointed at the sender) publishing on ZeroMQ.

    python benchmarks/bench_live.py [--receiver spiceflow|cryptofeed] [--rates 10000,20000,...]

This process is the ZeroMQ subscriber of both: from every message (SpiceFlow's msgpack
``BookMessage``, cryptofeed's JSON) it decodes the fields the figures need -- the receive
stamp, SpiceFlow's sequence, whether cryptofeed's is an update -- and skips the levels, so
that it stays light next to the receiver (its own CPU per update is reported too). The sender replays the generated Binance
stream (``streams.py``: 1,000 levels a side, 2-5 level changes per frame) at a fixed rate,
answering ``exchangeInfo``, the REST depth snapshot, and either a SUBSCRIBE message
(SpiceFlow) or streams named in the URL (cryptofeed) like Binance.

For each receiver and rate: frames sent; book updates delivered; receiver CPU per frame
(the receiver process's user + system CPU time from the sender's first frame to the end
of the run, divided by the updates it delivered); receive -> deliver latency (the
receiver's own receive stamp -- SpiceFlow's ``recv_ts_ns`` from the WebSocket reader,
cryptofeed's ``receipt_timestamp`` -- to this process's decode time, same clock; the
first 10% skipped) p50/p99; the drain time (the last update's arrival after the sender's
last frame: a backlog queued in the kernel or in a WebSocket client before the receive
stamp is invisible to the latency, so this is what shows it); and whether the receiver
kept up: the sender reached >= 95% of the rate, >= 99% of the frames were delivered as
updates, p99 below 50 ms and the backlog drained within DRAIN_LIMIT_MS. The same
criterion for both; a rate a receiver missed is run once more (``--retries``: on a shared
machine a burst of other work can sink one run) and the second try is reported, the
first kept in ``earlier_tries``; the first rate missed twice ends that receiver's series.
Writes benchmarks/results/live.json.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec

from spiceflow_core.ports import free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

SPICEFLOW = str(Path(sys.executable).parent / "spiceflow")
RECEIVERS = ("spiceflow", "cryptofeed")
#: the last update must arrive within this long after the sender's last frame
DRAIN_LIMIT_MS = 100
#: after the sender's last frame, the run ends when every frame is delivered, after this
#: long without a message, or at the latest after BEHIND_LIMIT_S (a receiver that far
#: behind has failed the rate; its CPU per frame is taken over what it delivered)
QUIET_S = 1.0
BEHIND_LIMIT_S = 8.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
        if "streams=" not in conn.request.path:
            # subscribed by message (SpiceFlow); a client naming its streams in the URL
            # (cryptofeed) is subscribed by connecting
            async for text in conn:
                req = json.loads(text)
                await conn.send(json.dumps({"result": None, "id": req.get("id")}))
                if req.get("method") == "SUBSCRIBE":
                    break
        await anyio.sleep(0.5)  # a SpiceFlow client fetches the snapshot meanwhile
        # The sender is not what is measured: every frame is framed once up front and
        # each tick writes the frames due in one transport write (valid unmasked server
        # text frames, RFC 6455 5.2), so the sender costs little next to the receiver.
        # Control frames the library writes meanwhile (pongs) land between whole writes.
        framed = [_ws_text_frame(f) for f in frames]
        transport = conn.transport
        print(json.dumps({"start_ns": time.time_ns()}), flush=True)
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
            await anyio.sleep(BEHIND_LIMIT_S + 5)

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
class _SpiceFlowStamp(msgspec.Struct):
    """What the subscriber reads of a SpiceFlow ``BookMessage`` (a msgpack map)."""

    sequence: int = 0
    recv_ts_ns: int = 0


class _CryptofeedStamp(msgspec.Struct):
    """What the subscriber reads of a cryptofeed ``BookZMQ`` message (JSON): an update
    carries ``delta``, a full book does not."""

    receipt_timestamp: float = 0.0
    delta: msgspec.Raw = msgspec.Raw()  # left undecoded; empty when absent


@functools.cache
def _final_ids(stream_dir: Path) -> list[int]:
    """The final update id (``u``) of every frame of the stream, in order."""

    class Frame(msgspec.Struct):
        data: dict

    decode = msgspec.json.Decoder(Frame).decode
    return [decode(line).data["u"] for line in (stream_dir / "frames.txt").read_bytes().splitlines()]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process (``/proc/PID/stat``), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14, 15)


class _SenderWatch:
    """Reads the sender's lines in a thread; samples the receiver's CPU the moment the
    sender starts streaming."""

    def __init__(self, sender: subprocess.Popen, receiver_pid: int) -> None:
        self.sender = sender
        self.receiver_pid = receiver_pid
        self.start_cpu: float | None = None
        self.start_ns: int | None = None
        self.end: dict | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.sender.stdout is not None
        for line in self.sender.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "start_ns" in msg:
                self.start_cpu = cpu_seconds(self.receiver_pid)
                self.start_ns = msg["start_ns"]
            elif "sent" in msg:
                self.end = msg


def _start_receiver(receiver: str, port: int, zport: int, stream_dir: Path, transport: str | None, cf_python):
    log = open(stream_dir / f"{receiver}.log", "w")  # noqa: SIM115  (the child keeps its own descriptor)
    with log:
        if receiver == "spiceflow":
            cmd = [
                SPICEFLOW,
                "run",
                "--venue",
                "binance",
                "--instrument",
                "BTCUSDT",
                "--endpoint",
                f"ws://127.0.0.1:{port}",
                "--no-api",
                "--broadcast",
                f"tcp://127.0.0.1:{zport}",
            ]
            if transport:
                cmd += ["--transport", transport]
        else:
            cmd = [
                str(cf_python),
                str(HERE / "cryptofeed_live.py"),
                f"ws://127.0.0.1:{port}",
                f"http://127.0.0.1:{port}",
                str(zport),
            ]
        # cwd: no spiceflow.toml of the repository is picked up; cryptofeed writes its
        # feedhandler.log there
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, cwd=stream_dir)


def measure(
    stream_dir: Path,
    rate: float,
    duration: float,
    receiver: str = "spiceflow",
    *,
    transport: str | None = None,
    cf_python: Path | None = None,
) -> dict:
    import zmq

    if receiver == "spiceflow":
        _final_ids(stream_dir)  # read once, before anything is measured
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
    zport = free_port()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    if receiver == "spiceflow":
        sub.setsockopt(zmq.SUBSCRIBE, b"book.")
        sub.connect(f"tcp://127.0.0.1:{zport}")
    else:  # cryptofeed's PUB socket connects to its subscriber
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.bind(f"tcp://127.0.0.1:{zport}")
    proc = _start_receiver(receiver, port, zport, stream_dir, transport, cf_python)
    watch = _SenderWatch(sender, proc.pid)

    try:
        latencies: list[int] = []
        updates = snapshots = 0
        first_seq = None  # SpiceFlow: the sequence of its first book message (snapshot + buffered deltas)
        last = None
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        # only the fields the figures need: the levels (SpiceFlow) and deltas / full books
        # (cryptofeed) are skipped, not built, so the subscriber stays light on both sides
        decode_wire = msgspec.msgpack.Decoder(_SpiceFlowStamp).decode
        decode_json = msgspec.json.Decoder(_CryptofeedStamp).decode
        sub_cpu0 = time.process_time()
        started = time.monotonic()
        folded = 0  # frames applied before the first SpiceFlow message, published in it
        while True:
            now_m = time.monotonic()
            if watch.end is None:
                if now_m - started > duration + 60 or proc.poll() is not None:
                    break
            else:
                end_wall = watch.end["end_ns"] / 1e9
                quiet_since = max(last or 0, watch.end["end_ns"]) / 1e9
                now_w = time.time()
                if updates >= watch.end["sent"] or now_w - quiet_since > QUIET_S or now_w - end_wall > BEHIND_LIMIT_S:
                    break
            if not poller.poll(100):
                continue
            while True:  # everything already queued, then back to poll
                try:
                    frames = sub.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                now = time.time_ns()
                if receiver == "spiceflow":
                    for body in frames[1:]:
                        msg = decode_wire(body)
                        if msg.recv_ts_ns:
                            latencies.append(now - msg.recv_ts_ns)
                        if first_seq is None:
                            # Binance's procedure: deltas are buffered until the REST snapshot
                            # is in, then one message publishes the synced book; every frame
                            # up to its sequence is delivered by it
                            first_seq = msg.sequence
                            folded = bisect.bisect_right(_final_ids(stream_dir), first_seq)
                            updates += folded
                        else:
                            updates += 1
                else:
                    cf = decode_json(frames[0].split(b" ", 1)[1])
                    if len(cf.delta):
                        latencies.append(now - int(cf.receipt_timestamp * 1e9))
                        updates += 1
                    else:
                        snapshots += 1  # the initial book, then a full book every 1,000 updates
                last = now
    except BaseException:  # the receiver and the sender never outlive a failed run
        for child in (proc, sender):
            child.kill()
            child.wait()
        raise
    end_cpu = cpu_seconds(proc.pid)
    sub_cpu = time.process_time() - sub_cpu0
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    sender.terminate()
    try:
        sender.wait(10)
    except subprocess.TimeoutExpired:
        sender.kill()
        sender.wait()
    watch.thread.join(5)
    port_file.unlink(missing_ok=True)
    sub.close(0)
    ctx.term()

    end = watch.end or {"sent": 0, "send_seconds": 0}
    sent = end["sent"]
    lat = sorted(latencies[len(latencies) // 10 :])  # skip the first 10% (connect, snapshot, warm-up)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1e3 if lat else None  # noqa: E731
    cpu = end_cpu - watch.start_cpu if end_cpu is not None and watch.start_cpu is not None else None
    result = {
        "receiver": receiver,
        "transport": transport or ("default" if receiver == "spiceflow" else "websockets (cryptofeed)"),
        "target_rate": rate,
        "sent": sent,
        "send_rate": sent / end["send_seconds"] if end["send_seconds"] else 0.0,
        "delivered": updates,
        "delivered_in_first_message": folded,
        "full_snapshots": snapshots,
        "cpu_s": cpu,
        "cpu_us_per_frame": cpu / updates * 1e6 if cpu is not None and updates else None,
        # this process (the subscriber) over the whole run, per update received: if it
        # were near 1e6 / rate, the subscriber and not the receiver would set the pace
        "subscriber_cpu_us_per_update": sub_cpu / updates * 1e6 if updates else None,
        "p50_us": p(0.5),
        "p99_us": p(0.99),
        "max_us": lat[-1] / 1e3 if lat else None,
        "drain_ms": (last - end["end_ns"]) / 1e6 if last and end.get("end_ns") else None,
    }
    # the sender shares the 2 cores with the receiver and the subscriber: a rate it could
    # not produce is not a rate the receiver sustained
    result["sender_limited"] = result["send_rate"] < 0.95 * rate
    result["kept_up"] = bool(
        sent
        and not result["sender_limited"]
        and updates >= 0.99 * sent
        and (result["p99_us"] or 1e9) < 50_000
        and result["drain_ms"] is not None
        and result["drain_ms"] < DRAIN_LIMIT_MS
    )
    return result


def verdict(r: dict) -> str:
    return "kept up" if r["kept_up"] else ("SENDER-LIMITED" if r["sender_limited"] else "FELL BEHIND")


def describe(r: dict) -> str:
    drain = max(0.0, r["drain_ms"]) if r["drain_ms"] is not None else float("nan")
    cpu = r["cpu_us_per_frame"]
    return (
        f"{r['receiver']:10s} {r['target_rate']:8,.0f}/s: sent {r['sent']:7d} at {r['send_rate']:8,.0f}/s, "
        f"delivered {r['delivered']:7d}, CPU {cpu if cpu is not None else float('nan'):6.1f} us/frame "
        f"(subscriber {r['subscriber_cpu_us_per_update'] or float('nan'):4.1f}), "
        f"latency p50 {r['p50_us'] or 0:8.0f} us p99 {r['p99_us'] or 0:9.0f} us, drain {drain:,.0f} ms: {verdict(r)}"
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--receiver", action="append", choices=RECEIVERS)
    ap.add_argument(
        "--transport", choices=["httpx-ws", "websockets"], help="SpiceFlow: runtime.transport (default: as configured)"
    )
    ap.add_argument("--cf-python", type=Path, default=HERE / ".venv-cryptofeed" / "bin" / "python")
    ap.add_argument("--rates", default="10000,20000,40000,60000,80000")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--stream-dir", type=Path, default=None)
    ap.add_argument(
        "--retries",
        type=int,
        default=1,
        help="runs again a rate a receiver did not keep up with (the machine may be busy with other work)",
    )
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
    results: dict = {"benchmark": "live", "duration_s": args.duration, "rates": rates, "runs": []}
    for receiver in args.receiver or list(RECEIVERS):
        if receiver == "cryptofeed" and not args.cf_python.exists():
            print(f"cryptofeed: {args.cf_python} not found (run_all.py creates it); skipped", flush=True)
            continue
        for rate in rates:
            tries = []
            for _ in range(1 + args.retries):
                r = measure(d, rate, args.duration, receiver, transport=args.transport, cf_python=args.cf_python)
                tries.append(r)
                print(describe(r) + (" (second try)" if len(tries) > 1 else ""), flush=True)
                if r["kept_up"]:
                    break
            r["earlier_tries"] = tries[:-1]
            results["runs"].append(r)
            if not r["kept_up"]:
                break  # behind (or sender-limited): a higher rate will not do better
    out = HERE / "results" / "live.json"
    out.write_text(json.dumps(results, indent=2))
    return results


def summary(runs: list[dict], receiver: str, at: float = 10_000) -> dict:
    """Highest rate kept up, and the figures at ``at`` frames/s, of one receiver."""
    mine = [r for r in runs if r["receiver"] == receiver]
    kept = [r["target_rate"] for r in mine if r["kept_up"]]
    row = next((r for r in mine if r["target_rate"] == at), None)
    return {
        "highest_kept_up": max(kept) if kept else 0,
        "tested": [r["target_rate"] for r in mine],
        "at": row,
    }


if __name__ == "__main__":
    main()
