"""The simulator with a real WebSocket client driven by DeribitSession + BookSync."""

from __future__ import annotations

import itertools
import json
import time

import anyio
import pytest
from spiceflow_deribit.session import DeribitSession
from spiceflow_deribit.simulator import DeribitSimulator
from spiceflow_deribit.sync import POLICY
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from spiceflow_core.book import BookSync, GapDetected, SyncState
from spiceflow_core.model import BookDelta, BookSnapshot, Heartbeat, SubscribeAck, TopOfBook, Trade
from spiceflow_core.plugin.contract import ProtocolError


class Client:
    """A minimal pipeline: session + books, answering heartbeats at once and
    resubscribing a book on a gap (Deribit's resync)."""

    def __init__(self, ws, session: DeribitSession | None = None, answer_heartbeats: bool = True) -> None:
        self.ws = ws
        self.session = session or DeribitSession()
        self.answer = answer_heartbeats
        self.books: dict[str, BookSync] = {}
        self.acks: list[SubscribeAck] = []
        self.events: list = []
        self.protocol_errors = 0
        self.gaps = 0
        self.channel_of: dict[str, str] = {}

    async def send_all(self, requests) -> None:
        for r in requests:
            await self.ws.send(r.frame)

    async def subscribe(self, channels: list[str]) -> None:
        for c in channels:
            if c.startswith("book."):
                self.channel_of[c.split(".")[1]] = c
        await self.send_all(self.session.subscribe(channels))

    async def run(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            async for frame in self.ws:
                try:
                    events = self.session.parse(frame, time.monotonic_ns())
                except ProtocolError:
                    self.protocol_errors += 1
                    continue
                for e in events:
                    self.events.append(e)
                    if isinstance(e, Heartbeat) and e.reply and self.answer:
                        await self.ws.send(e.reply)
                    elif isinstance(e, SubscribeAck):
                        self.acks.append(e)
                    elif isinstance(e, (BookSnapshot, BookDelta)):
                        sync = self.books.setdefault(e.symbol, BookSync("deribit", e.symbol, POLICY))
                        out = sync.on_snapshot(e) if isinstance(e, BookSnapshot) else sync.on_delta(e)
                        if any(isinstance(x, GapDetected) for x in out):
                            self.gaps += 1
                            channel = self.channel_of[e.symbol]
                            await self.send_all(self.session.unsubscribe([channel]))
                            await self.send_all(self.session.subscribe([channel]))

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def assert_exact(sim: DeribitSimulator, client: Client, symbol: str) -> None:
    sync = client.books[symbol]
    assert sync.state is SyncState.SYNCED
    seq, bids, asks = sim.truth(symbol)
    assert sync.last_sequence == seq
    assert sync.book.levels() == (bids, asks)


async def drain_until_closed(client: Client) -> None:
    with anyio.fail_after(2):
        try:
            async for _ in client.ws:
                pass
        except (ConnectionClosed, OSError):
            pass


async def open_client(sim: DeribitSimulator, **kw) -> Client:
    ws = await connect(sim.endpoints.ws_url)
    client = Client(ws, **kw)
    await client.send_all(client.session.on_open())
    return client


@pytest.mark.anyio
async def test_generator_subscribe_snapshot_then_chained_changes():
    async with DeribitSimulator(instruments=3, update_interval=0.02, seed=1) as sim:
        client = await open_client(sim)
        symbols = sim.symbols()
        channels = [f"{k}.{s}.100ms" for s in symbols for k in ("book", "ticker", "trades")]
        await client.subscribe(channels)
        await client.run(1.0)
        ok = [a for a in client.acks if a.channels]
        assert sorted(c for a in ok for c in a.channels) == sorted(channels)
        first = {}
        for e in client.events:
            if isinstance(e, (BookSnapshot, BookDelta)):
                first.setdefault(e.symbol, type(e))
        assert first == {s: BookSnapshot for s in symbols}
        deltas = client.of(BookDelta)
        assert len(deltas) > 30 and client.gaps == 0
        for s in symbols:
            chain = [d for d in deltas if d.symbol == s]
            assert all(a.sequence == b.prev_sequence for a, b in itertools.pairwise(chain))
            assert not client.books[s].book.is_crossed()
        # tickers are derived from the truth: the last ticker equals the last book top
        tops = client.of(TopOfBook)
        assert tops and client.of(Trade)
        sim.paused = True
        await client.run(0.2)
        await client.ws.close()
        # books equal the exchange's truth as of the last notification sent
        for s in symbols:
            assert_exact(sim, client, s)


@pytest.mark.anyio
async def test_heartbeats_answered_within_a_second():
    async with DeribitSimulator(instruments=1, heartbeat_interval=0.2) as sim:
        client = await open_client(sim)
        await client.run(1.5)
        assert len(sim.heartbeats) >= 5
        assert all(h.delay is not None and h.delay < 1.0 for h in sim.heartbeats[:-1])
        assert sim.closed_for_heartbeat == []
        assert json.loads(sim.requests("public/set_heartbeat")[0]["params"]["interval"].__str__()) == 10
        await client.ws.close()


@pytest.mark.anyio
async def test_unanswered_test_request_closes_connection():
    async with DeribitSimulator(instruments=1, heartbeat_interval=0.2) as sim:
        client = await open_client(sim, answer_heartbeats=False)
        await drain_until_closed(client)
        assert sim.closed_for_heartbeat == [1]
        assert client.ws.close_reason == "heartbeat test_request not answered"


@pytest.mark.anyio
async def test_set_heartbeat_below_ten_seconds_is_an_error():
    async with DeribitSimulator(instruments=1) as sim, connect(sim.endpoints.ws_url) as ws:
        await ws.send('{"jsonrpc":"2.0","id":1,"method":"public/set_heartbeat","params":{"interval":5}}')
        (ack,) = DeribitSession().parse(await ws.recv(), 0)
        assert ack.error.startswith("-32602: Invalid params")


@pytest.mark.anyio
async def test_unknown_instrument_and_raw_without_auth_are_errors():
    async with DeribitSimulator(instruments=1) as sim:
        client = await open_client(sim)
        await client.subscribe(["book.NOPE-PERPETUAL.100ms"])
        await client.subscribe(["book.BTC-PERPETUAL.raw"])
        await client.run(0.3)
        errors = [a.error for a in client.acks if a.error]
        assert errors[0].startswith("-32602: Invalid params") and "NOPE-PERPETUAL" in errors[0]
        assert errors[1].startswith("13021: not_permitted")
        await client.ws.close()


@pytest.mark.anyio
async def test_auth_then_raw_channel():
    from spiceflow_deribit.config import Credentials

    async with DeribitSimulator(instruments=1, credentials=("id", "secret"), update_interval=0.02) as sim:
        client = await open_client(sim, session=DeribitSession(credentials=Credentials("id", "secret")))
        await client.subscribe(["book.BTC-PERPETUAL.raw"])
        await client.run(0.4)
        assert not [a.error for a in client.acks if a.error]
        assert client.of(BookSnapshot) and client.of(BookDelta)
        await client.ws.close()


@pytest.mark.anyio
async def test_credit_rate_limit_answers_too_many_requests():
    async with DeribitSimulator(instruments=1) as sim:
        client = await open_client(sim)
        for _ in range(12):  # burst capacity is 10 requests
            await client.subscribe(["ticker.BTC-PERPETUAL.100ms"])
        await client.run(0.3)
        limited = [a for a in client.acks if a.error]
        assert len(limited) == 2 and all(DeribitSession.is_rate_limited(a) for a in limited)
        assert limited[0].error == "10028: too_many_requests" and sim.rate_limited == 2
        assert [v.limit for v in sim.violations] == ["subscribe_credits"] * 2
        assert sim.limit_disconnects == []  # close_on_rate_limit=False: the connection stays
        await anyio.sleep(0.35)  # credits refill at 10000/s: one request per 0.3 s
        await client.send_all([client.session.resend(limited[0].request_id)])
        await client.run(0.2)
        assert not client.acks[-1].error
        await client.ws.close()


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["gap", "duplicate", "reorder"])
async def test_book_faults_heal_to_an_exact_book(fault):
    async with DeribitSimulator(instruments=1, update_interval=0.02, seed=2) as sim:
        client = await open_client(sim)
        if fault == "reorder":
            sim.faults.reorder = 1
        await client.subscribe(["book.BTC-PERPETUAL.100ms"])
        await client.run(0.3)
        setattr(sim.faults, fault, 1) if fault != "reorder" else None
        await client.run(0.5)
        assert getattr(sim.faults, fault) == 0
        sync = client.books["BTC-PERPETUAL"]
        if fault == "gap":
            assert client.gaps == 1 and len(client.of(BookSnapshot)) == 2
        else:
            assert client.gaps == 0 and sync.counters.dropped >= 1
        sim.paused = True
        await client.run(0.2)
        await client.ws.close()
        assert_exact(sim, client, "BTC-PERPETUAL")


