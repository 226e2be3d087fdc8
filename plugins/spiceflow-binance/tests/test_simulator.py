"""The simulator over real sockets: a websockets client and httpx against loopback."""

import itertools
import json
import time
from decimal import Decimal

import anyio
import httpx
import pytest
from spiceflow_binance.config import COINM, SPOT, USDM
from spiceflow_binance.parsing import parse_frame
from spiceflow_binance.plugin import BinanceSpot, BinanceUsdm
from spiceflow_binance.simulator import BinanceSimulator
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from spiceflow_core.book import BookSync, GapDetected, Synced, SyncState
from spiceflow_core.model import BookDelta, SubscribeAck
from spiceflow_core.plugin.contract import ProtocolError
from spiceflow_core.plugin.rest import RestClient

pytestmark = pytest.mark.anyio


async def recv_json(ws, timeout=5.0):
    with anyio.fail_after(timeout):
        return json.loads(await ws.recv())


async def subscribe(ws, venue, channels):
    session = venue.new_session()
    for request in session.subscribe(channels):
        await ws.send(request.frame)
    return session


async def test_subscribe_ack_and_only_subscribed_streams():
    venue = BinanceSpot()
    async with BinanceSimulator(SPOT, symbols=2, rate=200) as sim:
        assert sim.endpoints.ws_url.endswith("/stream")
        btc, _eth = sim.symbols()
        async with connect(sim.endpoints.ws_url) as ws:
            session = await subscribe(ws, venue, [f"{btc.lower()}@depth@100ms", f"{btc.lower()}@bookTicker"])
            ack = await recv_json(ws)
            assert ack == {"result": None, "id": 1}
            (event,) = session.parse(json.dumps(ack), 0)
            assert event == SubscribeAck(venue="binance", request_id=1)
            streams = set()
            for _ in range(40):
                frame = await recv_json(ws)
                streams.add(frame["stream"])
            assert streams == {f"{btc.lower()}@depth@100ms", f"{btc.lower()}@bookTicker"}
            await ws.send(session.list_subscriptions().frame)
            while "result" not in (answer := await recv_json(ws)):
                pass
            assert answer == {"result": sorted(streams), "id": 2}
            await ws.send('{"method":"SUBSCRIBE","params":["BAD STREAM"],"id":3}')
            while "id" not in (answer := await recv_json(ws)):
                pass
            assert answer["id"] == 3 and answer["error"]["code"] == 2
            await ws.send('{"method":"FOO","id":4}')
            while "id" not in (answer := await recv_json(ws)):
                pass
            (err,) = session.parse(json.dumps(answer), 0)
            assert err.request_id == 4 and "unknown variant" in err.error
        assert sim.client_frames[0].startswith('{"method":"SUBSCRIBE"')


async def test_rest_depth_and_exchange_info_answer_from_truth():
    venue = BinanceUsdm()
    # more levels than the deepest snapshot, so the 1,000-level answer is really cut
    async with BinanceSimulator(USDM, symbols=1, rate=0, start="now", levels=1200) as sim:
        await anyio.sleep(0.05)
        async with RestClient(sim.endpoints.rest_url) as rest:
            instruments = await venue.fetch_instruments(rest)
            inst = {i.symbol: i for i in instruments}[sim.symbols()[0]]
            sim.faults.stall = 1.0  # freeze the stream so truth and snapshot are comparable
            await anyio.sleep(0.1)
            snap = await venue.fetch_snapshot(rest, inst, 1000)
            seq, bids, asks = sim.truth(inst.symbol)
            assert snap.sequence == seq and snap.depth_limit == 1000
            assert snap.bids == bids[:1000] and snap.asks == asks[:1000]
            assert len(snap.bids) == 1000 and snap.bids[0][0] < snap.asks[0][0]
            small = await venue.fetch_snapshot(rest, inst, 7)  # futures: rounded up to a valid limit
            assert small.depth_limit == 10 and len(small.bids) == 10
        async with httpx.AsyncClient() as client:
            r = await client.get(sim.endpoints.rest_url + "/fapi/v1/depth", params={"symbol": "NOPE", "limit": 5})
            assert r.status_code == 400 and r.json()["code"] == -1121
            r = await client.get(sim.endpoints.rest_url + "/fapi/v1/depth", params={"symbol": inst.symbol, "limit": 7})
            assert r.status_code == 400
            r = await client.get(
                sim.endpoints.rest_url + "/fapi/v1/depth", params={"symbol": inst.symbol, "limit": 1000}
            )
            assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) >= 20


