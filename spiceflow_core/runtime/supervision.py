"""Restarting what fails, with exponential backoff and jitter (stamina), for every
supervised thing in the runtime: venues, connections, actors.

A run that stayed up for ``healthy_after`` seconds was healthy: after its failure the
backoff starts again from ``initial`` instead of growing further.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import stamina


class _GiveUp(BaseException):
    """Carries the exception ``on_failure`` raised past the retry loop (a BaseException,
    so stamina does not take it for a failure to retry)."""


async def restart_on_failure(
    run: Callable[[], Awaitable[None]],
    *,
    on: type[Exception] | tuple[type[Exception], ...] = Exception,
    on_failure: Callable[[Exception], None],
    initial: float,
    maximum: float,
    healthy_after: float,
) -> None:
    """Run ``run`` until it returns; each failure (an exception of type ``on``) is
    reported to ``on_failure`` (which may raise to give up) and ``run`` starts again
    after the backoff."""
    try:
        while True:
            async for attempt in stamina.retry_context(
                on=on, attempts=None, timeout=None, wait_initial=initial, wait_max=maximum, wait_jitter=initial
            ):
                with attempt:
                    started = time.monotonic()
                    try:
                        await run()
                        return
                    except on as exc:
                        try:
                            on_failure(exc)
                        except Exception as fatal:
                            raise _GiveUp(fatal) from None
                        if time.monotonic() - started < healthy_after:
                            raise
            # the failed run had been healthy for a while: restart at once, backoff reset
    except _GiveUp as give_up:
        raise give_up.args[0] from None
