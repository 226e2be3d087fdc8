"""Plausible markets for the loopback simulators: one table of reference prices per
asset, and one seeded generator of books around them that every simulator uses.

A newcomer's first screen (``./dev demo``) should look like a market: BTC near the
same price on every venue, prices on the instrument's own tick grid, sizes that are
whole multiples of its lot. :class:`BookGenerator` gives a simulator, for one
instrument (:class:`InstrumentShape`: tick, lot, how sizes are counted):

- a starting mid: the asset's reference price in the instrument's quote currency
  (:func:`reference_price`), plus a small basis for derivatives (perpetuals +0.01 %,
  dated futures +0.1 %) and a seeded jitter of at most ±0.02 %, so the same asset starts
  within a fraction of a percent on every venue; options start at a simple premium
  (:func:`option_premium_usd`);
- an initial book (:meth:`BookGenerator.initial_levels`): a one-tick spread (a few per
  cent of the premium for options), levels dense at the top and sparser deeper, the whole
  depth spanning about ``1 % * sqrt(levels / 1000)`` of the price (1 % for a 1,000-level
  Binance book, 0.1 % for ten levels), never fewer than one tick apart;
- level sizes (:meth:`BookGenerator.size`): a log-normal notional around 4,000 USD
  (trades around 500 USD), converted to the instrument's size unit (base coin, USD
  contracts of an inverse future, contracts of a linear swap) and rounded to its lot;
- a walk (:meth:`BookGenerator.walk`, :meth:`BookGenerator.prefer_bid`): a fair value
  that wanders a few basis points around the starting mid and reverts to it. The
  simulators ask :meth:`~BookGenerator.prefer_bid` for the side a level improves or
  retreats on: a fair coin while the book's mid is within 20 bp of the fair value (the
  book's own random walk, as before), leaning back towards it beyond, so a book stays
  near its reference price however long a demo runs.

Everything random comes from the ``random.Random`` the simulator passes in
(:func:`instrument_rng`: one per venue and instrument): a seeded simulator produces the
same books every run.

Reference prices (USD per unit of the asset), :data:`REFERENCES`:

- **BTC 32,201.67** and **ETH 2,006.72**: Deribit's index prices in the recorded session
  ``shared/recorded/DERIBIT.ws.1.0`` (``index_price`` of the ``ticker`` notifications on
  line 7, ``BTC-31DEC21-34000-P``, and line 4, ``ETH-30JUL21-2800-C``; 2021-07-22 22:42
  UTC). The Deribit, Binance USD-M fixtures and recordings are of that same day.
- **SUSHI, AKRO, KEEP, CTK**: the mid of the best bid and ask of the Binance USD-M depth
  snapshots in ``shared/recorded/BINANCE_FUTURES.http.0.0`` (lines 1-4, same day).
- **NKN** (USDT), **BLZ** (in ETH), **LRC** (in BTC), **RUNE** (in EUR): mids of the
  Binance spot depth snapshots in ``shared/recorded/BINANCE.http.0.0`` (lines 1-4,
  2021-10-12); the cross pairs are converted with the BTC, ETH and EUR prices here, so
  BLZETH and LRCBTC start where the recording has them.
- **Every other asset** (SOL, XRP, BNB, DOGE, ADA, ...) and **EUR**: no recorded session
  or fixture holds a price for them (the fixtures are reference data: ticks, lots,
  strikes). Their entries are approximate market levels of that same day (2021-07-22),
  rounded, and marked ``approximate`` in :data:`REFERENCES`; what matters for the
  simulators is the order of magnitude, which makes the fixtures' tick and lot sizes
  look as they do on the real instrument.
- Dollar stablecoins (USD, USDT, USDC, BUSD, ...) are 1. Venue spellings are mapped
  (``XBT`` -> BTC, ``XDG`` -> DOGE). An asset that is in no row (the simulators'
  synthetic ``SIM0``, ``S00`` ...) gets a price between 0.5 and 500 derived from its
  name (CRC32), the same on every run and every venue.

Options are kept simple: premium (USD) = intrinsic value + a time value of 4 % of the
underlying at the money, fading with the distance to the strike (``exp(-|S - K| / 0.1
S)``); it is quoted in the instrument's quote currency (the coin for Deribit's and OKX's
coin-margined options). It is a plausible number, not a pricing model.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

Kind = Literal["spot", "perpetual", "future", "option"]


@dataclass(frozen=True)
class Reference:
    """One asset's reference price in USD and where it comes from."""

    usd: Decimal
    source: str


