"""Reading exceptions out of anyio task groups (which wrap them in groups)."""

from __future__ import annotations

import anyio


def leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(leaf_errors(inner))
        return out
    return [exc]


def describe_error(exc: BaseException) -> str:
    leaves = [e for e in leaf_errors(exc) if not isinstance(e, anyio.get_cancelled_exc_class())] or [exc]
    return "; ".join(str(e) or type(e).__name__ for e in leaves)
