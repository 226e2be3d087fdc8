"""The cluster's shared state in NATS JetStream KV: one connection, four buckets
(``keys``), and the few operations the members and the clients need.

Reads are snapshots: a fresh watcher delivers the last value of every key, then a
marker; reading whole buckets this way each reconcile round (a few dozen keys) keeps
every member's view exact without relying on a long-lived watcher surviving a server
failure. Expired member keys (bucket TTL) are simply absent from the snapshot.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from spiceflow_core.cluster import keys as K

#: a KV answer slower than this is an error (the member retries next round)
OP_TIMEOUT = 5.0
#: how long ``connect`` keeps retrying while a fresh NATS cluster elects its JetStream leader
READY_TIMEOUT = 30.0


class ClusterUnavailable(Exception):
    """NATS or JetStream did not answer (the message says what was tried)."""


@dataclass(frozen=True)
class Item:
    key: str
    value: bytes
    revision: int


class ClusterStore:
    def __init__(self, nc: Any, buckets: dict[str, Any], ttl: float) -> None:
        self.nc = nc
        self.members = buckets[K.MEMBERS_BUCKET]
        self.desired = buckets[K.DESIRED_BUCKET]
        self.owners = buckets[K.OWNERS_BUCKET]
        self.status = buckets[K.STATUS_BUCKET]
        self.ttl = ttl

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    # -- reads ---------------------------------------------------------------------------
    async def snapshot(self, bucket: Any) -> dict[str, Item]:
        """The last value of every (not deleted) key of ``bucket``.

        Done when a delivered entry says nothing is pending after it (``delta`` 0, the
        server's count): the client library's own "initial values done" marker can come
        before entries already on their way, which would make a snapshot look empty."""
        from nats.errors import TimeoutError as NatsTimeout

        js = self.nc.jetstream(timeout=OP_TIMEOUT)
        stream = f"KV_{bucket._name}"
        out: dict[str, Item] = {}
        with anyio.fail_after(OP_TIMEOUT):
            if (await js.stream_info(stream)).state.messages == 0:
                return out
            watcher = await bucket.watchall()
            try:
                while True:
                    try:
                        entry = await watcher.updates(timeout=0.5)
                    except NatsTimeout:
                        # nothing came: the last keys may have expired meanwhile
                        if (await js.stream_info(stream)).state.messages == 0:
                            return out
                        continue
                    if entry is None:
                        continue
                    if entry.operation is None and entry.value is not None:
                        out[entry.key] = Item(entry.key, entry.value, entry.revision)
                    else:
                        out.pop(entry.key, None)
                    if not entry.delta:
                        return out
            finally:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await watcher.stop()

    async def get(self, bucket: Any, key: str) -> Item | None:
        from nats.js.errors import KeyNotFoundError

        with anyio.fail_after(OP_TIMEOUT):
            try:
                entry = await bucket.get(key)
            except KeyNotFoundError:
                return None
        return Item(key, entry.value or b"", entry.revision or 0)

    async def member_ttl(self) -> float:
        """How long a member key lives after its last write: the members bucket's TTL,
        set by whichever member created the bucket (maybe not this one's ``ttl``)."""
        with anyio.fail_after(OP_TIMEOUT):
            status = await self.members.status()
        return float(status.ttl or self.ttl)

    # -- writes ----------------------------------------------------------------------------
    async def put(self, bucket: Any, key: str, value: bytes) -> int:
        with anyio.fail_after(OP_TIMEOUT):
            revision: int = await bucket.put(key, value)
            return revision

    async def create(self, bucket: Any, key: str, value: bytes) -> int | None:
        """Write ``key`` only if it has no value (a deleted key counts as none); None if
        it has one."""
        from nats.js.errors import KeyWrongLastSequenceError

        with anyio.fail_after(OP_TIMEOUT):
            try:
                revision: int = await bucket.create(key, value)
            except KeyWrongLastSequenceError:
                return None
            return revision

    async def update(self, bucket: Any, key: str, value: bytes, last: int) -> int | None:
        """Compare-and-set: write only if ``key``'s last revision is ``last`` (0: absent);
        None when someone else wrote it meanwhile (or it expired)."""
        from nats.js.errors import KeyWrongLastSequenceError

        with anyio.fail_after(OP_TIMEOUT):
            try:
                revision: int = await bucket.update(key, value, last=last)
            except KeyWrongLastSequenceError:
                return None
            return revision

    async def delete(self, bucket: Any, key: str, last: int | None = None) -> bool:
        """Delete ``key`` (only at revision ``last`` when given); False if it had moved on."""
        from nats.js.errors import APIError

        with anyio.fail_after(OP_TIMEOUT):
            try:
                await bucket.delete(key, last=last)
            except APIError as exc:
                if exc.err_code in (10071, 10164):  # wrong last sequence
                    return False
                raise
            return True

    async def close(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(2), contextlib.suppress(Exception):
            await self.nc.close()


async def _buckets(js: Any, ttl: float, replicas: int) -> dict[str, Any]:
    from nats.js.errors import BadRequestError

    specs: dict[str, dict[str, Any]] = {
        K.MEMBERS_BUCKET: {"ttl": ttl, "history": 1},
        K.DESIRED_BUCKET: {"history": 1},
        K.OWNERS_BUCKET: {"history": 1},
        K.STATUS_BUCKET: {"history": 1},
    }
    out: dict[str, Any] = {}
    for name, params in specs.items():
        try:
            out[name] = await js.create_key_value(bucket=name, replicas=replicas, **params)
        except BadRequestError:
            # it exists with another configuration (another member created it first): use it
            out[name] = await js.key_value(name)
    return out


@contextlib.asynccontextmanager
async def open_store(
    url: str, *, ttl: float = 3.0, replicas: int = 1, name: str = "spiceflow"
) -> AsyncIterator[ClusterStore]:
    """Connect to NATS (``url``: one URL or several, comma-separated) and open the
    buckets, creating them if needed; retried until JetStream answers (a new cluster
    elects its leader first), at most READY_TIMEOUT seconds."""
    try:
        import nats
    except ImportError:  # pragma: no cover - depends on the installation
        raise ClusterUnavailable("clustering needs nats-py: pip install 'spiceflow-core[cluster]'") from None

    servers = [u.strip() for u in url.split(",") if u.strip()]
    last_error: BaseException | None = None
    nc: Any = None
    buckets: dict[str, Any] | None = None
    with anyio.move_on_after(READY_TIMEOUT):
        while buckets is None:
            try:
                if nc is None:
                    nc = await nats.connect(
                        servers, name=name, connect_timeout=2, max_reconnect_attempts=-1, reconnect_time_wait=0.2
                    )
                with anyio.fail_after(OP_TIMEOUT):
                    buckets = await _buckets(nc.jetstream(timeout=OP_TIMEOUT), ttl, replicas)
            except Exception as exc:
                last_error = exc
                await anyio.sleep(0.25)
    if buckets is None:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        cause = f"{type(last_error).__name__}: {last_error}" if last_error else "timed out"
        raise ClusterUnavailable(f"NATS at {url}: JetStream KV not available within {READY_TIMEOUT:.0f}s ({cause})")
    store = ClusterStore(nc, buckets, ttl)
    try:
        yield store
    finally:
        await store.close()
