"""The sink failing over within a cluster of real nats-servers."""

from __future__ import annotations

import anyio
import nats
import pytest
from nats_testing import Wire, collecting, offer, running, wait_for
from spiceflow_nats.config import NatsOptions
from spiceflow_nats.sink import NatsSink

from spiceflow_core.cluster.nats_server import NatsServer

pytestmark = pytest.mark.anyio


async def test_the_sink_fails_over_to_another_server_of_the_cluster(wire: Wire):
    async with NatsServer(cluster=True, jetstream=False) as a:
        async with NatsServer(routes=[a.route_url], jetstream=False) as b:
            # the route is up once a message published on one server reaches the other
            async with collecting(b.url, "probe") as probe:
                nc = await nats.connect(a.url)
                try:
                    with anyio.fail_after(10):
                        while not probe.got:
                            await nc.publish("probe", b"")
                            await nc.flush()
                            await anyio.sleep(0.05)
                finally:
                    await nc.close()
            sink = NatsSink(NatsOptions(servers=[a.url, b.url], reconnect_wait=0.1))
            async with running(sink):
                await wait_for(lambda: sink._nc is not None and sink._nc.is_connected)
                assert sink._nc is not None and sink._nc.connected_url is not None
                first, other = (a, b) if sink._nc.connected_url.port == a.port else (b, a)
                async with collecting(other.url, "book.>") as got:
                    # the subscription's interest reaches the sink's server through the
                    # route a moment later: publish until the first message crosses
                    with anyio.fail_after(10):
                        while not got.got:
                            offer(sink, [wire.book("BTCUSDT")])
                            await anyio.sleep(0.02)
                    await first.stop(kill=True)
                    # keep publishing: once the sink is on the other server, messages flow again
                    with anyio.fail_after(15):
                        while len(got.got) < 20:
                            offer(sink, [wire.book("BTCUSDT")])
                            await anyio.sleep(0.02)
                assert sink._nc.connected_url.port == other.port
    seqs = got.seqs("book.toy.BTCUSDT")
    assert seqs == sorted(seqs) and seqs[-1] > 1
