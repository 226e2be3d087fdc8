"""``async with sim`` for a simulator whose lifecycle is one ``running()`` context: the
server and the task group of its background tasks live in that scope, opened by
``__aenter__`` and closed by ``__aexit__`` (the same task, as anyio requires)."""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Self


class RunsInContext:
    """Gives ``running()`` the ``async with`` form (how the chaos suite runs a simulator)."""

    _running_scope: contextlib.AsyncExitStack | None = None

    def running(self) -> contextlib.AbstractAsyncContextManager[Self]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        scope = contextlib.AsyncExitStack()
        entered = await scope.enter_async_context(self.running())
        self._running_scope = scope
        return entered

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        scope, self._running_scope = self._running_scope, None
        assert scope is not None, "not entered"
        return await scope.__aexit__(exc_type, exc, tb)