_DERIBIT = "shared/recorded/DERIBIT.ws.1.0"
_USDM = "shared/recorded/BINANCE_FUTURES.http.0.0"
_SPOT = "shared/recorded/BINANCE.http.0.0"
_APPROX = "approximate level of 2021-07-22 (no recorded session or fixture has a price)"


def _approx(usd: str) -> Reference:
    return Reference(Decimal(usd), _APPROX)


_BTC = Decimal("32201.67")
_ETH = Decimal("2006.72")
_EUR = Decimal("1.18")

#: asset -> reference price in USD (see the module docstring for the sources)
REFERENCES: Mapping[str, Reference] = {
    "BTC": Reference(_BTC, f"{_DERIBIT} line 7: index_price of ticker.BTC-31DEC21-34000-P"),
    "ETH": Reference(_ETH, f"{_DERIBIT} line 4: index_price of ticker.ETH-30JUL21-2800-C"),
    "SUSHI": Reference(Decimal("7.6115"), f"{_USDM} line 1: SUSHIUSDT 7.6110 / 7.6120"),
    "AKRO": Reference(Decimal("0.017315"), f"{_USDM} line 2: AKROUSDT 0.01731 / 0.01732"),
    "KEEP": Reference(Decimal("0.24635"), f"{_USDM} line 3: KEEPUSDT 0.2463 / 0.2464"),
    "CTK": Reference(Decimal("1.0105"), f"{_USDM} line 4: CTKUSDT 1.01000 / 1.01100"),
    "NKN": Reference(Decimal("0.3523"), f"{_SPOT} line 1: NKNUSDT 0.35210000 / 0.35250000"),
    "BLZ": Reference(Decimal("0.00006551") * _ETH, f"{_SPOT} line 2: BLZETH 0.00006547 / 0.00006555, x ETH"),
    "LRC": Reference(Decimal("0.000006375") * _BTC, f"{_SPOT} line 3: LRCBTC 0.00000637 / 0.00000638, x BTC"),
    "RUNE": Reference(Decimal("6.26") * _EUR, f"{_SPOT} line 4: RUNEEUR 6.25100000 / 6.26900000, x EUR"),
    "EUR": _approx("1.18"),
    "BNB": _approx("296"),
    "SOL": _approx("27.5"),
    "XRP": _approx("0.59"),
    "DOGE": _approx("0.198"),
    "ADA": _approx("1.22"),
    "LTC": _approx("121"),
    "DOT": _approx("13.3"),
    "LINK": _approx("16.4"),
    "AVAX": _approx("11.6"),
    "TRX": _approx("0.058"),
    "BCH": _approx("440"),
    "UNI": _approx("17.4"),
    "ATOM": _approx("11.2"),
    "MATIC": _approx("0.86"),
    "NEAR": _approx("1.95"),
    "ALGO": _approx("0.79"),
    "XLM": _approx("0.25"),
    "ETC": _approx("44"),
    "FIL": _approx("45"),
    "EOS": _approx("3.6"),
    "XMR": _approx("205"),
    "ZEN": _approx("50"),
}

#: dollar stablecoins and the dollar itself: 1 USD
STABLECOINS = frozenset({"USD", "USDT", "USDC", "BUSD", "DAI", "TUSD", "USDP", "FDUSD", "PAX"})

#: venue spellings of the table's assets
ALIASES: Mapping[str, str] = {"XBT": "BTC", "XXBT": "BTC", "XDG": "DOGE", "XXDG": "DOGE", "XETH": "ETH", "ZUSD": "USD"}

#: basis of derivatives over the underlying's reference price
_BASIS: Mapping[str, float] = {"spot": 0.0, "option": 0.0, "perpetual": 0.0001, "future": 0.001}
_JITTER = 0.0002  # at most ±0.02 % per instrument, from the simulator's random source
_LEVEL_NOTIONAL_USD = 4_000.0  # median notional of one book level
_TRADE_NOTIONAL_USD = 500.0  # median notional of one trade
_SIZE_SIGMA = 1.2  # log-normal spread of notionals (90 % within x7 of the median)


def canonical(asset: str) -> str:
    """The table's name of a venue's asset code (``XBT`` -> ``BTC``)."""
    upper = asset.upper()
    return ALIASES.get(upper, upper)