async def test_rest_error_faults():
    async with BinanceSimulator(SPOT, symbols=1, start="now") as sim:
        async with httpx.AsyncClient() as client:
            url = sim.endpoints.rest_url + "/api/v3/depth"
            sim.faults.rest_errors = [429, 418, 500]
            r = await client.get(url, params={"symbol": sim.symbols()[0], "limit": 5})
            assert r.status_code == 429 and r.headers["Retry-After"] == "1"
            r = await client.get(url, params={"symbol": sim.symbols()[0], "limit": 5})
            assert r.status_code == 418 and "Retry-After" in r.headers
            r = await client.get(url, params={"symbol": sim.symbols()[0], "limit": 5})
            assert r.status_code == 500
            r = await client.get(url, params={"symbol": sim.symbols()[0], "limit": 5})
            assert r.status_code == 200
        # the core client retries through them
        sim.faults.rest_errors = [429, 500]
        async with RestClient(sim.endpoints.rest_url, backoff=0.01) as rest:
            inst = {i.symbol: i for i in await BinanceSpot().fetch_instruments(rest)}[sim.symbols()[0]]
            snap = await BinanceSpot().fetch_snapshot(rest, inst, 100)
            assert rest.rate_limited == 1 and snap.sequence > 0


async def test_a_request_held_by_a_timeout_leaves_a_stale_snapshot_to_the_next_one():
    """The chaos suite arms ``stale_snapshot`` right after a REST timeout fault: the held
    request, answered after its client gave up, must not take it."""
    async with BinanceSimulator(SPOT, symbols=1, start="now") as sim:
        url = sim.endpoints.rest_url + "/api/v3/depth"
        params = {"symbol": sim.symbols()[0], "limit": 5}
        async with httpx.AsyncClient() as client:
            assert (await client.get(url, params=params)).status_code == 200  # one to go stale
            sim.faults.rest_timeout_s = 0.3
            sim.faults.rest_faults = ["timeout"]
            with pytest.raises(httpx.ReadTimeout):
                await client.get(url, params=params, timeout=0.1)
            sim.faults.stale_snapshot = 1  # armed while the held request still sleeps
            await anyio.sleep(0.4)  # ... and it has been answered, to nobody
            assert sim.faults.stale_snapshot == 1
            stale = (await client.get(url, params=params)).json()
            assert sim.faults.stale_snapshot == 0  # taken by the next request
            await anyio.sleep(0.05)  # the book moves on
            fresh = (await client.get(url, params=params)).json()
            assert stale["lastUpdateId"] < fresh["lastUpdateId"]
            assert (await client.get(url, params=params)).json()["lastUpdateId"] >= fresh["lastUpdateId"]


async def _stream(sim, venue, channels, n, fault=None):
    """n frames; ``fault`` is armed once a few frames went through (so the faulty frame
    is in the middle of what the client sees)."""
    async with connect(sim.endpoints.ws_url) as ws:
        await subscribe(ws, venue, channels)
        frames = []
        with anyio.move_on_after(3):
            while len(frames) < n:
                frames.append(await ws.recv())
                if len(frames) == 5 and fault:
                    setattr(sim.faults, fault, 1)
        return frames


