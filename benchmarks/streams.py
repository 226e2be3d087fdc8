"""Generated venue streams shaped like the recordings, for the replay benchmarks.

Standard library only: the cryptofeed side (``cryptofeed_handlers.py``, run in its own
virtualenv) reads the very same files.

A stream is a directory with
- ``snapshot.json``: the REST depth answer (Binance) / the ``book`` snapshot notification
  frame (Deribit), 1,000 levels a side;
- ``frames.txt``: one WebSocket frame per line, exactly as the venue sends it: Binance
  combined-stream ``depthUpdate`` frames, Deribit ``book.<inst>.raw`` change
  notifications; each with 2 to 5 level changes (uniformly drawn per frame; about 80%
  size changes, 10% deletions, 10% insertions so the book keeps its size), the touched
  level's rank from the top exponentially distributed (mean 8: most changes near the
  top).
- ``meta.json``: venue, symbol, counts.
"""

from __future__ import annotations

import bisect
import json
import random
from pathlib import Path

LEVELS = 1_000
#: level changes per frame, drawn uniformly from this range for each frame
CHANGES_PER_FRAME = (2, 5)


class _Side:
    def __init__(self, ticks: list[int], bid: bool) -> None:
        self.bid = bid
        self.ticks = sorted(ticks)  # ascending
        self.size: dict[int, int] = {}

    def rank(self, k: int) -> int:
        """The tick at rank k from the top (0 = best)."""
        k = min(k, len(self.ticks) - 1)
        return self.ticks[-1 - k] if self.bid else self.ticks[k]


def generate(venue: str, n_frames: int, out: Path, *, seed: int = 11) -> Path:
    """Write a stream for ``venue`` ("binance" or "deribit") to directory ``out``."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    mid = 4_325_000  # 43250.00 in ticks of 0.01 (Binance) / 0.5 (Deribit: ticks x 0.5)
    span = 1_300  # occupied ticks among the nearest 1,300: a real book has holes
    bids = _Side(rng.sample(range(mid - span, mid), LEVELS), True)
    asks = _Side(rng.sample(range(mid + 1, mid + span + 1), LEVELS), False)
    for side in (bids, asks):
        for t in side.ticks:
            side.size[t] = rng.randint(1, 5_000_000)
    binance = venue == "binance"

    def price(t: int) -> str:
        return f"{t // 100}.{t % 100:02d}" if binance else (f"{t // 2}.5" if t % 2 else f"{t // 2}.0")

    def size(v: int):
        return f"{v / 1e8:.8f}" if binance else float(v // 10 * 10)  # Deribit: USD amounts, JSON numbers

    seq = 10_000_000
    ts = 1_700_000_000_000
    symbol = "BTCUSDT" if binance else "BTC-PERPETUAL"
    if binance:
        snapshot = {
            "lastUpdateId": seq,
            "bids": [[price(t), size(bids.size[t])] for t in reversed(bids.ticks)],
            "asks": [[price(t), size(asks.size[t])] for t in asks.ticks],
        }
    else:
        snapshot = {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {
                "channel": f"book.{symbol}.raw",
                "data": {
                    "type": "snapshot",
                    "timestamp": ts,
                    "instrument_name": symbol,
                    "change_id": seq,
                    "bids": [["new", float(price(t)), size(bids.size[t])] for t in reversed(bids.ticks)],
                    "asks": [["new", float(price(t)), size(asks.size[t])] for t in asks.ticks],
                },
            },
        }
    (out / "snapshot.json").write_text(json.dumps(snapshot, separators=(",", ":")))
    stream = f"{symbol.lower()}@depth@100ms"
    with open(out / "frames.txt", "w") as fh:
        for _ in range(n_frames):
            changes: dict[bool, dict[int, int]] = {True: {}, False: {}}
            inserted: set[int] = set()  # levels new in this frame: deleting one drops it from the frame
            n = 0
            wanted = rng.randint(*CHANGES_PER_FRAME)
            while n < wanted:
                side = bids if rng.random() < 0.5 else asks
                k = int(rng.expovariate(1 / 8))
                t = side.rank(k)
                r = rng.random()
                if r < 0.8:
                    side.size[t] = rng.randint(1, 5_000_000)
                    changes[side.bid][t] = side.size[t]
                    n += 1
                elif r < 0.9 and n <= wanted - 2:
                    # delete one level, insert one at a free tick in the range (book size kept)
                    side.ticks.remove(t)
                    del side.size[t]
                    if t in inserted:
                        del changes[side.bid][t]
                        inserted.discard(t)
                    else:
                        changes[side.bid][t] = 0
                    lo, hi = (mid - span, mid) if side.bid else (mid + 1, mid + span + 1)
                    while True:
                        new = rng.randrange(lo, hi)
                        if new not in side.size:
                            break
                    bisect.insort(side.ticks, new)
                    side.size[new] = rng.randint(1, 5_000_000)
                    if changes[side.bid].get(new) != 0:
                        inserted.add(new)
                    changes[side.bid][new] = side.size[new]
                    n += 2
            seq_first = seq + 1
            seq += rng.randint(1, 5)
            ts += rng.randint(1, 20)
            if binance:
                data = {
                    "e": "depthUpdate",
                    "E": ts,
                    "s": symbol,
                    "U": seq_first,
                    "u": seq,
                    "b": [[price(t), size(v)] for t, v in changes[True].items()],
                    "a": [[price(t), size(v)] for t, v in changes[False].items()],
                }
                frame = {"stream": stream, "data": data}
            else:

                def entries(ch: dict[int, int]) -> list:
                    return [
                        ["delete", float(price(t)), 0.0] if v == 0 else ["change", float(price(t)), size(v)]
                        for t, v in ch.items()
                    ]

                frame = {
                    "jsonrpc": "2.0",
                    "method": "subscription",
                    "params": {
                        "channel": f"book.{symbol}.raw",
                        "data": {
                            "type": "change",
                            "timestamp": ts,
                            "prev_change_id": seq_first - 1,
                            "instrument_name": symbol,
                            "change_id": seq,
                            "bids": entries(changes[True]),
                            "asks": entries(changes[False]),
                        },
                    },
                }
            fh.write(json.dumps(frame, separators=(",", ":")))
            fh.write("\n")
    (out / "meta.json").write_text(
        json.dumps(
            {
                "venue": venue,
                "symbol": symbol,
                "frames": n_frames,
                "levels": LEVELS,
                "changes_per_frame": "{}-{}".format(*CHANGES_PER_FRAME),
                "first_sequence": 10_000_000,
                "last_sequence": seq,
            }
        )
    )
    return out


def load(out: Path) -> tuple[bytes, list[str], dict]:
    meta = json.loads((out / "meta.json").read_text())
    frames = (out / "frames.txt").read_text().splitlines()
    return (out / "snapshot.json").read_bytes(), frames, meta
