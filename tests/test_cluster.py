"""Clustering: key escaping, rendezvous assignment, epoch fencing in the consumer client,
and two in-process members against a real nats-server and the Binance simulator
splitting its instruments, with exact books and subscribe/unsubscribe through the
cluster's desired state."""

from __future__ import annotations

import json
import random
import string
import sys

import anyio
import pytest
from runtime_helpers import levels, wait_for

from spiceflow_core.broadcast.publisher import Publisher
from spiceflow_core.broadcast.subscriber import Subscriber
from spiceflow_core.broadcast.wire import BookMessage
from spiceflow_core.cluster import control
from spiceflow_core.cluster import keys as K
from spiceflow_core.cluster.nats_server import nats_server
from spiceflow_core.cluster.rendezvous import assign
from spiceflow_core.cluster.store import open_store
from spiceflow_core.config import decode_settings
from spiceflow_core.plugin.registry import discover
from spiceflow_core.runtime.orchestrator import Orchestrator
from spiceflow_core.runtime.workflows import DuplicateSubscription, NotSubscribed

pytestmark = pytest.mark.timeout(90)


# -- keys ----------------------------------------------------------------------------------
def test_key_parts_are_escaped_and_round_trip():
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits + "-_/.=:@ é$*>"
    for _ in range(500):
        part = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        token = K.escape(part)
        assert K.unescape(token) == part
        assert all((ch.isalnum() and ch.isascii()) or ch in "-_/=" for ch in token), token
    key = K.subscription_key("binance", "BTC.USDT", "book")
    assert key == "binance.BTC=2EUSDT.book"
    assert K.split_key(key) == ["binance", "BTC.USDT", "book"]


# -- rendezvous ----------------------------------------------------------------------------
KEYS = [f"binance.SYM{i}" for i in range(400)]


def test_assignment_is_deterministic_and_spread():
    members = ["a", "b", "c", "d"]
    first = assign(KEYS, members)
    assert first == assign(KEYS, list(reversed(members)))
    counts = {m: sum(1 for o in first.values() if o == m) for m in members}
    assert all(50 <= n <= 150 for n in counts.values()), counts


@pytest.mark.parametrize("leaving", ["a", "b", "c", "d"])
def test_a_member_leaving_moves_only_its_keys(leaving):
    members = ["a", "b", "c", "d"]
    before = assign(KEYS, members)
    after = assign(KEYS, [m for m in members if m != leaving])
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == {k for k in KEYS if before[k] == leaving}
    assert leaving not in after.values()
    # and they spread over every survivor
    assert {after[k] for k in moved} == {m for m in members if m != leaving}


def test_a_member_joining_takes_keys_only_for_itself():
    before = assign(KEYS, ["a", "b", "c"])
    after = assign(KEYS, ["a", "b", "c", "new"])
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved and all(after[k] == "new" for k in moved)


# -- fencing in the consumer client --------------------------------------------------------
def _book(symbol: str) -> BookMessage:
    return BookMessage(venue="v", symbol=symbol, sequence=1, bids=[], asks=[])