def usd_price(asset: str) -> Decimal:
    """An asset's reference price in USD: the table's, 1 for a dollar stablecoin, else
    a price between 0.5 and 500 derived from the name (stable across runs)."""
    name = canonical(asset)
    if name in STABLECOINS:
        return Decimal(1)
    ref = REFERENCES.get(name)
    if ref is not None:
        return ref.usd
    fraction = zlib.crc32(name.encode()) / 2**32
    return Decimal(f"{10 ** (-0.3 + 3 * fraction):.4g}")


def is_listed(asset: str) -> bool:
    """Whether the asset has a row of its own (or is a stablecoin)."""
    name = canonical(asset)
    return name in STABLECOINS or name in REFERENCES


def reference_price(base: str, quote: str) -> Decimal:
    """The price of one ``base`` in ``quote`` (``ETH``/``BTC`` is a cross rate)."""
    return usd_price(base) / usd_price(quote)


def option_premium_usd(underlying_usd: Decimal, strike: Decimal, option_type: str) -> Decimal:
    """A plausible option premium in USD (intrinsic value + a time value of 4 % of the
    underlying at the money, fading away from it). Not a pricing model."""
    s, k = float(underlying_usd), float(strike)
    intrinsic = max(s - k, 0.0) if option_type == "call" else max(k - s, 0.0)
    time_value = 0.04 * s * math.exp(-abs(s - k) / (0.1 * s))
    return Decimal(f"{intrinsic + time_value:.10g}")


@dataclass(frozen=True)
class InstrumentShape:
    """What the generator needs to know of an instrument.

    Sizes are counted in units of ``contract_size`` x ``size_currency``: the base coin by
    default (spot, linear futures quoted in coins); ``size_currency="USD"`` for inverse
    contracts (Binance COIN-M: 100 USD each, Deribit futures: 1 USD with a lot of 10);
    ``contract_size=0.01`` for a linear swap whose contract is 0.01 BTC (OKX).
    """

    symbol: str
    base: str
    quote: str
    tick: Decimal
    lot: Decimal
    kind: Kind = "spot"
    size_currency: str | None = None  # None: the base coin
    contract_size: Decimal = Decimal(1)
    min_size: Decimal | None = None  # the venue's minimum order size, if above one lot
    strike: Decimal | None = None  # options
    option_type: Literal["call", "put"] | None = None  # options


def instrument_rng(seed: int | str | None, *key: str) -> random.Random:
    """The random source of one instrument's generator: the same for the same seed and
    key on every run, different for another venue or symbol (two venues of one seeded
    run must not show identical books); unseeded when ``seed`` is None."""
    if seed is None:
        return random.Random()
    return random.Random(":".join((str(seed), *key)))


def default_tick(price: Decimal) -> Decimal:
    """A tick for an instrument no reference data describes: the fifth significant
    digit of its price, 0.1 at most (0.1 at 32,000 and 2,000; 0.00001 at 0.59)."""
    if price <= 0:
        return Decimal("0.01")
    return Decimal(10) ** min(-1, math.floor(math.log10(float(price))) - 4)


def default_lot(price: Decimal) -> Decimal:
    """A lot for an instrument no reference data describes: a power of ten worth about
    1 to 10 USD (0.0001 BTC, 10 DOGE)."""
    if price <= 0:
        return Decimal(1)
    return Decimal(10) ** math.floor(math.log10(10 / float(price)))