@pytest.mark.anyio
async def test_malformed_and_unknown_shape_frames_are_protocol_errors():
    async with DeribitSimulator(instruments=1) as sim:
        client = await open_client(sim)
        await anyio.sleep(0.05)
        sim.faults.malformed = 1
        sim.faults.unknown_shape = 1
        await client.run(0.3)
        assert client.protocol_errors == 2
        await client.ws.close()


@pytest.mark.anyio
async def test_refuse_subscribe():
    async with DeribitSimulator(instruments=1) as sim:
        client = await open_client(sim)
        sim.faults.refuse_subscribe = 1
        await client.subscribe(["ticker.BTC-PERPETUAL.100ms"])
        await client.subscribe(["ticker.BTC-PERPETUAL.100ms"])
        await client.run(0.3)
        subs = [a for a in client.acks if a.request_id >= 2]
        assert subs[0].error.startswith("11050: bad_request") and subs[1].error is None
        await client.ws.close()


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["drop", "reset"])
async def test_drop_and_reset_end_the_connection(fault):
    async with DeribitSimulator(instruments=1) as sim:
        client = await open_client(sim)
        await anyio.sleep(0.05)
        setattr(sim.faults, fault, 1)
        await drain_until_closed(client)
        if fault == "drop":
            assert client.ws.close_code == 1001
        else:
            assert client.ws.close_code == 1006  # abnormal closure: no close frame


