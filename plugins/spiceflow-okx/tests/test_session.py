"""The frames the session sends and how it matches OKX's per-channel acknowledgements."""

from __future__ import annotations

import msgspec
import pytest
from spiceflow_okx import config
from spiceflow_okx.session import OkxSession

from spiceflow_core.model import BookDelta, BookSnapshot, Heartbeat, SubscribeAck

BOOKS_BTC, BOOKS_ETH = "books:BTC-USDT", "books:ETH-USDT"


def ack(event: str, channel: str, inst: str) -> str:
    return f'{{"event":"{event}","arg":{{"channel":"{channel}","instId":"{inst}"}},"connId":"a4d3ae55"}}'


def test_subscribe_frame_is_the_documented_op_request():
    [request] = OkxSession().subscribe([BOOKS_BTC, "bbo-tbt:ETH-USDT"])
    assert msgspec.json.decode(request.frame) == {
        "op": "subscribe",
        "args": [{"channel": "books", "instId": "BTC-USDT"}, {"channel": "bbo-tbt", "instId": "ETH-USDT"}],
    }
    assert request.request_id == 1 and request.channels == [BOOKS_BTC, "bbo-tbt:ETH-USDT"]


def test_one_ack_per_request_once_every_channel_is_confirmed():
    session = OkxSession()
    [request] = session.subscribe([BOOKS_BTC, BOOKS_ETH])
    assert session.parse(ack("subscribe", "books", "ETH-USDT"), 0) == []
    [done] = session.parse(ack("subscribe", "books", "BTC-USDT"), 0)
    assert done == SubscribeAck(venue="okx", request_id=request.request_id, channels=[BOOKS_BTC, BOOKS_ETH])
    assert not session.pending


def test_unsubscribe_and_subscribe_of_one_channel_are_told_apart():
    session = OkxSession()
    [unsub] = session.unsubscribe([BOOKS_BTC])
    [sub] = session.subscribe([BOOKS_BTC])
    [a] = session.parse(ack("unsubscribe", "books", "BTC-USDT"), 0)
    [b] = session.parse(ack("subscribe", "books", "BTC-USDT"), 0)
    assert (a.request_id, b.request_id) == (unsub.request_id, sub.request_id)


def test_an_error_refuses_the_oldest_pending_request():
    session = OkxSession()
    [first] = session.subscribe([BOOKS_BTC])
    [second] = session.subscribe([BOOKS_ETH])
    [refused] = session.parse('{"event":"error","code":"60018","msg":"doesn\'t exist","connId":"x"}', 0)
    assert refused.request_id == first.request_id and refused.error == "60018: doesn't exist"
    assert list(session.pending) == [second.request_id]


def test_requests_are_split_below_the_size_limits():
    session = OkxSession()
    channels = [f"books:SYM{i}-USDT" for i in range(config.ARGS_PER_REQUEST + 1)]
    requests = session.subscribe(channels)
    assert [len(r.channels) for r in requests] == [config.ARGS_PER_REQUEST, 1]
    assert all(len(r.frame.encode()) < config.MAX_REQUEST_BYTES for r in requests)
    with pytest.raises(ValueError, match="64 KB"):
        OkxSession(args_per_request=5000).subscribe([f"books:{'X' * 20}{i}" for i in range(5000)])


def test_keepalive_is_the_text_ping_and_pong_is_the_heartbeat():
    session = OkxSession()
    assert session.sends_heartbeats and session.client_ping() == "ping"
    [first] = session.on_open()
    assert first.frame == "ping" and first.request_id is None
    assert isinstance(session.parse("pong", 0)[0], Heartbeat)


def test_book_messages_without_seq_id_are_numbered_in_order():
    session = OkxSession()
    snap = '{"arg":{"channel":"books","instId":"X-Y"},"action":"snapshot","data":[{"asks":[],"bids":[["1","2","0","1"]],"ts":"1","checksum":5}]}'
    upd = '{"arg":{"channel":"books","instId":"X-Y"},"action":"update","data":[{"asks":[],"bids":[],"ts":"2","checksum":7}]}'
    [s] = session.parse(snap, 0)
    [u1] = session.parse(upd, 0)
    [u2] = session.parse(upd, 0)
    assert isinstance(s, BookSnapshot) and isinstance(u1, BookDelta)
    assert (s.sequence, u1.prev_sequence, u1.sequence, u2.prev_sequence, u2.sequence) == (1, 1, 2, 2, 3)
