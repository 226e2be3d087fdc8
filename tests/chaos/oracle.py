"""The exact-book oracle of the chaos suite (also used by ``benchmarks/soak.py``).

``TruthHistory`` hooks a simulator's ``on_update`` and keeps, per symbol, the best
``depth`` levels of the simulator's truth after every update it made, keyed by the
update's sequence (bounded: the newest ``keep`` per symbol). ``Oracle`` reads every
message of the broadcast and judges each ``BookMessage`` against the truth AT ITS
SEQUENCE: a published book that was wrong at any moment -- between a fault and its
resync included -- is caught, not only a wrong final book.
"""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

import anyio

from spiceflow_core.broadcast.wire import BookMessage, StatusMessage

Levels = tuple[tuple[str, str], ...]


def _norm(levels) -> Levels:
    return tuple((str(p), str(s)) for p, s in levels)


class TruthHistory:
    def __init__(self, sim, symbols: list[str], depth: int, keep: int = 2000) -> None:
        self.sim = sim
        self.depth = depth
        self.keep = keep
        self.by_symbol: dict[str, OrderedDict[int, tuple[Levels, Levels]]] = {s: OrderedDict() for s in symbols}
        self.evicted_below: dict[str, int] = {}
        for symbol in symbols:
            seq, bids, asks = sim.truth_top(symbol, depth)
            if seq is not None:
                self._put(symbol, seq, bids, asks)
        sim.on_update = self.on_update

    def on_update(self, symbol: str, sequence: int) -> None:
        hist = self.by_symbol.get(symbol)
        if hist is None:
            return
        _, bids, asks = self.sim.truth_top(symbol, self.depth)
        self._put(symbol, sequence, bids, asks)

    def _put(self, symbol: str, sequence: int, bids, asks) -> None:
        hist = self.by_symbol[symbol]
        hist[sequence] = (_norm(bids), _norm(asks))
        while len(hist) > self.keep:
            old, _ = hist.popitem(last=False)
            self.evicted_below[symbol] = old

    def get(self, symbol: str, sequence: int) -> tuple[Levels, Levels] | None:
        return self.by_symbol.get(symbol, {}).get(sequence)

    def latest(self, symbol: str) -> int | None:
        hist = self.by_symbol.get(symbol)
        if not hist:
            return None
        return next(reversed(hist))


@dataclass
class Verdicts:
    books: int = 0
    checked: int = 0
    wrong: int = 0
    unverifiable: int = 0  # sequence older than the kept history (not judged)
    missed: int = 0  # messages the oracle's own subscriber lost (topic_seq gaps)
    short: int = 0  # exact, but fewer levels than the truth has (the snapshot's vouched range)
    wrong_examples: list[str] = field(default_factory=list)
    status: dict[str, list[tuple[float, str, str]]] = field(default_factory=lambda: defaultdict(list))
    latest: dict[str, BookMessage] = field(default_factory=dict)
    latency_ns: list[int] = field(default_factory=list)


class Oracle:
    """Judges every BookMessage received by ``sub`` (a ``client.Subscriber``)."""

    def __init__(self, sub, history: TruthHistory, *, max_latency_samples: int = 200_000) -> None:
        self.sub = sub
        self.history = history
        self.v = Verdicts()
        self.max_latency_samples = max_latency_samples

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.sub.close()

    async def _run(self) -> None:
        v = self.v
        history = self.history
        depth = history.depth
        async for received in self.sub:
            msg = received.message
            v.missed += received.missed
            if isinstance(msg, BookMessage):
                v.books += 1
                if msg.recv_ts_ns and len(v.latency_ns) < self.max_latency_samples:
                    v.latency_ns.append(time.time_ns() - msg.recv_ts_ns)
                v.latest[msg.symbol] = msg
                truth = history.get(msg.symbol, msg.sequence)
                if truth is None:
                    floor = history.evicted_below.get(msg.symbol)
                    if floor is not None and msg.sequence <= floor:
                        v.unverifiable += 1
                        continue
                    self._wrong(msg, f"sequence {msg.sequence} never existed in the truth")
                    continue
                v.checked += 1
                bids, asks = _norm(msg.bids), _norm(msg.asks)
                tb, ta = truth
                if not (_prefix_ok(bids, tb, depth) and _prefix_ok(asks, ta, depth)):
                    self._wrong(msg, _diff(bids, asks, tb[: len(bids)], ta[: len(asks)]))
                elif len(bids) < min(depth, len(tb)) or len(asks) < min(depth, len(ta)):
                    v.short += 1
            elif isinstance(msg, StatusMessage) and msg.symbol != "*":
                v.status[msg.symbol].append((time.monotonic(), msg.state, msg.reason))

    def _wrong(self, msg: BookMessage, why: str) -> None:
        self.v.wrong += 1
        if len(self.v.wrong_examples) < 10:
            self.v.wrong_examples.append(f"{msg.venue} {msg.symbol} seq {msg.sequence}: {why}")


