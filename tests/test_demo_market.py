"""What a newcomer sees, as processes: ``spiceflow run --profile demo --duration 5`` (every
installed venue's simulator + the pipeline) and ``spiceflow tail --json --limit`` on the
broadcast. Every venue's BTC book must look like the real market: its mid within 5 % of
the reference price (``spiceflow_core.testkit.market``), every price a multiple of that
instrument's tick size in the venue's reference data (the fixtures the demo loads)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from spiceflow_core.model import Instrument
from spiceflow_core.plugin.registry import discover
from spiceflow_core.ports import free_port
from spiceflow_core.runtime.reference import fixture_directory, load_fixture_instruments
from spiceflow_core.testkit.market import reference_price

SPICEFLOW = [sys.executable, "-m", "spiceflow_core.cli.main"]
MESSAGES_PER_VENUE = 5


def demo_btc_instruments() -> dict[str, Instrument]:
    """Venue -> the BTC instrument the demo subscribes there (its default instruments),
    with the reference data the demo loads (the venue's fixtures)."""
    registry = discover()
    out = {}
    for name in registry.names():
        venue = registry.get(name)
        listed = {i.symbol: i for i in load_fixture_instruments(venue, fixture_directory(venue, None))}
        btc = [listed[s] for s in venue.default_instruments if s in listed and listed[s].base in ("BTC", "XBT")]
        if btc and btc[0].kind != "option":
            out[name] = btc[0]
    return out


@pytest.mark.slow
def test_demo_books_start_at_the_reference_price_on_the_tick_grid(tmp_path: Path):
    instruments = demo_btc_instruments()
    if not instruments:
        pytest.skip("no installed venue has a BTC instrument among its demo instruments")
    zmq_address = f"tcp://127.0.0.1:{free_port()}"
    config = tmp_path / "spiceflow.toml"
    config.write_text(f'[api]\naddress = "127.0.0.1:{free_port()}"\n[broadcast]\naddress = "{zmq_address}"\n')
    run = subprocess.Popen(
        [*SPICEFLOW, "run", "--config", str(config), "--profile", "demo", "--duration", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    # one tail per venue (ZeroMQ subscribers may connect before the publisher binds): a
    # single tail of every topic could, by chance, see no message of the slowest venue
    limit = ["--json", "--limit", str(MESSAGES_PER_VENUE)]
    tails = {
        venue: subprocess.Popen(
            [*SPICEFLOW, "tail", f"book.{venue}.{inst.symbol}", "--address", zmq_address, *limit],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for venue, inst in instruments.items()
    }
    outputs = {}
    try:
        for venue, tail in tails.items():
            out, err = tail.communicate(timeout=60)
            assert tail.returncode == 0, f"{venue}: tail failed: {err}"
            outputs[venue] = out
        log, _ = run.communicate(timeout=60)
        assert run.returncode == 0, log
    finally:
        for proc in (run, *tails.values()):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    for venue, inst in instruments.items():
        reference = reference_price(inst.base, inst.quote)
        tick = Decimal(inst.tick_size)
        books = [json.loads(line) for line in outputs[venue].splitlines()]
        assert len(books) == MESSAGES_PER_VENUE, venue
        for book in books:
            assert (book["venue"], book["symbol"]) == (venue, inst.symbol)
            assert book["bids"] and book["asks"], f"{venue}: an empty side"
            mid = (Decimal(book["bids"][0][0]) + Decimal(book["asks"][0][0])) / 2
            assert abs(mid / reference - 1) < Decimal("0.05"), (
                f"{venue} {inst.symbol}: mid {mid}, reference {reference}"
            )
            for price, _ in book["bids"] + book["asks"]:
                assert Decimal(price) % tick == 0, f"{venue} {inst.symbol}: {price} is not a multiple of {tick}"
