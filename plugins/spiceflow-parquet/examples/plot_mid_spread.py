"""Mid price and spread over time of one instrument, from Parquet files of the
``[sinks.parquet]`` sink or of ``spiceflow export`` (DuckDB query, matplotlib plot).

    spiceflow export ../shared/recorded/BINANCE_FUTURES --parquet /tmp/sushi
    python plugins/spiceflow-parquet/examples/plot_mid_spread.py /tmp/sushi SUSHIUSDT docs/parquet-mid-spread.png

Needs the plugin's dev extra (``pip install 'spiceflow-parquet[dev]'``: duckdb, matplotlib).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

QUERY = """
SELECT recv_ts,
       (bid_price + ask_price) / 2 AS mid,   -- DOUBLE: for the plot only
       ask_price - bid_price AS spread,      -- exact DECIMAL(38, 18)
       venue
FROM read_parquet($files, hive_partitioning = true)
WHERE symbol = $symbol AND bid_price IS NOT NULL AND ask_price IS NOT NULL
ORDER BY recv_ts
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path, help="the dataset's root (the sink's path, or export's --parquet DIR)")
    ap.add_argument("symbol", help="the exchange's symbol, e.g. SUSHIUSDT")
    ap.add_argument("out", type=Path, help="the PNG to write")
    args = ap.parse_args()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    files = str(args.dataset / "books" / "**" / "*.parquet")
    rows = con.execute(QUERY, {"files": files, "symbol": args.symbol}).fetchall()
    if not rows:
        print(f"no books of {args.symbol} under {args.dataset}", file=sys.stderr)
        return 1
    times = [row[0] for row in rows]
    mids = [float(row[1]) for row in rows]
    spreads = [float(row[2]) for row in rows]
    venue = rows[0][3]

    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 4.5), height_ratios=(2, 1))
    top.step(times, mids, where="post", color="tab:blue", linewidth=1)
    top.set_ylabel("mid price")
    top.set_title(f"{venue} {args.symbol}: mid price and spread, {len(rows)} book updates")
    bottom.step(times, spreads, where="post", color="tab:orange", linewidth=1)
    bottom.set_ylabel("spread")
    bottom.set_xlabel(f"receive time (UTC), {times[0]:%Y-%m-%d}")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"{args.out}: {len(rows)} book updates of {args.symbol}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
