"""One ``spiceflow run`` as a member of a cluster: heartbeat, ownership, reconciliation.

Joining creates this member's key only if it is absent. A key already there under the
same id is either a previous incarnation's (killed, then restarted with the same id:
its key expires within the TTL) or a live duplicate's (it keeps refreshing it): the
joiner watches it for at most the TTL and a margin, takes the id once the key is gone
(or silent past the TTL) and refuses to run (``MemberIdInUse``) if its revision moves.

Then three tasks, in the task group of ``ClusterMember.run`` (itself a task of the
orchestrator's group):

* heartbeat: every ttl/3, compare-and-set this member's key in the members bucket
  (expected revision = the one it wrote last). A failed CAS means the key expired (the
  member was paused or cut off longer than the TTL) and the others may own its
  instruments already: it steps down (fences and unsubscribes everything) and rejoins.
* watch: wakes the reconciler when the desired, owners or members bucket changes.
* reconcile: on a wake-up and at least every ``RECONCILE_INTERVAL``, reads the buckets
  and sends its venue runtimes the same Subscribe / Unsubscribe commands the control
  API sends, so that it carries exactly the instruments rendezvous hashing gives it.

Ownership of an instrument moves in two steps so that two members never publish it at
the same epoch: the old owner stops (fenced, unsubscribed), then clears the owners
record; the new owner claims it with a compare-and-set that increments the epoch and
stamps that epoch on everything it publishes. A dead member (not in the members bucket)
clears nothing: its instruments are claimed at once.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from loguru import logger

from spiceflow_core.cluster import keys as K
from spiceflow_core.cluster.rendezvous import owner as rendezvous_owner
from spiceflow_core.cluster.store import ClusterStore, Item
from spiceflow_core.config import ClusterSettings, ConfigError
from spiceflow_core.model import Feed

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.runtime.orchestrator import Orchestrator
    from spiceflow_core.runtime.subscriptions import Subscription
    from spiceflow_core.runtime.venue_runtime import VenueRuntime

#: the reconciler's longest sleep between two rounds
RECONCILE_INTERVAL = 1.0
#: a subscription the venue refused is tried again after this long
RETRY_AFTER = 5.0
#: longest wait of a release for a Subscribe in flight on the same instrument
INFLIGHT_WAIT_S = 60.0
#: a failed heartbeat is tried again after this long (at most ttl/3)
HEARTBEAT_RETRY_S = 0.25
#: past the members bucket's TTL, how long a joiner still waits for a silent key to go:
#: the server expires keys a little late (0.25 s measured)
LEASE_MARGIN_S = 1.0
#: how often a joiner reads the key of another process with its member id
LEASE_POLL_S = 0.1


class MemberIdInUse(ConfigError):
    """Another live process holds this member id (it keeps heartbeating the key)."""


def default_member_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Held:
    """An instrument this member owns, at ``epoch`` (owners record at ``revision``)."""

    venue: str
    symbol: str
    epoch: int
    revision: int


@dataclass
class View:
    """One reconcile round's reading of the buckets."""

    members: dict[str, K.MemberInfo]
    desired: dict[str, tuple[K.Desired, int]]  # subscription key -> (what, revision)
    owners: dict[str, tuple[K.Owner, int]]  # instrument key -> (owner, revision)