class BookGenerator:
    """Seeded, plausible prices and sizes for one instrument (see the module docstring).

    Prices are integers of ticks (``price(ticks)`` is the Decimal); sizes are Decimals
    that are whole multiples of the lot, written with the lot's decimals."""

    def __init__(self, shape: InstrumentShape, rng: random.Random) -> None:
        if shape.tick <= 0 or shape.lot <= 0:
            raise ValueError(f"{shape.symbol}: tick and lot must be positive ({shape.tick}, {shape.lot})")
        self.shape = shape
        self.rng = rng
        underlying = usd_price(shape.base)
        if shape.kind == "option" and shape.strike is not None:
            premium = option_premium_usd(underlying, shape.strike, shape.option_type or "call")
            start = premium / usd_price(shape.quote)
        else:
            start = reference_price(shape.base, shape.quote)
            start *= Decimal(1 + _BASIS[shape.kind] + rng.uniform(-_JITTER, _JITTER))
        self.mid_ticks = max(1, int((start / shape.tick).to_integral_value(ROUND_HALF_EVEN)))
        self.spread_ticks = max(1, round(self.mid_ticks * 0.03)) if shape.kind == "option" else 1
        unit = usd_price(shape.size_currency) if shape.size_currency else underlying
        self.unit_usd = float(unit * shape.contract_size)
        self.min_lots = 1
        if shape.min_size is not None and shape.min_size > shape.lot:
            self.min_lots = math.ceil(shape.min_size / shape.lot)
        # the walk: a fair value in ticks that reverts to the starting mid
        self.anchor = float(self.mid_ticks)
        self.fair = self.anchor
        self._walk_sd = self.anchor * 0.00002  # 0.2 bp a step: some 5 bp around the anchor
        # no lean within 20 bp (and 20 ticks) of the fair value: the book's own random walk
        # there is left alone (tests at hundreds of steps a second rely on its pace)
        self._band = max(20.0, self.anchor * 0.002)

    # -- prices --------------------------------------------------------------------------
    @property
    def mid(self) -> Decimal:
        """The starting mid price (on the tick grid)."""
        return self.price(self.mid_ticks)

    def price(self, ticks: int) -> Decimal:
        return self.shape.tick * ticks

    def initial_levels(self, levels: int) -> tuple[list[tuple[int, Decimal]], list[tuple[int, Decimal]]]:
        """``levels`` bids and asks, best first, as (price in ticks, size): a one-tick
        spread around the mid (wider for options), dense at the top, sparser deeper. A
        side stops early rather than reach a price of zero (a cheap option's bids)."""
        best_bid = self.mid_ticks - self.spread_ticks // 2
        if best_bid < 1:
            best_bid = 1
        best_ask = best_bid + self.spread_ticks
        return self._side(best_bid, -1, levels), self._side(best_ask, 1, levels)

    def _side(self, best: int, direction: int, levels: int) -> list[tuple[int, Decimal]]:
        if levels <= 0:
            return []
        span = self.mid_ticks * 0.01 * math.sqrt(levels / 1000)  # depth of the whole side, in ticks
        extra = max(0.0, span / levels - 1)  # mean gap beyond one tick
        ramp = max(1, levels // 10)  # the first tenth of the levels thins out gradually
        weights = [min(1.0, (i + 1) / ramp) for i in range(levels)]
        scale = extra * levels / sum(weights)
        out: list[tuple[int, Decimal]] = []
        ticks = best
        for i in range(levels):
            if i:
                mean = scale * weights[i]
                ticks += direction * (1 + (int(self.rng.expovariate(1 / mean)) if mean > 0 else 0))
            if ticks <= 0:
                break
            out.append((ticks, self.size()))
        return out

    # -- sizes ---------------------------------------------------------------------------
    def size(self) -> Decimal:
        """One book level's size: a log-normal notional around 4,000 USD, in lots."""
        return self._lots(_LEVEL_NOTIONAL_USD)

    def trade_size(self, at_most: Decimal | None = None) -> Decimal:
        """One trade's size (around 500 USD), never above ``at_most`` when given."""
        size = self._lots(_TRADE_NOTIONAL_USD)
        if at_most is not None and size > at_most:
            size = at_most
        return size

    def _lots(self, median_usd: float) -> Decimal:
        notional = median_usd * math.exp(self.rng.gauss(0.0, _SIZE_SIGMA))
        lots = max(self.min_lots, round(notional / self.unit_usd / float(self.shape.lot)))
        size = self.shape.lot * lots
        # plain digits whatever the lot's exponent: a lot of Decimal("1E+1") must not print "5E+2"
        exponent = size.as_tuple().exponent
        return size.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else size

    # -- the walk ------------------------------------------------------------------------
    def walk(self) -> float:
        """One step of the fair value (in ticks): a random step of 0.2 bp pulled back
        towards the starting mid, so it wanders some 5 bp around it."""
        self.fair += self.rng.gauss(0.0, self._walk_sd) - 0.001 * (self.fair - self.anchor)
        return self.fair

    def prefer_bid(self, best_bid: int | None, best_ask: int | None) -> bool:
        """Which side should move next: True when the bid should improve (or the ask
        retreat). A fair coin while the book's mid is within the band (20 bp) of the
        walked fair value; beyond it the odds lean back towards it, up to 0.9 at twice
        the band, so the book never drifts away from its reference price."""
        fair = self.walk()
        if best_bid is None or best_ask is None:
            return self.rng.random() < 0.5
        off = fair - (best_bid + best_ask) / 2
        excess = min(1.0, max(0.0, abs(off) - self._band) / self._band)
        return self.rng.random() < 0.5 + 0.4 * math.copysign(excess, off)
