"""Commands that change a venue's desired subscriptions, and the errors they answer.

The control API, the CLI and the configuration never touch the subscription table:
they send one of these commands over the venue's bounded command channel and await
its reply. The venue's supervisor task runs the Subscribe / Unsubscribe workflows for
them (see ``venue_runtime``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from spiceflow_core.model import Feed


class DuplicateSubscription(Exception):
    pass


class NotSubscribed(Exception):
    pass


class SubscriptionRefused(Exception):
    """The venue refused a subscription (its error is in the message)."""


class SubscriptionTimeout(Exception):
    """The venue did not confirm in time (the message says what the connection saw)."""


@dataclass(eq=False)
class Reply:
    """A command's one-shot answer: a value or an exception."""

    done: anyio.Event = field(default_factory=anyio.Event)
    value: Any = None
    error: BaseException | None = None

    def set(self, value: Any) -> None:
        if not self.done.is_set():
            self.value = value
            self.done.set()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    async def wait(self) -> Any:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


@dataclass(eq=False)
class Subscribe:
    names: list[str]
    feed: Feed
    reply: Reply = field(default_factory=Reply)


@dataclass(eq=False)
class Unsubscribe:
    name: str
    feed: Feed
    reply: Reply = field(default_factory=Reply)


@dataclass(eq=False)
class Rotate:
    """Replace connection ``connection`` (it reached the venue's lifetime limit)."""

    connection: int
    reply: Reply = field(default_factory=Reply)


Command = Subscribe | Unsubscribe | Rotate