@pytest.mark.anyio
async def test_subscriber_drops_lower_epochs_and_restarts_gap_tracking_on_a_new_epoch():
    old, new = Publisher("tcp://127.0.0.1:*"), Publisher("tcp://127.0.0.1:*")
    try:
        async with Subscriber(f"{old.address},{new.address}", ["book."]) as sub:
            old.set_epoch("v", "X", 1)
            # slow joiner: publish until the subscription is in place on both sockets
            with anyio.fail_after(10):
                while True:
                    old.publish(_book("X"))
                    new.publish(_book("Y"))
                    with anyio.move_on_after(0.05):
                        got = {(await sub.receive()).topic, (await sub.receive()).topic}
                        if got == {"book.v.X", "book.v.Y"}:
                            break
            for _ in range(5):
                old.publish(_book("X"))
            with anyio.fail_after(10):  # two sockets are not ordered: let these arrive first
                while (await sub.receive()).message.topic_seq < old.topic_counts["book.v.X"].seq:
                    pass
            new.set_epoch("v", "X", 2)
            new.publish(_book("X"))  # topic_seq 1 of the new owner: no "missed" report
            seen = []

            async def until_epoch2(count: int) -> None:
                with anyio.fail_after(10):
                    while len([r for r in seen if r.message.epoch == 2]) < count:
                        received = await sub.receive()
                        if received.topic == "book.v.X":
                            seen.append(received)

            await until_epoch2(1)
            old.publish(_book("X"))  # the deposed owner, late: after epoch 2 was seen
            new.publish(_book("X"))
            await until_epoch2(2)
            with anyio.fail_after(10):
                while sub.fenced < 1:
                    with anyio.move_on_after(0.05):
                        seen.append(await sub.receive())
            new_ones = [r for r in seen if r.message.epoch == 2]
            assert [r.message.topic_seq for r in new_ones] == [1, 2]
            assert all(r.missed == 0 for r in seen if r.topic == "book.v.X")
            assert all(r.message.epoch == 2 for r in seen[seen.index(new_ones[0]) :] if r.topic == "book.v.X")
            assert sub.fenced == 1
    finally:
        old.close()
        new.close()


# -- two members in one process ------------------------------------------------------------
def member_settings(url: str, member: str, symbols: list[str], ttl: float = 2.0):
    return decode_settings(
        {
            "venues": {"binance": {"instruments": symbols}},
            "broadcast": {"address": "tcp://127.0.0.1:*", "status_interval": 1.0},
            "api": {"enabled": False},
            "runtime": {"reconnect_initial": 0.05, "reconnect_max": 0.5, "ack_timeout": 3.0},
            "cluster": {"nats": url, "member": member, "ttl": ttl},
        },
        "<test>",
    )


def owners_of(orchestrators) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for orc in orchestrators:
        runtime = orc.runtimes.get("binance")
        if runtime is None or orc.cluster is None:
            continue
        for entry in runtime.table:
            out.setdefault(entry.symbol, []).append(orc.cluster.id)
    return out


def split_exactly(orchestrators, symbols) -> bool:
    owners = owners_of(orchestrators)
    return set(owners) == set(symbols) and all(len(o) == 1 for o in owners.values())


async def exact_books(sim, latest: dict[str, BookMessage], symbols: list[str], depth: int = 25) -> None:
    """Freeze the market and compare the last book received of each symbol with the truth."""
    sim.paused = True
    try:
        for symbol in symbols:
            seq, bids, asks = sim.truth(symbol)
            try:
                await wait_for(lambda: symbol in latest and latest[symbol].sequence == seq, timeout=15)
            except TimeoutError:
                got = latest[symbol].sequence if symbol in latest else None
                raise AssertionError(f"{symbol}: last book received at sequence {got}, truth at {seq}") from None
            assert levels(latest[symbol].bids) == bids[:depth], symbol
            assert levels(latest[symbol].asks) == asks[:depth], symbol
    finally:
        sim.paused = False


async def owner_record(store, venue: str, symbol: str, *, member: str, timeout: float = 10) -> K.Owner:
    """The owners record of an instrument, once it names ``member`` ("" = released)."""
    with anyio.fail_after(timeout):
        while True:
            item = await store.get(store.owners, K.instrument_key(venue, symbol))
            if item is not None and (record := K.decode(item.value, K.Owner)).member == member:
                return record
            await anyio.sleep(0.05)


async def read_books(sub: Subscriber, latest: dict[str, BookMessage]) -> None:
    async for received in sub:
        if isinstance(received.message, BookMessage):
            latest[received.message.symbol] = received.message


