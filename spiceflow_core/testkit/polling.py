"""Waiting in tests for something a running pipeline does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """``predicate()`` once it is truthy, polled every ``interval`` (TimeoutError after
    ``timeout`` seconds)."""
    with anyio.fail_after(timeout):
        while True:
            value = predicate()
            if value:
                return value
            await anyio.sleep(interval)
