"""Run book tests on each implementation of the per-level loop: the compiled one
(``_levels_c``, when built) and the pure-Python fallback (``_levels``).

A test module opts in with ``pytestmark = pytest.mark.usefixtures("levels_impl")``
(the fixture is registered in ``conftest.py``)."""

from __future__ import annotations

import importlib
import os

import pytest

from spiceflow_core.book import _levels


def implementations() -> list:
    impls = [pytest.param(_levels, id="pure")]
    try:
        compiled = importlib.import_module("spiceflow_core.book._levels_c")
    except ImportError as exc:
        if not os.environ.get("SPICEFLOW_NO_EXTENSIONS"):
            # the build hook should have compiled it: a silent fallback would hide it
            raise ImportError(
                "the compiled book loop (spiceflow_core.book._levels_c) is not built: install a C compiler "
                "and re-run ./dev setup, or set SPICEFLOW_NO_EXTENSIONS=1 to test the pure-Python loop only"
            ) from exc
    else:
        impls.insert(0, pytest.param(compiled, id="compiled"))
    return impls
