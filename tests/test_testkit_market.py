"""The simulators' shared market (``spiceflow_core.testkit.market``): reference prices
taken from the recorded sessions, books on the instrument's tick grid with sizes in its
lot, the same asset close on every venue, deterministic for a seed."""

from __future__ import annotations

import itertools
import json
import random
import statistics
from decimal import Decimal
from pathlib import Path

import pytest

from spiceflow_core.testkit.market import (
    REFERENCES,
    BookGenerator,
    InstrumentShape,
    default_lot,
    default_tick,
    instrument_rng,
    option_premium_usd,
    reference_price,
    usd_price,
)

ROOT = Path(__file__).resolve().parents[1]
RECORDED = next(
    (
        p
        for p in (Path("/work/shared/recorded"), ROOT.parent / "shared" / "recorded")
        if (p / "DERIBIT.ws.1.0").exists()
    ),
    None,
)

BTC = Decimal("32201.67")
#: one BTC instrument per kind of venue, with its real reference data (fixtures)
BTC_INSTRUMENTS = [
    InstrumentShape("BTCUSDT", "BTC", "USDT", Decimal("0.01000000"), Decimal("0.00001000")),  # Binance spot
    InstrumentShape("BTCUSDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.001"), "perpetual"),  # Binance USD-M
    InstrumentShape(  # Binance COIN-M: contracts of 100 USD
        "BTCUSD_PERP",
        "BTC",
        "USD",
        Decimal("0.1"),
        Decimal("1"),
        "perpetual",
        size_currency="USD",
        contract_size=Decimal(100),
    ),
    InstrumentShape(  # Deribit: amounts in USD, steps of 10
        "BTC-PERPETUAL", "BTC", "USD", Decimal("0.5"), Decimal("10"), "perpetual", size_currency="USD"
    ),
    InstrumentShape(  # OKX linear swap: contracts of 0.01 BTC
        "BTC-USDT-SWAP", "BTC", "USDT", Decimal("0.1"), Decimal("0.01"), "perpetual", contract_size=Decimal("0.01")
    ),
    InstrumentShape("BTC/USD", "BTC", "USD", Decimal("0.1"), Decimal("0.00000001"), min_size=Decimal("0.00005")),
]


def recorded_line(name: str, number: int) -> str:
    if RECORDED is None:
        pytest.skip("shared/recorded not available")
    return (RECORDED / name).read_text().splitlines()[number - 1]


def best_mid(line: str) -> Decimal:
    """Mid of the best bid and ask of a recorded REST depth line (``URL -> TS: BODY``)."""
    body = json.loads(line.split(": ", 1)[1])
    return (Decimal(body["bids"][0][0]) + Decimal(body["asks"][0][0])) / 2


def test_btc_and_eth_are_deribits_index_prices_in_the_recorded_session():
    for asset, number in (("BTC", 7), ("ETH", 4)):
        data = json.loads(recorded_line("DERIBIT.ws.1.0", number).split(": ", 1)[1])["params"]["data"]
        assert data["instrument_name"].startswith(asset)
        assert REFERENCES[asset].usd == Decimal(str(data["index_price"]))
        assert f"line {number}" in REFERENCES[asset].source


@pytest.mark.parametrize(
    "asset, file, number, quote",
    [
        ("SUSHI", "BINANCE_FUTURES.http.0.0", 1, "USDT"),
        ("AKRO", "BINANCE_FUTURES.http.0.0", 2, "USDT"),
        ("KEEP", "BINANCE_FUTURES.http.0.0", 3, "USDT"),
        ("CTK", "BINANCE_FUTURES.http.0.0", 4, "USDT"),
        ("NKN", "BINANCE.http.0.0", 1, "USDT"),
        ("BLZ", "BINANCE.http.0.0", 2, "ETH"),
        ("LRC", "BINANCE.http.0.0", 3, "BTC"),
    ],
)
def test_recorded_symbols_start_at_their_recorded_mid(asset, file, number, quote):
    line = recorded_line(file, number)
    assert f"symbol={asset}{quote}&" in line
    assert reference_price(asset, quote) == best_mid(line)
    assert file in REFERENCES[asset].source


def test_every_reference_says_where_it_comes_from():
    for asset, ref in REFERENCES.items():
        assert ref.usd > 0, asset
        assert "shared/recorded/" in ref.source or "approximate" in ref.source, asset


def test_prices_of_assets_stablecoins_aliases_and_unknown_names():
    assert usd_price("USDT") == usd_price("usdc") == Decimal(1)
    assert usd_price("XBT") == usd_price("BTC") == BTC
    assert reference_price("ETH", "BTC") == Decimal("2006.72") / BTC
    unknown = usd_price("SIM7")
    assert Decimal("0.5") <= unknown <= Decimal(500) and usd_price("SIM7") == unknown
    assert usd_price("SIM8") != unknown