@pytest.mark.anyio
async def test_two_members_split_instruments_and_follow_the_desired_state():
    from spiceflow_binance.config import SPOT
    from spiceflow_binance.simulator import BinanceSimulator

    # every move costs a snapshot: no REST budget wait (the re-subscribed book is checked)
    async with nats_server() as server, BinanceSimulator(SPOT, symbols=12, weight_limit=100_000) as sim:
        everything = sim.symbols()
        symbols, extra = everything[:10], everything[10]
        registry = discover()
        registry.get("binance").max_messages_per_second = 500.0
        orcs = [
            Orchestrator(
                member_settings(server.url, m, symbols),
                registry,
                ["binance"],
                endpoint_overrides={"binance": sim.endpoints},
            )
            for m in ("a", "b")
        ]
        async with anyio.create_task_group() as tg:
            for orc in orcs:
                tg.start_soon(orc.run)
            await wait_for(lambda: all(o.cluster is not None for o in orcs), timeout=30)
            # both joined (rendezvous gives each of "a" and "b" some of these 10), then split
            await wait_for(
                lambda: split_exactly(orcs, symbols) and {o[0] for o in owners_of(orcs).values()} == {"a", "b"},
                timeout=30,
            )
            owners = owners_of(orcs)
            assert {s for s, o in owners.items() if o == ["a"]} == set(orcs[0].cluster.held_symbols())

            address = ",".join(o.broadcaster.address for o in orcs)
            latest: dict[str, BookMessage] = {}
            async with Subscriber(address, ["book.binance."], rcvhwm=1_000_000) as sub:
                tg.start_soon(read_books, sub, latest)
                await wait_for(
                    lambda: all(
                        o.runtimes["binance"].books.state_of(s) == "synced"
                        for o in orcs
                        for s in o.cluster.held_symbols()
                    ),
                    timeout=30,
                )
                await wait_for(lambda: set(latest) == set(symbols), timeout=20)  # a book of each, then freeze
                await exact_books(sim, latest, symbols)

                async with open_store(server.url) as store:
                    status = await control.subscribe(store, "binance", extra, "book", timeout=20)
                    assert status.state == "subscribed" and status.member in ("a", "b")
                    assert owners_of(orcs)[extra] == [status.member]
                    with pytest.raises(DuplicateSubscription):
                        await control.subscribe(store, "binance", extra, "book", timeout=5)
                    view = await control.describe(store)
                    assert set(view["members"]) == {"a", "b"}
                    assert {s["symbol"] for s in view["subscriptions"]} == {*symbols, extra}
                    await control.unsubscribe(store, "binance", extra, "book", timeout=20)
                    assert extra not in owners_of(orcs)
                    with pytest.raises(NotSubscribed):
                        await control.unsubscribe(store, "binance", extra, "book", timeout=5)
                    # no longer desired, its owners record stays: the epoch is the fence, and
                    # consumers have seen this one
                    released = await owner_record(store, "binance", extra, member="")
                    assert released.epoch == status.epoch
                assert split_exactly(orcs, symbols)
                # the CLI, with no local run: straight to NATS
                cli = [sys.executable, "-m", "spiceflow_core.cli.main"]
                done = await anyio.run_process([*cli, "subscribe", "binance", extra, "--cluster", server.url])
                assert f"subscribed binance:{extra}:book" in done.stdout.decode()
                assert extra in owners_of(orcs)
                # claimed again above every epoch it ever had: its books pass the consumers' fence
                (carrier,) = owners_of(orcs)[extra]
                async with open_store(server.url) as store:
                    again = await owner_record(store, "binance", extra, member=carrier)
                assert again.epoch == released.epoch + 1
                await wait_for(lambda: extra in latest and latest[extra].epoch == again.epoch, timeout=10)
                shown = await anyio.run_process([*cli, "status", "--cluster", server.url, "--json"])
                view = json.loads(shown.stdout)
                assert set(view["members"]) == {"a", "b"}
                assert {k for k, o in view["owners"].items() if o["member"]} >= {f"binance:{s}" for s in symbols}
                done = await anyio.run_process([*cli, "unsubscribe", "binance", extra, "--cluster", server.url])
                assert extra not in owners_of(orcs)
            tg.cancel_scope.cancel()
