"""The compiled per-level loop and the pure-Python one agree on every input, including
malformed sizes and prices (same levels, same partial application, same errors)."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from book_impls import implementations
from hypothesis import given, settings
from hypothesis import strategies as st

from spiceflow_core.book import OrderBook, _levels

IMPLS = [p.values[0] for p in implementations()]
pytestmark = pytest.mark.skipif(len(IMPLS) < 2, reason="compiled loop not built (SPICEFLOW_NO_EXTENSIONS)")

prices = st.sampled_from(["100", "100.0", "100.50", "99.5", "101", "1E+2", "0.00000001", "250.25"]) | st.decimals(
    min_value=Decimal("0.01"), max_value=Decimal("500"), places=2
).map(str)
odd_sizes = st.text(alphabet="0123456789.eE+-_ ٣x", min_size=0, max_size=7)
sizes = st.one_of(
    st.sampled_from(
        ["0", "0.000", ".", "1.", ".5", "0.00000000", "3.25000000", "1E-8", "0E-8", "1.2.3", "٣", "-1", " 1"]
    ),
    odd_sizes,
    st.decimals(min_value=0, max_value=10, places=3),
    st.integers(0, 10**6),
    st.just(1.5),
)
steps = st.lists(st.tuples(st.booleans(), st.lists(st.tuples(prices, sizes), max_size=4)), max_size=30)


def run(impl, snapshot_depth, ops):
    book = OrderBook()
    book.apply_snapshot(
        [("99", "1"), ("98", "2"), ("97", "3")], [("101", "1"), ("102", "2"), ("103", "3")], snapshot_depth
    )
    trace = []
    for bid, levels in ops:
        try:
            crossed = impl.apply_levels(book, levels, []) if bid else impl.apply_levels(book, [], levels)
            trace.append(("ok", crossed, book.is_crossed()))
        except ValueError as exc:
            trace.append(f"ValueError: {exc}")
        except TypeError as exc:  # pragma: no cover - would be a difference in itself
            trace.append(f"TypeError: {exc}")
        trace.append((book.levels(), book.ignored, book.scale, impl.top_side(book._bids, book._bid_keys, 2)))
    return trace


@settings(max_examples=300, deadline=None)
@given(steps, st.sampled_from([None, 3]))
def test_compiled_and_pure_loops_agree(ops, depth):
    pure = run(_levels, depth, ops)
    for impl in IMPLS:
        assert run(impl, depth, ops) == pure, impl.__name__


@pytest.mark.parametrize("n", [0, 1, 2, 3, 10])
def test_top_side_agrees(n):
    book = OrderBook()
    book.apply_snapshot([(str(p), "1") for p in range(1, 6)], [])
    assert {tuple(impl.top_side(book._bids, book._bid_keys, n)) for impl in IMPLS} == {
        tuple(_levels.top_side(book._bids, book._bid_keys, n))
    }


def _version_line(env_extra: dict) -> str:
    spiceflow = Path(sys.executable).parent / "spiceflow"
    env = {k: v for k, v in os.environ.items() if k != "SPICEFLOW_PURE_PYTHON"} | env_extra
    out = subprocess.run([str(spiceflow), "version"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()[0]


@pytest.mark.skipif(bool(os.environ.get("SPICEFLOW_NO_EXTENSIONS")), reason="built without the extension")
def test_installed_core_runs_the_compiled_loop_unless_told_otherwise():
    # the build hook compiled it at install (./dev setup); the switch forces the fallback
    assert _version_line({}).endswith("(book loop: compiled (Cython))")
    assert _version_line({"SPICEFLOW_PURE_PYTHON": "1"}).endswith("(book loop: pure Python)")