@pytest.mark.parametrize("fault", ["malformed", "unknown_shape"])
async def test_bad_frame_faults_raise_protocol_error(fault):
    venue = BinanceSpot()
    async with BinanceSimulator(SPOT, symbols=1, rate=500) as sim:
        frames = await _stream(sim, venue, [f"{sim.symbols()[0].lower()}@depth@100ms"], 20, fault)
        errors = 0
        for f in frames:
            try:
                parse_frame("binance", f, 0)
            except ProtocolError:
                errors += 1
        assert errors == 1


@pytest.mark.parametrize(
    "fault, spec, venue",
    [
        ("gap", SPOT, BinanceSpot()),
        ("gap", USDM, BinanceUsdm()),
        ("duplicate", SPOT, BinanceSpot()),
        ("reorder", USDM, BinanceUsdm()),
    ],
)
async def test_sequence_faults_are_detected(fault, spec, venue):
    async with BinanceSimulator(spec, symbols=1, rate=500) as sim:
        frames = await _stream(sim, venue, [f"{sim.symbols()[0].lower()}@depth@100ms"], 30, fault)
        deltas = [e for f in frames for e in parse_frame(venue.name, f, 0) if isinstance(e, BookDelta)]
        policy = venue.sequence_policy(None)
        verdicts = [policy.next(a.sequence, b).value for a, b in itertools.pairwise(deltas)]
        if fault == "duplicate":
            assert verdicts.count("drop") == 1 and "gap" not in verdicts
        else:
            assert "gap" in verdicts


async def test_drop_reset_and_stall_are_observable():
    venue = BinanceSpot()
    async with BinanceSimulator(SPOT, symbols=1, rate=200) as sim:
        ch = [f"{sim.symbols()[0].lower()}@depth@100ms"]
        for fault in ("drop", "reset"):
            async with connect(sim.endpoints.ws_url) as ws:
                await subscribe(ws, venue, ch)
                await recv_json(ws)
                setattr(sim.faults, fault, 1)
                with pytest.raises(ConnectionClosed) as info:
                    with anyio.fail_after(3):
                        while True:
                            await ws.recv()
                if fault == "drop":
                    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
                else:
                    assert info.value.rcvd is None  # no close frame: TCP reset
        async with connect(sim.endpoints.ws_url) as ws:
            await subscribe(ws, venue, ch)
            await recv_json(ws)
            await recv_json(ws)
            sim.faults.stall = 0.6
            t0 = time.monotonic()
            gaps = []
            last = t0
            while time.monotonic() - t0 < 1.2:
                await recv_json(ws)
                now = time.monotonic()
                gaps.append(now - last)
                last = now
            assert max(gaps) >= 0.5


async def test_refuse_subscribe_and_request_rate_limit():
    venue = BinanceSpot()
    async with BinanceSimulator(SPOT, symbols=1, rate=10) as sim:
        sim.faults.refuse_subscribe = 1
        async with connect(sim.endpoints.ws_url) as ws:
            session = await subscribe(ws, venue, ["btcusdt@depth@100ms"])
            (ack,) = session.parse(await ws.recv(), 0)
            assert ack.request_id == 1 and ack.error and "refused" in ack.error
            with pytest.raises(ConnectionClosed):
                with anyio.fail_after(3):
                    for i in range(10):  # Binance: more than 5 messages a second closes
                        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10 + i}))
                    while True:
                        await ws.recv()
        assert sim.violations


