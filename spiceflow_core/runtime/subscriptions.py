"""One venue's subscription table: the single source of truth for what is wanted and
what is actually on the wire.

Each entry is one desired subscription (instrument x feed) and carries what exists for
it: the connection it is assigned to, its exchange channels, whether the venue has
acknowledged them on that connection (``on_wire``), and its book for the ``book`` feed.
Everything else is derived from the table and never kept on the side:

* the router's routing (``routes``: symbol -> what to do with its events),
* each connection's desired channels (``channels_on(connection)``),
* the ``Subscription`` views the control API and the CLI show.

Only the venue's supervisor task adds and removes entries (the Subscribe / Unsubscribe
workflows); connections report what the venue acknowledged through ``acknowledged`` /
``refused`` / ``off_wire``. A second source of desired state (a store shared by several
processes) plugs in by sending the same commands to the supervisor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import msgspec

from spiceflow_core.model import Instrument
from spiceflow_core.plugin.contract import Feed

if TYPE_CHECKING:  # pragma: no cover
    from spiceflow_core.runtime.books import BookFeed

Key = tuple[str, str]  # (exchange symbol, feed)


class Subscription(msgspec.Struct, kw_only=True):
    """A subscription as the control API and the CLI show it."""

    id: str
    venue: str
    symbol: str
    instrument: str
    feed: str
    topic: str
    state: str = "pending"
    connection: int | None = None
    channels: list[str] = []
    counters: dict[str, int] = {}


@dataclass(eq=False)
class Entry:
    """One desired subscription and what exists for it."""

    instrument: Instrument
    feed: Feed
    channels: tuple[str, ...]
    topic: str
    connection: int | None = None
    #: the venue acknowledged every channel on the current connection
    on_wire: bool = False
    #: acknowledged at least once: a later refusal is a resubscription failure, not a
    #: failed Subscribe workflow
    confirmed: bool = False
    #: why the venue refused the channels (a failed Subscribe workflow), or None
    error: str | None = None
    #: the book of a ``book`` entry (created by the Subscribe workflow)
    book: BookFeed | None = None
    #: set once the first acknowledgement or a refusal arrived (the workflow waits on it)
    settled: anyio.Event = field(default_factory=anyio.Event)

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def key(self) -> Key:
        return (self.instrument.symbol, self.feed)


@dataclass(eq=False)
class Route:
    """What the router does with one symbol's events (derived from the table)."""

    book: BookFeed | None = None
    trades: bool = False
    top: bool = False


class SubscriptionTable:
    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._entries: dict[Key, Entry] = {}
        self._by_channel: dict[str, Entry] = {}
        #: symbol -> Route, rebuilt for a symbol whenever one of its entries changes
        self.routes: dict[str, Route] = {}

    # -- desired state (the supervisor's workflows) ---------------------------------
    def add(self, entry: Entry) -> None:
        if entry.key in self._entries:
            raise KeyError(f"{self.venue} {entry.symbol} {entry.feed} is already in the table")
        self._entries[entry.key] = entry
        for channel in entry.channels:
            self._by_channel[channel] = entry
        self._reroute(entry.symbol)

    def remove(self, key: Key) -> Entry | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        for channel in entry.channels:
            if self._by_channel.get(channel) is entry:
                del self._by_channel[channel]
        self._reroute(entry.symbol)
        return entry

    def assign(self, entry: Entry, connection: int) -> None:
        entry.connection = connection
        entry.on_wire = False

    def _reroute(self, symbol: str) -> None:
        route = Route()
        for feed in ("book", "trades", "top"):
            entry = self._entries.get((symbol, feed))
            if entry is None:
                continue
            if feed == "book":
                route.book = entry.book
            elif feed == "trades":
                route.trades = True
            else:
                route.top = True
        if route.book is None and not route.trades and not route.top:
            self.routes.pop(symbol, None)
        else:
            self.routes[symbol] = route

    # -- reading -------------------------------------------------------------------------
    def get(self, key: Key) -> Entry | None:
        return self._entries.get(key)

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def on(self, connection: int) -> list[Entry]:
        return [e for e in self._entries.values() if e.connection == connection]

    def channels_on(self, connection: int) -> set[str]:
        """The channels connection ``connection`` should carry."""
        return {c for e in self._entries.values() if e.connection == connection for c in e.channels}

    def connections(self) -> set[int]:
        return {e.connection for e in self._entries.values() if e.connection is not None}

    def books(self) -> Iterator[BookFeed]:
        for entry in list(self._entries.values()):
            if entry.book is not None:
                yield entry.book

    def book(self, symbol: str) -> BookFeed | None:
        route = self.routes.get(symbol)
        return route.book if route is not None else None

    # -- what the venue said (reported by the connections) ------------------------------
    def _entries_of(self, channels: Iterable[str], connection: int) -> list[Entry]:
        seen: dict[int, Entry] = {}
        for channel in channels:
            entry = self._by_channel.get(channel)
            if entry is not None and entry.connection == connection:
                seen[id(entry)] = entry
        return list(seen.values())

    def acknowledged(self, connection: int, on_wire: set[str]) -> list[Entry]:
        """Channels are now on ``connection``: entries whose every channel is there are
        on the wire (and confirmed). Returns the entries that just became so."""
        changed = []
        for entry in self.on(connection):
            if not entry.on_wire and all(c in on_wire for c in entry.channels):
                entry.on_wire = True
                entry.confirmed = True
                entry.error = None
                entry.settled.set()
                changed.append(entry)
        return changed

    def off_wire(self, connection: int, channels: Iterable[str]) -> None:
        for entry in self._entries_of(channels, connection):
            entry.on_wire = False

    def connection_lost(self, connection: int) -> list[Entry]:
        entries = self.on(connection)
        for entry in entries:
            entry.on_wire = False
        return entries

    def refused(self, connection: int, channels: Iterable[str], error: str) -> list[Entry]:
        """The venue refused channels (or never acknowledged them). Returns the entries
        that had been confirmed before (their refusal is a resubscription failure);
        unconfirmed entries settle with the error and their workflow rolls back."""
        resubscriptions = []
        for entry in self._entries_of(channels, connection):
            if entry.confirmed:
                resubscriptions.append(entry)
            else:
                entry.error = error
                entry.settled.set()
        return resubscriptions