@pytest.mark.parametrize("shape", BTC_INSTRUMENTS, ids=lambda s: f"{s.symbol}-{s.tick}")
@pytest.mark.parametrize("levels", [10, 60, 1000])
def test_books_are_on_the_tick_grid_with_sizes_in_lots(shape, levels):
    gen = BookGenerator(shape, random.Random(5))
    bids, asks = gen.initial_levels(levels)
    assert len(bids) == len(asks) == levels
    assert bids[0][0] < asks[0][0] and asks[0][0] - bids[0][0] == 1  # a one-tick spread
    assert all(a[0] > b[0] for a, b in itertools.pairwise(bids))  # best first, distinct
    assert all(a[0] < b[0] for a, b in itertools.pairwise(asks))
    for ticks, size in bids + asks:
        assert gen.price(ticks) % shape.tick == 0
        assert size > 0 and size % shape.lot == 0 and size >= (shape.min_size or shape.lot)
        assert "E" not in str(size) and "E" not in str(gen.price(ticks))
    # the whole depth stays within about 1 % * sqrt(levels / 1000) of the price
    span = (gen.price(asks[-1][0]) - gen.price(bids[-1][0])) / gen.mid
    assert span < Decimal("0.03") * Decimal(levels / 1000).sqrt() + 2 * levels * shape.tick / gen.mid


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_asset_starts_within_a_fraction_of_a_percent_everywhere(seed):
    mids = [
        BookGenerator(shape, instrument_rng(seed, str(i), shape.symbol)).mid for i, shape in enumerate(BTC_INSTRUMENTS)
    ]
    assert all(abs(mid / BTC - 1) < Decimal("0.001") for mid in mids), mids
    assert (max(mids) - min(mids)) / BTC < Decimal("0.002")


def test_sizes_are_a_few_thousand_usd_in_the_instruments_unit():
    spot, _, coinm, deribit, okx_swap, _ = (BookGenerator(s, random.Random(9)) for s in BTC_INSTRUMENTS)
    median_usd = {
        "spot (BTC)": statistics.median(float(spot.size()) for _ in range(2001)) * float(BTC),
        "COIN-M (100 USD contracts)": statistics.median(float(coinm.size()) for _ in range(2001)) * 100,
        "Deribit (USD)": statistics.median(float(deribit.size()) for _ in range(2001)),
        "OKX swap (0.01 BTC contracts)": statistics.median(float(okx_swap.size()) for _ in range(2001)) * 322.0167,
    }
    assert all(2_000 < usd < 8_000 for usd in median_usd.values()), median_usd
    trade = spot.trade_size(at_most=Decimal("0.00002"))
    assert trade <= Decimal("0.00002") and trade % Decimal("0.00001") == 0


def test_a_seed_gives_the_same_book_and_another_venue_another_book():
    shape = BTC_INSTRUMENTS[0]
    first = BookGenerator(shape, instrument_rng(7, "binance", "BTCUSDT")).initial_levels(50)
    again = BookGenerator(shape, instrument_rng(7, "binance", "BTCUSDT")).initial_levels(50)
    other = BookGenerator(shape, instrument_rng(7, "okx", "BTCUSDT")).initial_levels(50)
    assert first == again and first != other


def test_options_start_at_a_small_premium_in_the_coin():
    call = InstrumentShape(
        "BTC-X-32000-C",
        "BTC",
        "BTC",
        Decimal("0.0005"),
        Decimal("0.1"),
        "option",
        strike=Decimal(32000),
        option_type="call",
    )
    put = InstrumentShape(
        "BTC-X-40000-P",
        "BTC",
        "BTC",
        Decimal("0.0005"),
        Decimal("0.1"),
        "option",
        strike=Decimal(40000),
        option_type="put",
    )
    atm, itm = BookGenerator(call, random.Random(1)), BookGenerator(put, random.Random(1))
    assert Decimal("0.03") < atm.mid < Decimal("0.05")  # ~4 % of the underlying, in BTC
    assert itm.mid >= (Decimal(40000) - BTC) / BTC  # at least its intrinsic value
    assert option_premium_usd(BTC, Decimal(300000), "call") < 1  # far out of the money: nearly nothing
    bids, asks = atm.initial_levels(10)
    assert asks[0][0] - bids[0][0] > 1  # wider than a tick: a few per cent of the premium
    cheap = InstrumentShape(
        "BTC-X-300000-C",
        "BTC",
        "BTC",
        Decimal("0.0005"),
        Decimal("0.1"),
        "option",
        strike=Decimal(300000),
        option_type="call",
    )
    bids, asks = BookGenerator(cheap, random.Random(1)).initial_levels(10)
    assert bids and all(ticks >= 1 for ticks, _ in bids) and len(asks) == 10  # bids stop above zero


def test_the_walk_leaves_a_book_near_its_fair_value_alone_and_pulls_a_far_one_back():
    gen = BookGenerator(BTC_INSTRUMENTS[0], random.Random(3))
    mid = gen.mid_ticks
    near = sum(gen.prefer_bid(mid, mid + 1) for _ in range(4000)) / 4000
    assert 0.45 < near < 0.55  # a fair coin: the simulators' own random walk
    far = mid + 3 * int(gen.mid_ticks * 0.002)  # 60 bp above the fair value
    assert sum(gen.prefer_bid(far, far + 1) for _ in range(1000)) / 1000 < 0.2  # bids retreat, asks come down
    assert abs(gen.fair - gen.anchor) < gen.anchor * 0.002  # the fair value stays within 20 bp


def test_defaults_for_instruments_without_reference_data():
    assert default_tick(Decimal("32201.67")) == Decimal("0.1")
    assert default_tick(Decimal("0.59")) == Decimal("0.00001")
    assert default_lot(Decimal("32201.67")) == Decimal("0.0001")
    assert str(default_lot(Decimal("0.2"))) == "10"
    shape = InstrumentShape("DOGEX", "DOGE", "USDT", Decimal("0.00001"), default_lot(Decimal("0.2")))
    assert all("E" not in str(BookGenerator(shape, random.Random(i)).size()) for i in range(50))