@pytest.mark.parametrize("spec, venue", [(SPOT, BinanceSpot()), (USDM, BinanceUsdm())])
async def test_gap_resync_gives_exact_book(spec, venue):
    """Subscribe, snapshot over REST, BookSync; a gap is detected, a new snapshot heals
    it, and after a stall the book equals the simulator's truth exactly."""
    async with BinanceSimulator(spec, symbols=1, rate=300) as sim, RestClient(sim.endpoints.rest_url) as rest:
        inst = {i.symbol: i for i in await venue.fetch_instruments(rest)}[sim.symbols()[0]]
        sync = BookSync(venue.name, inst.symbol, venue.sequence_policy(inst), tick_size=inst.tick_size)
        gaps = resyncs = 0
        async with connect(sim.endpoints.ws_url) as ws:
            await subscribe(ws, venue, venue.channels(inst, "book"))
            snapshot_due = True
            deadline = time.monotonic() + 8
            armed = False
            while time.monotonic() < deadline:
                if snapshot_due:
                    snapshot_due = False
                    for e in sync.on_snapshot(await venue.fetch_snapshot(rest, inst, 1000)):
                        snapshot_due |= isinstance(e, GapDetected)
                        resyncs += isinstance(e, Synced)
                try:
                    with anyio.fail_after(0.4):
                        frame = await ws.recv()
                except TimeoutError:
                    break  # stalled: everything sent has been read
                for ev in parse_frame(venue.name, frame, 0):
                    if isinstance(ev, BookDelta):
                        for e in sync.on_delta(ev):
                            if isinstance(e, GapDetected):
                                gaps += 1
                                snapshot_due = True
                if sync.state is SyncState.SYNCED and not armed and sync.counters.applied > 20:
                    armed = True
                    sim.faults.gap = 1
                if (
                    armed
                    and gaps
                    and sync.state is SyncState.SYNCED
                    and sync.counters.applied > 200
                    and not sim.faults.stall
                ):
                    sim.faults.stall = 3.0
        assert gaps >= 1 and resyncs >= 2
        seq, bids, asks = sim.truth(inst.symbol)
        assert sync.state is SyncState.SYNCED and sync.last_sequence == seq
        got_bids, got_asks = sync.book.levels()
        # the book keeps only the price range its snapshot vouches for (levels refilled
        # beyond the snapshot's deepest price are outside it): compare within that range
        low, high = Decimal(got_bids[-1][0]), Decimal(got_asks[-1][0])
        assert len(got_bids) > 900 and len(got_asks) > 900
        assert [tuple(x) for x in got_bids] == [tuple(x) for x in bids if Decimal(x[0]) >= low]
        assert [tuple(x) for x in got_asks] == [tuple(x) for x in asks if Decimal(x[0]) <= high]


async def test_recording_replay_serves_recorded_frames_and_snapshots(recorded):
    venue = BinanceSpot()
    async with BinanceSimulator(SPOT, recording=str(recorded / "BINANCE")) as sim:
        assert sim.symbols() == ["BLZETH", "LRCBTC", "NKNUSDT", "RUNEEUR"]
        async with RestClient(sim.endpoints.rest_url) as rest:
            instruments = {i.symbol: i for i in await venue.fetch_instruments(rest)}
            assert len(instruments) == 1695  # the recorded exchangeInfo, not the fixture
            nkn = instruments["NKNUSDT"]
            snap = await venue.fetch_snapshot(rest, nkn, 1000)  # before the replay starts: as recorded
            assert snap.sequence == 499869752
            channels = [c for s in sim.symbols() for f in ("book", "top") for c in venue.channels(instruments[s], f)]
            async with connect(sim.endpoints.ws_url) as ws:
                await subscribe(ws, venue, channels)
                got = []
                with anyio.move_on_after(5):
                    while len(got) < 262:
                        got.append(await ws.recv())
            assert got[0] == '{"result":null,"id":1}'
            assert len(got) == 1 + 177 + 84  # depth + bookTicker frames; kline/aggTrade not subscribed
            seq, bids, _ = sim.truth("NKNUSDT")
            later = await venue.fetch_snapshot(rest, nkn, 1000)
            assert later.sequence == seq > 499869752 and later.bids == bids[:1000]


# -- documented client-message limits -------------------------------------------------------
# Binance market streams: at most 5 (spot) / 10 (futures) incoming messages per second per
# connection, where a PING frame, a PONG frame and a JSON control message each count; a
# connection beyond it is closed.


async def _send_kind(ws, kind: str, request_id: int) -> None:
    if kind == "ping":
        await ws.ping(str(request_id))  # distinct payloads: websockets refuses a duplicate
    elif kind == "pong":
        await ws.pong(str(request_id))  # unsolicited pongs are allowed, and counted
    else:
        await ws.send(
            json.dumps({"method": "SUBSCRIBE", "params": [f"s{request_id}usdt@depth@100ms"], "id": request_id})
        )