def _prefix_ok(published: Levels, truth: Levels, depth: int) -> bool:
    """Every published level is the truth's level at that rank. Fewer levels than the
    truth's top ``depth`` are allowed: after a depth-limited REST snapshot the book only
    publishes the range the snapshot vouches for (which shrinks as the market moves)."""
    return len(published) <= depth and published == truth[: len(published)]


def _diff(bids: Levels, asks: Levels, tb: Levels, ta: Levels) -> str:
    for name, got, want in (("bids", bids, tb), ("asks", asks, ta)):
        if got != want:
            for i, (g, w) in enumerate(zip(got, want, strict=False)):  # lengths may differ: reported below
                if g != w:
                    return f"{name}[{i}] published {g} truth {w}"
            return f"{name}: published {len(got)} levels, truth {len(want)}"
    return "?"


async def wait_for(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await anyio.sleep(interval)


async def converge(sim, oracle: Oracle, runtime, symbols: list[str], timeout: float, pause, resume) -> None:
    """Wait until every book is synced; freeze the simulator; wait until each published
    sequence is the truth's; compare every level; resume. A book going stale while frozen
    (a REST venue only learns it is in sync again from the next update) -> resume, retry."""
    deadline = time.monotonic() + timeout

    def unsynced() -> list[str]:
        return [s for s in symbols if runtime.books.state_of(s) != "synced"]

    def lagging() -> list[tuple]:
        out = []
        for s in symbols:
            msg = oracle.v.latest.get(s)
            if runtime.books.state_of(s) != "synced" or msg is None or msg.sequence != oracle.history.latest(s):
                out.append((s, runtime.books.state_of(s), getattr(msg, "sequence", None), oracle.history.latest(s)))
        return out

    retry = False
    while True:
        if retry:
            # let the market move before freezing it again: an update the client could
            # not see (a lost one) may be the last before the freeze, and only the next
            # one tells the book it is wrong
            await anyio.sleep(0.5)
        retry = True
        left = deadline - time.monotonic()
        try:
            await wait_for(lambda: not unsynced(), max(left, 0.1), what="every book synced")
        except TimeoutError:
            bad = unsynced()
            raise AssertionError(
                f"not synced: {[(s, runtime.books.state_of(s)) for s in bad[:8]]} ({len(bad)} symbols)"
            ) from None
        await pause()
        try:
            try:
                await wait_for(
                    lambda: not lagging(), min(3.0, max(deadline - time.monotonic(), 0.1)), what="publication"
                )
            except TimeoutError:
                if time.monotonic() < deadline:
                    continue
                lag = lagging()
                raise AssertionError(f"did not converge: {lag[:8]} ({len(lag)} symbols)") from None
            depth = oracle.history.depth
            for s in symbols:
                seq, bids, asks = sim.truth_top(s, depth)
                msg = oracle.v.latest[s]
                assert msg.sequence == seq, (s, msg.sequence, seq)
                assert _prefix_ok(_norm(msg.bids), _norm(bids), depth), (s, _diff(_norm(msg.bids), (), _norm(bids), ()))
                assert _prefix_ok(_norm(msg.asks), _norm(asks), depth), (s, _diff((), _norm(msg.asks), (), _norm(asks)))
            return
        finally:
            await resume()
