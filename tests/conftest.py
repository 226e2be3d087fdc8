import pytest
from book_impls import implementations

from spiceflow_core.book import orderbook


@pytest.fixture
def anyio_backend():
    return "asyncio"


# the book tests that opt in (pytestmark usefixtures) run on each per-level loop
@pytest.fixture(scope="module", params=implementations())
def levels_impl(request):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(orderbook.OrderBook, "apply", request.param.apply_levels)
        mp.setattr(orderbook, "_top_side", request.param.top_side)
        yield request.param