async def _closed_by_server(ws) -> int:
    with pytest.raises(ConnectionClosed) as info:
        with anyio.fail_after(5):
            while True:
                await ws.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code


@pytest.mark.parametrize("kinds", [["ping"] * 6, ["subscribe"] * 6, ["pong"] * 6, ["subscribe", "ping", "pong"] * 2])
async def test_six_messages_within_a_second_close_a_spot_connection(kinds):
    async with BinanceSimulator(SPOT, symbols=1, rate=10) as sim:
        async with connect(sim.endpoints.ws_url, ping_interval=None) as ws:
            for i, kind in enumerate(kinds, start=1):
                await _send_kind(ws, kind, i)
            assert await _closed_by_server(ws) == 1008
        (violation,) = sim.violations
        assert sim.limit_disconnects == [violation]
        assert violation.limit == "messages_per_second" and violation.detail.startswith("6 messages")
        # the message over the limit is never processed
        assert not any('"id": 6' in f for f in sim.client_frames)


@pytest.mark.parametrize("kind", ["ping", "subscribe"])
async def test_four_messages_a_second_keep_a_spot_connection_open(kind):
    async with BinanceSimulator(SPOT, symbols=1, rate=10) as sim:
        async with connect(sim.endpoints.ws_url, ping_interval=None) as ws:
            request_id = 0
            for round_ in range(3):  # 12 messages in all, never more than 4 in a second
                if round_:
                    await anyio.sleep(1.2)
                pongs = []
                for _ in range(4):
                    request_id += 1
                    if kind == "ping":
                        pongs.append(await ws.ping(str(request_id)))
                    else:
                        await _send_kind(ws, kind, request_id)
                with anyio.fail_after(5):
                    for pong in pongs:
                        await pong
                    if kind == "subscribe":
                        acks = [await recv_json(ws) for _ in range(4)]
                        assert [a["id"] for a in acks] == list(range(request_id - 3, request_id + 1))
        assert sim.violations == [] and sim.limit_disconnects == []
        counted = sim.client_messages["ping"] if kind == "ping" else sim.client_messages["text"]
        assert counted == 12


@pytest.mark.parametrize("spec", [USDM, COINM])
async def test_a_futures_connection_allows_ten_messages_a_second(spec):
    async with BinanceSimulator(spec, symbols=1, rate=10) as sim:
        async with connect(sim.endpoints.ws_url, ping_interval=None) as ws:
            pongs = [await ws.ping(str(i)) for i in range(10)]
            with anyio.fail_after(5):
                for pong in pongs:
                    await pong
            assert sim.violations == []
            await ws.ping("11")
            assert await _closed_by_server(ws) == 1008
        (violation,) = sim.limit_disconnects
        assert violation.detail.startswith("11 messages") and "limit 10" in violation.detail


async def test_stream_limit_refuses_a_subscribe_and_closes_an_oversized_url():
    async with BinanceSimulator(USDM, symbols=1, rate=10) as sim:
        streams = [f"s{i}usdt@depth@100ms" for i in range(USDM.max_streams_per_connection + 1)]
        async with connect(sim.endpoints.ws_url, ping_interval=None) as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": streams, "id": 1}))
            answer = await recv_json(ws)
            assert answer["id"] == 1 and answer["error"]["code"] == 2
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": streams[:-1], "id": 2}))
            assert await recv_json(ws) == {"result": None, "id": 2}  # exactly the limit is fine
        (refused,) = sim.violations
        assert refused.limit == "streams_per_connection" and not refused.disconnected
        async with connect(sim.endpoints.ws_url + "?streams=" + "/".join(streams), ping_interval=None) as ws:
            assert await _closed_by_server(ws) == 1008
        assert [v.limit for v in sim.limit_disconnects] == ["streams_per_connection"]