class ClusterMember:
    def __init__(self, orchestrator: Orchestrator, store: ClusterStore, settings: ClusterSettings) -> None:
        self.orc = orchestrator
        self.store = store
        self.settings = settings
        self.id = settings.member or default_member_id()
        self.ttl = settings.ttl
        self.incarnation = secrets.token_hex(8)
        self.joined = False
        self._member_rev = 0
        self._last_beat = 0.0
        self.held: dict[str, Held] = {}
        self._releasing: set[str] = set()
        self._inflight: set[tuple[str, str, Feed]] = set()
        self._failed: dict[tuple[str, str, Feed], float] = {}
        #: subscription key -> desired revision last reported in the status bucket
        self._reported: dict[str, int] = {}
        self._wake = anyio.Event()
        self._lock = anyio.Lock()
        self.rounds = 0
        self.step_downs = 0
        self.view: View | None = None
        self.log = logger.bind(actor="cluster", member=self.id)

    # -- life ---------------------------------------------------------------------------
    def info(self) -> K.MemberInfo:
        broadcaster = self.orc.broadcaster
        return K.MemberInfo(
            member=self.id,
            venues=sorted(self.orc.runtimes),
            broadcast=broadcaster.address if broadcaster is not None else "",
            api=self.orc.api_address or "",
            pid=os.getpid(),
            host=socket.gethostname(),
            incarnation=self.incarnation,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.seed()
        # started before joining: joining may wait up to a TTL for a previous
        # incarnation's lease, and a refusal (MemberIdInUse) must end the run as the
        # configuration error it is, not as a failed start of the cluster task
        task_status.started()
        try:
            await self._join_retrying()
            self.log.info("joined the cluster as {} (ttl {:.1f}s)", self.id, self.ttl)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeats, tg)
                for bucket in (self.store.desired, self.store.owners, self.store.members):
                    tg.start_soon(self._watch, bucket)
                tg.start_soon(self._reconcile_loop, tg)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await self._leave()

    async def seed(self) -> None:
        """The configured instruments become desired subscriptions (if absent): with
        clustering, configuration says what the cluster carries, not this process."""
        seeded = 0
        for name, runtime in self.orc.runtimes.items():
            for instrument in runtime.configured_instruments():
                for feed in runtime.vsettings.feeds:
                    value = K.encode(K.Desired(venue=name, symbol=instrument.symbol, feed=feed))
                    key = K.subscription_key(name, instrument.symbol, feed)
                    if await self.store.create(self.store.desired, key, value) is not None:
                        seeded += 1
        if seeded:
            self.log.info("seeded {} desired subscription(s) from the configuration", seeded)

    async def _join_retrying(self) -> None:
        """Join, trying again while NATS does not answer; a refusal ends the run."""
        while True:
            try:
                await self._join()
                return
            except MemberIdInUse:
                raise
            except Exception as exc:
                self.log.warning("joining failed: {}: {}; retrying", type(exc).__name__, exc)
                await anyio.sleep(self.ttl / 3)

    async def _join(self) -> None:
        """Take this member's key: create it if absent; compare-and-set it if it is this
        process's own (a rejoin after a step-down) or a dead incarnation's that outstayed
        its TTL; outlast any other process's key first."""
        last: int | None = None  # the revision to compare-and-set; None: create
        while True:
            sent = time.monotonic()
            value = K.encode(self.info())
            if last is None:
                rev = await self.store.create(self.store.members, self.id, value)
            else:
                rev = await self.store.update(self.store.members, self.id, value, last)
            if rev is not None:
                break
            held = await self.store.get(self.store.members, self.id)
            if held is None:
                last = None
            elif self._holder(held).incarnation == self.incarnation:
                last = held.revision
            else:
                last = await self._outlast(held)
        self._member_rev = rev
        self._last_beat = sent
        self.joined = True

    async def _outlast(self, held: Item) -> int | None:
        """Watch another process's key with this member id for at most the bucket's TTL
        and a margin. A new revision means someone heartbeats it: MemberIdInUse. Gone: None
        (to be created). Still there, unchanged: nobody wrote it for longer than a live
        member's heartbeat interval can be, so its revision (to be compare-and-set)."""
        holder = self._holder(held)
        window = await self.store.member_ttl() + LEASE_MARGIN_S
        self.log.warning(
            "member id {} is held by pid {} on {}: waiting up to {:.1f}s for its lease to expire",
            self.id,
            holder.pid,
            holder.host or "?",
            window,
        )
        start = time.monotonic()
        with anyio.move_on_after(window):
            while True:
                await anyio.sleep(LEASE_POLL_S)
                now = await self.store.get(self.store.members, self.id)
                if now is None:
                    self.log.info(
                        "waited {:.1f}s for the lease of the previous incarnation (pid {} on {}) to expire",
                        time.monotonic() - start,
                        holder.pid,
                        holder.host or "?",
                    )
                    return None
                if now.revision != held.revision:
                    live = self._holder(now)
                    raise MemberIdInUse(
                        f"member id {self.id!r} is already live in the cluster (pid {live.pid} on host "
                        f"{live.host or '?'}, heartbeating); give each process its own --member"
                    )
        self.log.info("the key of member id {} stayed silent past its TTL: taking it over", self.id)
        return held.revision

    def _holder(self, item: Item) -> K.MemberInfo:
        try:
            return K.decode(item.value, K.MemberInfo)
        except Exception:
            return K.MemberInfo(member=self.id, venues=[])

    async def _leave(self) -> None:
        """Graceful exit: drop the membership key at once so the others take over now
        instead of after the TTL."""
        if self.joined:
            self.joined = False
            try:
                await self.store.delete(self.store.members, self.id, last=self._member_rev)
            except Exception as exc:
                self.log.debug("leaving: {}", exc)

    async def _heartbeats(self, tg: TaskGroup) -> None:
        period = self.ttl / 3
        delay, failures = period, 0
        while True:
            await anyio.sleep(delay)
            delay = period
            if self._lease_lost():
                failures = 0
                await self._step_down(tg, "no heartbeat for longer than the TTL")
                continue
            # the lease counts from when a heartbeat was sent: the server stored it later,
            # so the key never outlives what this member believes
            sent = time.monotonic()
            try:
                # no longer than the lease has left (OP_TIMEOUT is longer than the TTL):
                # past it, the next turn steps down instead of publishing on
                with anyio.fail_after(max(self._last_beat + self.ttl - sent, 0.01)):
                    rev = await self.store.update(self.store.members, self.id, K.encode(self.info()), self._member_rev)
            except Exception as exc:
                # retried soon rather than a period later: the key lives until ttl after
                # the last beat, and a NATS stream that lost its leader answers again
                # once it has elected another (seconds)
                failures += 1
                log = self.log.warning if failures == 1 else self.log.debug
                log("heartbeat failed: {}: {}", type(exc).__name__, exc)
                delay = min(period, HEARTBEAT_RETRY_S)
                continue
            if failures:
                self.log.info("heartbeat answered again after {} failure(s)", failures)
                failures = 0
            if rev is None:
                await self._step_down(tg, "membership key expired")
                continue
            self._member_rev = rev
            self._last_beat = sent

    def _lease_lost(self) -> bool:
        return self.joined and time.monotonic() - self._last_beat > self.ttl

    async def _step_down(self, tg: TaskGroup, why: str) -> None:
        """Lost membership: whatever it owned may be someone else's now. Fence first
        (epoch 0 is below any real epoch: consumers drop it), unsubscribe all, rejoin.

        The fence goes first, before the lock: a reconcile round holding the lock may be
        stuck in a NATS call for up to OP_TIMEOUT (longer than the TTL while NATS elects
        a leader), and the others may own these instruments already."""
        for held in list(self.held.values()):
            self._fence(held.venue, held.symbol, 0)
        async with self._lock:
            self.step_downs += 1
            self.joined = False
            self.log.warning("stepping down ({}): releasing {} instrument(s)", why, len(self.held))
            for okey, held in list(self.held.items()):
                self._fence(held.venue, held.symbol, 0)
                self.held.pop(okey)
            async with anyio.create_task_group() as unsubscribing:
                for runtime in list(self.orc.runtimes.values()):
                    for entry in list(runtime.table):
                        unsubscribing.start_soon(self._unsubscribe, runtime, entry.symbol, entry.feed)
            self._reported.clear()
            # MemberIdInUse: another process took the id while this one was away; it keeps it
            await self._join_retrying()
            self.log.info("rejoined the cluster")
        self._wake.set()

    async def _watch(self, bucket: Any) -> None:
        while True:
            try:
                watcher = await bucket.watchall()
                try:
                    async for _ in watcher:
                        self._wake.set()
                finally:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                        await watcher.stop()
            except Exception as exc:
                self.log.debug("watch ended ({}); the periodic rounds carry on", exc)
            await anyio.sleep(RECONCILE_INTERVAL)

    async def _reconcile_loop(self, tg: TaskGroup) -> None:
        while True:
            with anyio.move_on_after(RECONCILE_INTERVAL):
                await self._wake.wait()
            self._wake = anyio.Event()
            try:
                await self.reconcile(tg)
            except Exception as exc:
                self.log.warning("reconcile round failed: {}: {}", type(exc).__name__, exc)

    # -- one round --------------------------------------------------------------------------
    async def read(self) -> View:
        members: dict[str, K.MemberInfo] = {}
        for key, item in (await self.store.snapshot(self.store.members)).items():
            try:
                members[key] = K.decode(item.value, K.MemberInfo)
            except Exception:
                continue
        desired: dict[str, tuple[K.Desired, int]] = {}
        for key, item in (await self.store.snapshot(self.store.desired)).items():
            try:
                desired[key] = (K.decode(item.value, K.Desired), item.revision)
            except Exception:
                continue
        owners: dict[str, tuple[K.Owner, int]] = {}
        for key, item in (await self.store.snapshot(self.store.owners)).items():
            try:
                owners[key] = (K.decode(item.value, K.Owner), item.revision)
            except Exception:
                continue
        return View(members, desired, owners)

    async def reconcile(self, tg: TaskGroup) -> None:
        async with self._lock:
            if not self.joined:
                return
            if self._lease_lost():
                return  # the heartbeat task steps down; nothing is claimed meanwhile
            view = await self.read()
            if self.id not in view.members or self._lease_lost():
                return  # expired (or lost while reading): the heartbeat task steps down
            self.view = view
            self.rounds += 1
            wanted = self._wanted(view)
            await self._release_lost(tg, view, wanted)
            await self._claim(view, wanted)
            self._subscriptions(tg, view, wanted)

    def _wanted(self, view: View) -> dict[str, tuple[str, str, dict[Feed, tuple[str, int]]]]:
        """instrument key -> (venue, symbol, {feed: (subscription key, desired rev)}) for
        every desired instrument rendezvous hashing gives this member."""
        by_instrument: dict[str, tuple[str, str, dict[Feed, tuple[str, int]]]] = {}
        for skey, (desired, rev) in view.desired.items():
            if desired.venue not in self.orc.runtimes:
                continue
            okey = K.instrument_key(desired.venue, desired.symbol)
            entry = by_instrument.setdefault(okey, (desired.venue, desired.symbol, {}))
            entry[2][desired.feed] = (skey, rev)
        mine = {}
        for okey, entry in by_instrument.items():
            candidates = [m for m, info in view.members.items() if entry[0] in info.venues]
            if rendezvous_owner(okey, candidates) == self.id:
                mine[okey] = entry
        return mine

    async def _release_lost(self, tg: TaskGroup, view: View, wanted: dict[str, Any]) -> None:
        for okey, held in list(self.held.items()):
            record = view.owners.get(okey)
            deposed = record is None or record[0].member != self.id or record[0].epoch != held.epoch
            if okey in wanted and not deposed:
                continue
            self.held.pop(okey)
            self._fence(held.venue, held.symbol, 0)
            self._releasing.add(okey)
            reason = "deposed" if deposed else "moved to another member"
            self.log.info("releasing {}:{} ({})", held.venue, held.symbol, reason)
            tg.start_soon(self._release, okey, held, None if deposed else record)
        # records naming this member for instruments it does not carry (a previous
        # incarnation with the same id): cleared so that their owner can claim them
        for okey, (mine, rev) in view.owners.items():
            if mine.member == self.id and okey not in self.held and okey not in wanted and okey not in self._releasing:
                await self.store.update(self.store.owners, okey, K.encode(K.Owner(member="", epoch=mine.epoch)), rev)

    async def _release(self, okey: str, held: Held, record: tuple[K.Owner, int] | None) -> None:
        try:
            # a Subscribe in flight is let finish first (fenced meanwhile): unsubscribing
            # half of a batch would fail the whole batch, the other half included
            with anyio.move_on_after(INFLIGHT_WAIT_S):
                while any(v == held.venue and s == held.symbol for v, s, _ in self._inflight):
                    await anyio.sleep(0.02)
            runtime = self.orc.runtimes.get(held.venue)
            if runtime is not None:
                for entry in [e for e in runtime.table if e.symbol == held.symbol]:
                    await self._unsubscribe_and_forget(runtime, entry.symbol, entry.feed)
            if record is not None:
                await self.store.update(
                    self.store.owners, okey, K.encode(K.Owner(member="", epoch=record[0].epoch)), record[1]
                )
        except Exception as exc:
            self.log.warning("releasing {}: {}", okey, exc)
        finally:
            self._releasing.discard(okey)
            self._wake.set()

    async def _claim(self, view: View, wanted: dict[str, tuple[str, str, Any]]) -> None:
        for okey, (venue, symbol, _) in wanted.items():
            if okey in self.held or okey in self._releasing:
                continue
            record = view.owners.get(okey)
            if record is not None:
                current = record[0].member
                if current and current != self.id and current in view.members:
                    continue  # its live owner releases it first (it reads the same members)
            epoch = (record[0].epoch if record is not None else 0) + 1
            rev = await self.store.update(
                self.store.owners, okey, K.encode(K.Owner(member=self.id, epoch=epoch)), record[1] if record else 0
            )
            if rev is None:
                continue  # someone else wrote it meanwhile: next round decides again
            self.held[okey] = Held(venue, symbol, epoch, rev)
            self._fence(venue, symbol, epoch)
            self.log.info("owning {}:{} at epoch {}", venue, symbol, epoch)

    def _subscriptions(self, tg: TaskGroup, view: View, wanted: dict[str, tuple[str, str, Any]]) -> None:
        """Subscribe what this member holds and its runtime lacks; unsubscribe what its
        runtime carries and it does not hold (or a feed no longer desired)."""
        batches: dict[tuple[str, Feed], list[str]] = defaultdict(list)
        now = time.monotonic()
        for okey, held in self.held.items():
            runtime = self.orc.runtimes.get(held.venue)
            if runtime is None or okey not in wanted:
                continue
            feeds: dict[Feed, tuple[str, int]] = wanted[okey][2]
            for feed, (skey, drev) in feeds.items():
                key = (held.venue, held.symbol, feed)
                entry = runtime.table.get((held.symbol, feed))
                if entry is None:
                    if key in self._inflight or now - self._failed.get(key, -RETRY_AFTER) < RETRY_AFTER:
                        continue
                    batches[(held.venue, feed)].append(held.symbol)
                elif entry.confirmed and self._reported.get(skey, 0) < drev:
                    tg.start_soon(self._report, skey, held, entry.topic, drev, "")
        for name, runtime in self.orc.runtimes.items():
            for entry in list(runtime.table):
                okey = K.instrument_key(name, entry.symbol)
                if (name, entry.symbol, entry.feed) in self._inflight or okey in self._releasing:
                    continue
                held_here = self.held.get(okey)
                if held_here is None or entry.feed not in wanted.get(okey, ("", "", {}))[2]:
                    tg.start_soon(self._unsubscribe_and_forget, runtime, entry.symbol, entry.feed)
        for (venue, feed), symbols in batches.items():
            for symbol in symbols:
                self._inflight.add((venue, symbol, feed))
            tg.start_soon(self._subscribe, venue, feed, symbols)

    async def _subscribe(self, venue: str, feed: Feed, symbols: list[str]) -> None:
        runtime = self.orc.runtimes.get(venue)
        try:
            if runtime is None:
                return
            try:
                subs = await runtime.subscribe_many(symbols, feed)
            except Exception as exc:
                self.log.warning("{} {} subscription of {} failed: {}", venue, feed, ", ".join(symbols[:5]), exc)
                for symbol in symbols:
                    self._failed[(venue, symbol, feed)] = time.monotonic()
                    await self._report_error(venue, symbol, feed, f"{type(exc).__name__}: {exc}")
                return
            for symbol in symbols:
                self._failed.pop((venue, symbol, feed), None)
            view = self.view
            for sub in subs:
                okey = K.instrument_key(venue, sub.symbol)
                skey = K.subscription_key(venue, sub.symbol, feed)
                held = self.held.get(okey)
                desired = view.desired.get(skey) if view is not None else None
                if held is not None and desired is not None:
                    await self._report(skey, held, sub.topic, desired[1], "")
        finally:
            for symbol in symbols:
                self._inflight.discard((venue, symbol, feed))
            self._wake.set()

    async def _report(self, skey: str, held: Held, topic: str, drev: int, error: str) -> None:
        status = K.SubscriptionStatus(
            member=self.id, state="error" if error else "subscribed", epoch=held.epoch, desired_rev=drev, topic=topic
        )
        try:
            await self.store.put(self.store.status, skey, K.encode(status))
            self._reported[skey] = drev
        except Exception as exc:
            self.log.debug("status of {}: {}", skey, exc)

    async def _report_error(self, venue: str, symbol: str, feed: Feed, error: str) -> None:
        skey = K.subscription_key(venue, symbol, feed)
        view = self.view
        desired = view.desired.get(skey) if view is not None else None
        status = K.SubscriptionStatus(
            member=self.id, state="error", desired_rev=desired[1] if desired else 0, error=error
        )
        try:
            await self.store.put(self.store.status, skey, K.encode(status))
        except Exception as exc:
            self.log.debug("status of {}: {}", skey, exc)

    async def _unsubscribe(self, runtime: VenueRuntime, symbol: str, feed: Feed) -> None:
        from spiceflow_core.runtime.workflows import NotSubscribed

        try:
            await runtime.unsubscribe(symbol, feed)
        except NotSubscribed:
            pass
        except Exception as exc:
            self.log.warning("unsubscribing {} {}: {}", symbol, feed, exc)

    async def _unsubscribe_and_forget(self, runtime: VenueRuntime, symbol: str, feed: Feed) -> None:
        """Unsubscribe; if the feed is no longer desired at all, remove its status too
        (an unsubscribing client waits for that). A feed that moved to another member
        keeps its status: the new owner overwrites it."""
        await self._unsubscribe(runtime, symbol, feed)
        skey = K.subscription_key(runtime.venue.name, symbol, feed)
        self._reported.pop(skey, None)
        view = self.view
        if view is None or skey in view.desired:
            return
        try:
            item = await self.store.get(self.store.status, skey)
            if item is not None and K.decode(item.value, K.SubscriptionStatus).member == self.id:
                await self.store.delete(self.store.status, skey, last=item.revision)
        except Exception as exc:
            self.log.debug("status of {}: {}", skey, exc)

    def _fence(self, venue: str, symbol: str, epoch: int) -> None:
        broadcaster = self.orc.broadcaster
        publisher = broadcaster.publisher if broadcaster is not None else None
        if publisher is not None:
            publisher.set_epoch(venue, symbol, epoch)

    # -- the control API, clustered ---------------------------------------------------------
    async def subscribe(self, runtime: VenueRuntime, symbol: str, feed: Feed) -> Subscription:
        """Add to the cluster's desired state; answer once the owner reports it."""
        from spiceflow_core.cluster import control

        venue = runtime.venue.name
        status = await control.subscribe(self.store, venue, symbol, feed, timeout=self.settings.answer_timeout)
        return self._subscription(runtime, symbol, feed, f"subscribed on {status.member}", status.topic)

    async def unsubscribe(self, runtime: VenueRuntime, symbol: str, feed: Feed) -> Subscription:
        from spiceflow_core.cluster import control

        venue = runtime.venue.name
        await control.unsubscribe(self.store, venue, symbol, feed, timeout=self.settings.answer_timeout)
        return self._subscription(runtime, symbol, feed, "unsubscribed", "")

    def _subscription(self, runtime: VenueRuntime, symbol: str, feed: Feed, state: str, topic: str) -> Subscription:
        from spiceflow_core.broadcast.wire import topic_for
        from spiceflow_core.model import FEED_CHANNEL
        from spiceflow_core.runtime.subscriptions import Subscription

        venue = runtime.venue.name
        return Subscription(
            id=f"{venue}:{symbol}:{feed}",
            venue=venue,
            symbol=symbol,
            instrument=runtime.resolve(symbol).normalized,
            feed=feed,
            topic=topic or topic_for(FEED_CHANNEL[feed], venue, symbol),
            state=state,
        )

    # -- views --------------------------------------------------------------------------
    def held_symbols(self, venue: str | None = None) -> list[str]:
        return sorted(h.symbol for h in self.held.values() if venue is None or h.venue == venue)

    def describe(self) -> dict[str, Any]:
        return {
            "member": self.id,
            "joined": self.joined,
            "owns": sorted(f"{h.venue}:{h.symbol}@{h.epoch}" for h in self.held.values()),
            "rounds": self.rounds,
            "step_downs": self.step_downs,
        }


def status_items(items: dict[str, Item]) -> dict[str, K.SubscriptionStatus]:
    out = {}
    for key, item in items.items():
        try:
            out[key] = K.decode(item.value, K.SubscriptionStatus)
        except Exception:
            continue
    return out