@pytest.mark.anyio
async def test_stall_and_skip_heartbeats():
    async with DeribitSimulator(instruments=1, update_interval=0.02, heartbeat_interval=0.1) as sim:
        client = await open_client(sim)
        await client.subscribe(["book.BTC-PERPETUAL.100ms"])
        await client.run(0.2)
        # a stall well longer than the silence looked at: a loaded machine may start
        # looking late
        sim.faults.stall = 1.5
        await anyio.sleep(0.05)
        n = len(client.events)
        await client.run(0.35)
        assert len(client.events) == n  # silence
        await client.run(1.5)
        assert len(client.events) > n
        before = len(sim.heartbeats)
        sim.faults.skip_heartbeats = 3
        await client.run(0.25)
        assert sim.faults.skip_heartbeats < 3 and sim.closed_for_heartbeat == []
        assert len(sim.heartbeats) <= before + 1
        await client.ws.close()


@pytest.mark.anyio
async def test_recorded_session_replayed_on_100ms_channels(recording):
    async with DeribitSimulator(recording=recording, speed=100.0) as sim:
        client = await open_client(sim)
        symbols = sim.symbols()
        assert len(symbols) == 10
        await client.subscribe([f"{k}.{s}.100ms" for s in symbols for k in ("book", "ticker")])
        with anyio.fail_after(5):
            while not sim.replay_done.is_set():
                await client.run(0.1)
        await client.run(0.1)
        assert len(client.of(BookSnapshot)) == 10 and len(client.of(BookDelta)) == 36
        assert len(client.of(TopOfBook)) == 89 and client.gaps == 0
        await client.ws.close()
        for s in symbols:
            assert_exact(sim, client, s)
        # a late subscriber gets a snapshot built from the replayed book
        late = await open_client(sim)
        await late.subscribe(["book.BTC-24SEP21-8000-P.100ms"])
        await late.run(0.2)
        assert_exact(sim, late, "BTC-24SEP21-8000-P")
        await late.ws.close()


@pytest.mark.anyio
async def test_credits_exhausted_answer_10028_then_close_like_deribit():
    """Deribit's rate-limits article: a request arriving without credits gets
    ``too_many_requests`` (10028) and the session is terminated."""
    async with DeribitSimulator(instruments=1, close_on_rate_limit=True) as sim:
        client = await open_client(sim)
        for _ in range(11):  # burst capacity is 10 requests
            await client.subscribe(["ticker.BTC-PERPETUAL.100ms"])
        with pytest.raises(ConnectionClosed) as info:
            with anyio.fail_after(5):
                async for frame in client.ws:
                    client.acks.extend(e for e in client.session.parse(frame, 0) if isinstance(e, SubscribeAck))
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        refused = [a for a in client.acks if a.error]
        assert len(refused) == 1 and DeribitSession.is_rate_limited(refused[0])  # answered before the close
        (violation,) = sim.limit_disconnects
        assert sim.violations == [violation] and violation.limit == "subscribe_credits"


@pytest.mark.anyio
async def test_websocket_pings_cost_no_credits():
    """Deribit's credits are charged per API request; ping and pong frames are free."""
    async with DeribitSimulator(instruments=1, close_on_rate_limit=True) as sim:
        async with connect(sim.endpoints.ws_url, ping_interval=None) as ws:
            pongs = [await ws.ping(str(i)) for i in range(30)]
            with anyio.fail_after(5):
                for pong in pongs:
                    await pong
            await ws.send(
                '{"jsonrpc":"2.0","id":1,"method":"public/subscribe","params":{"channels":["ticker.BTC-PERPETUAL.100ms"]}}'
            )
            with anyio.fail_after(5):
                while "id" not in (answer := json.loads(await ws.recv())):
                    pass
            assert answer["result"] == ["ticker.BTC-PERPETUAL.100ms"]
        assert sim.violations == []
