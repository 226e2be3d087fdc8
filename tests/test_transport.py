"""The WebSocket transports against real loopback servers: batching, fragments, pings,
closes, the frame-size limit, keepalive, concurrent senders, and what a failed connect
says (refused, DNS, timeout, TLS, HTTP status)."""

from __future__ import annotations

import anyio
import pytest
from net_servers import BAD_REQUEST, FORBIDDEN, UNRESOLVABLE_HOST, answering_server, closed_port, silent_server
from websockets.asyncio.server import ServerConnection

from spiceflow_core.runtime.transport import MAX_BATCH, ConnectionLost, _accept_key, connect
from spiceflow_core.testkit import LoopbackServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TRANSPORTS = ["httpx-ws", "websockets"]


async def receive_until_lost(conn, limit: float = 10.0) -> tuple[list[str | bytes], ConnectionLost]:
    frames: list[str | bytes] = []
    with anyio.fail_after(limit):
        while True:
            try:
                batch = await conn.receive_many()
            except ConnectionLost as exc:
                return frames, exc
            assert batch, "receive_many returned no frame"
            frames.extend(batch)


def test_accept_key_matches_rfc6455_example():
    assert _accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_frames_in_order_then_the_peer_close_with_code_and_reason(transport):
    async def ws(conn: ServerConnection) -> None:
        await conn.recv()  # the client is reading: write everything at once
        conn.transport.write(b"".join(_text_frame(f"m{i}") for i in range(300)))
        await conn.send(b"\x00\x01binary")
        await conn.send(["frag", "ment", "ed"])  # one message in three frames
        await conn.close(4000, "bye now")

    async with LoopbackServer(ws=ws) as server, connect(server.ws_url, transport=transport) as conn:
        await conn.send("go")
        frames, lost = await receive_until_lost(conn)
    assert frames == [f"m{i}" for i in range(300)] + [b"\x00\x01binary", "fragmented"]
    assert "4000" in str(lost) and "bye now" in str(lost)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_buffered_frame_is_handed_over_in_batches(transport):
    # the frame path publishes per batch (one ZeroMQ message per run of a topic), so a
    # transport that handed frames over one by one would cost a ZeroMQ message each
    async def ws(conn: ServerConnection) -> None:
        await conn.recv()
        conn.transport.write(b"".join(_text_frame(f"m{i}") for i in range(200)))  # one write, ~1.4 KB
        await conn.wait_closed()

    async with LoopbackServer(ws=ws) as server, connect(server.ws_url, transport=transport) as conn:
        await conn.send("go")
        got: list[str | bytes] = []
        sizes = []
        with anyio.fail_after(10):
            while len(got) < 200:
                batch = await conn.receive_many()
                got += batch
                sizes.append(len(batch))
    assert got == [f"m{i}" for i in range(200)]
    assert len(sizes) < 20, sizes  # batches, not one frame per call
    if transport == "websockets":
        assert max(sizes) <= MAX_BATCH


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_batch_does_not_wait_for_the_rest_of_a_fragmented_message(transport):
    async def ws(conn: ServerConnection) -> None:
        await conn.recv()
        first_fragment = b"\x01\x02ab"  # text, not final, "ab"
        conn.transport.write(_text_frame("m0") + _text_frame("m1") + first_fragment)
        assert await conn.recv() == "got them"
        conn.transport.write(b"\x80\x02cd")  # continuation, final: "abcd"
        await conn.wait_closed()

    async with LoopbackServer(ws=ws) as server, connect(server.ws_url, transport=transport) as conn:
        await conn.send("go")
        got: list[str | bytes] = []
        with anyio.fail_after(10):
            while len(got) < 2:
                got += await conn.receive_many()
            assert got == ["m0", "m1"]
            await conn.send("got them")
            assert await conn.receive_many() == ["abcd"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_receive_one_at_a_time_still_works(transport):
    async def ws(conn: ServerConnection) -> None:
        for i in range(5):
            await conn.send(f"m{i}")
        await conn.wait_closed()

    async with LoopbackServer(ws=ws) as server, connect(server.ws_url, transport=transport) as conn:
        with anyio.fail_after(10):
            assert [await conn.receive() for _ in range(5)] == [f"m{i}" for i in range(5)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_pings_are_answered(transport):
    async def ws(conn: ServerConnection) -> None:
        pong = await conn.ping(b"are you there")
        with anyio.fail_after(5):
            await pong
        await conn.send("pong seen")
        await conn.wait_closed()

    server = LoopbackServer(ws=ws, ping_interval=None)
    async with server, connect(server.ws_url, transport=transport, ping_interval=None) as conn:
        with anyio.fail_after(10):
            assert await conn.receive_many() == ["pong seen"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fragmented", [False, True])
async def test_a_message_over_max_frame_bytes_closes_with_1009(transport, fragmented):
    codes: list[int | None] = []

    async def ws(conn: ServerConnection) -> None:
        await conn.send("small")
        big = "x" * 5000
        await conn.send([big[:2000], big[2000:4000], big[4000:]] if fragmented else big)
        await conn.wait_closed()
        codes.append(conn.close_code)

    async with LoopbackServer(ws=ws) as server:
        async with connect(server.ws_url, transport=transport, max_frame_bytes=4096) as conn:
            frames, lost = await receive_until_lost(conn)
        with anyio.fail_after(10):
            while not codes:
                await anyio.sleep(0.01)
    assert frames == ["small"]
    assert codes == [1009]
    assert "1009" in str(lost) or "too big" in str(lost).lower()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_utf8_from_the_peer_closes_with_1007(transport):
    codes: list[int | None] = []

    async def ws(conn: ServerConnection) -> None:
        await conn.send("fine")
        conn.transport.write(b"\x81\x02\xff\xfe")  # a text frame that is not UTF-8
        await conn.wait_closed()
        codes.append(conn.close_code)

    async with LoopbackServer(ws=ws) as server:
        async with connect(server.ws_url, transport=transport) as conn:
            frames, lost = await receive_until_lost(conn)
        with anyio.fail_after(10):
            while not codes:
                await anyio.sleep(0.01)
    assert frames == ["fine"]
    assert codes == [1007]
    assert "1007" in str(lost)


async def test_unknown_transport_is_refused():
    with pytest.raises(ValueError, match="unknown WebSocket transport 'aiohttp'"):
        async with connect("ws://127.0.0.1:9/", transport="aiohttp"):
            pass


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_keepalive_closes_a_connection_whose_pongs_stop(transport):
    gave_up = anyio.Event()

    async def ws(conn: ServerConnection) -> None:
        conn.transport.pause_reading()  # pings are never read, so never answered
        await gave_up.wait()
        conn.transport.resume_reading()
        await conn.wait_closed()

    async with LoopbackServer(ws=ws, ping_interval=None) as server:
        async with connect(server.ws_url, transport=transport, ping_interval=0.2) as conn:
            frames, lost = await receive_until_lost(conn)
        gave_up.set()
    assert frames == []
    assert "ping" in str(lost).lower() and "timeout" in str(lost).lower()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_keepalive_keeps_an_answering_connection(transport):
    async def ws(conn: ServerConnection) -> None:
        await anyio.sleep(1.6)  # three ping intervals of silence, answered by pongs
        await conn.send("still here")
        await conn.wait_closed()

    server = LoopbackServer(ws=ws, ping_interval=None)
    async with server, connect(server.ws_url, transport=transport, ping_interval=0.5) as conn:
        with anyio.fail_after(10):
            assert await conn.receive_many() == ["still here"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_concurrent_senders_never_interleave_frames(transport):
    received: list[str] = []
    done = anyio.Event()
    n, size = 12, 300_000  # big enough that a write waits for the socket to drain

    async def ws(conn: ServerConnection) -> None:
        async for message in conn:
            received.append(str(message))
            if len(received) == 2 * n:
                done.set()

    async with LoopbackServer(ws=ws, max_size=2**21) as server, connect(server.ws_url, transport=transport) as conn:

        async def sender(tag: str) -> None:
            for i in range(n):
                await conn.send(f"{tag}{i:03d}" + tag * size)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender, "a")
            tg.start_soon(sender, "b")
        with anyio.fail_after(20):
            await done.wait()
    for tag in "ab":
        mine = [m for m in received if m[0] == tag]
        assert [m[:4] for m in mine] == [f"{tag}{i:03d}" for i in range(n)]
        assert all(m[4:] == tag * size for m in mine)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_close_from_another_task_ends_a_waiting_reader(transport):
    codes: list[int | None] = []

    async def ws(conn: ServerConnection) -> None:
        await conn.wait_closed()
        codes.append(conn.close_code)

    async with LoopbackServer(ws=ws) as server:
        async with connect(server.ws_url, transport=transport) as conn, anyio.create_task_group() as tg:
            outcome: list[BaseException] = []

            async def reader() -> None:
                try:
                    await conn.receive_many()
                except ConnectionLost as exc:
                    outcome.append(exc)

            tg.start_soon(reader)
            await anyio.sleep(0.1)
            await conn.close()
        with anyio.fail_after(10):
            while not codes:
                await anyio.sleep(0.01)
    assert len(outcome) == 1
    assert codes == [1000]
    with pytest.raises(ConnectionLost):
        await conn.send("after close")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_reset_connection_is_lost(transport):
    async def ws(conn: ServerConnection) -> None:
        await conn.send("last words")
        await anyio.sleep(0.1)
        conn.transport.abort()

    async with LoopbackServer(ws=ws) as server, connect(server.ws_url, transport=transport) as conn:
        frames, lost = await receive_until_lost(conn)
    assert frames == ["last words"]
    assert str(lost)


# -- what a failed connect says ------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connect_refused(transport):
    port = closed_port()
    url = f"ws://127.0.0.1:{port}/ws"
    with pytest.raises(ConnectionLost) as err:
        async with connect(url, transport=transport, open_timeout=5):
            pass
    message = str(err.value)
    assert url in message and f"connection refused (127.0.0.1:{port})" in message
    assert "failed after" in message and "(1 attempt)" in message


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connect_dns_failure(transport):
    url = f"wss://{UNRESOLVABLE_HOST}/ws"
    with pytest.raises(ConnectionLost) as err:
        async with connect(url, transport=transport, open_timeout=5):
            pass
    assert url in str(err.value) and f"DNS lookup failed for {UNRESOLVABLE_HOST}" in str(err.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connect_timeout(transport):
    async with silent_server() as port:
        url = f"ws://127.0.0.1:{port}/ws"
        with pytest.raises(ConnectionLost) as err:
            async with connect(url, transport=transport, open_timeout=0.3):
                pass
    assert url in str(err.value) and "timeout (after 0.3 s)" in str(err.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connect_tls_error(transport):
    async with answering_server(BAD_REQUEST) as port:
        url = f"wss://127.0.0.1:{port}/ws"
        with pytest.raises(ConnectionLost) as err:
            async with connect(url, transport=transport, open_timeout=5):
                pass
    assert url in str(err.value) and "TLS error" in str(err.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connect_upgrade_refused(transport):
    async with answering_server(FORBIDDEN) as port:
        url = f"ws://127.0.0.1:{port}/ws"
        with pytest.raises(ConnectionLost) as err:
            async with connect(url, transport=transport, open_timeout=5):
                pass
    assert url in str(err.value) and "HTTP 403 Forbidden: forbidden" in str(err.value)


async def test_an_error_raised_by_the_caller_is_not_a_connect_failure():
    async def ws(conn: ServerConnection) -> None:
        await conn.wait_closed()

    async with LoopbackServer(ws=ws) as server:
        with pytest.raises(KeyError):
            async with connect(server.ws_url):
                raise KeyError("the caller's own")


def _text_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    return bytes((0x81, len(payload))) + payload
