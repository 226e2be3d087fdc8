"""Parser and session against every frame of the recorded session and crafted frames."""

from __future__ import annotations

import collections
import json

import msgspec
import pytest
from spiceflow_deribit import config
from spiceflow_deribit.parsing import format_decimal, parse_frame
from spiceflow_deribit.session import DeribitSession

from spiceflow_core.book import OrderBook
from spiceflow_core.model import BookDelta, BookSnapshot, Heartbeat, SubscribeAck, TopOfBook, Trade
from spiceflow_core.plugin.contract import ProtocolError
from spiceflow_core.recording.capture import read_capture


def test_every_recorded_frame_parses(recording):
    counts: collections.Counter[str] = collections.Counter()
    for rec in read_capture(recording):
        if rec.kind != "recv":
            continue
        for event in parse_frame(rec.body, 1):
            counts["BookDelta" if isinstance(event, BookDelta) else type(event).__name__] += 1
    assert counts == {"SubscribeAck": 1, "BookSnapshot": 10, "BookDelta": 36, "TopOfBook": 89}


def test_recorded_snapshot_and_change_exact():
    snap = parse_frame(
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.ETH-30JUL21-2800-C.raw","data":'
        '{"type":"snapshot","timestamp":1626993723632,"instrument_name":"ETH-30JUL21-2800-C","change_id":13169025645,'
        '"bids":[["new",0.0015,4714.0],["new",0.0005,1.0]],"asks":[["new",0.0025,873.0]]}}}',
        7,
    )[0]
    assert isinstance(snap, BookSnapshot)
    assert (snap.symbol, snap.sequence, snap.depth_limit, snap.exchange_ts_ms, snap.recv_ts_ns) == (
        "ETH-30JUL21-2800-C",
        13169025645,
        None,
        1626993723632,
        7,
    )
    assert snap.bids == [("0.0015", "4714.0"), ("0.0005", "1.0")] and snap.asks == [("0.0025", "873.0")]
    delta = parse_frame(
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms","data":'
        '{"type":"change","timestamp":1,"instrument_name":"BTC-PERPETUAL","prev_change_id":10,"change_id":12,'
        '"bids":[["delete",43250.5,0.0],["new",43250.0,1e-05]],"asks":[["change",43251.5,120.0]]}}}',
        0,
    )[0]
    assert isinstance(delta, BookDelta)
    assert (delta.first_sequence, delta.sequence, delta.prev_sequence) == (12, 12, 10)
    # the parser keeps each number's JSON text; the book writes exponents out exactly
    assert delta.bids == [("43250.5", "0"), ("43250.0", "1e-05")]
    assert delta.asks == [("43251.5", "120.0")]
    book = OrderBook()
    book.apply_snapshot([("43250.5", "3.0")], [("43251.5", "1.0")])
    book.apply(delta.bids, delta.asks)
    assert book.levels() == ([("43250.0", "0.00001")], [("43251.5", "120.0")])


def test_decimals_never_go_through_float():
    # 0.1 + 0.2 style traps and exponents: text in, the same decimal out
    for text, expected in [
        ("0.0005", "0.0005"),
        ("43250.5", "43250.5"),
        ("1e-05", "0.00001"),
        ("0.30000000000000004441", "0.30000000000000004441"),
        ("1E+3", "1000"),
    ]:
        frame = (
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.X.100ms","data":'
            '{"timestamp":1,"instrument_name":"X","best_bid_price":' + text + ',"best_bid_amount":1,'
            '"best_ask_price":null,"best_ask_amount":null}}}'
        )
        top = parse_frame(frame, 0)[0]
        assert isinstance(top, TopOfBook)
        assert top.bid_price == expected and top.ask_price is None
    assert (
        format_decimal(msgspec.json.decode(b"0.1234567890123456789", type=__import__("decimal").Decimal))
        == "0.1234567890123456789"
    )


def test_empty_ticker_side_is_none():
    frame = (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.X.raw","data":'
        '{"timestamp":1,"instrument_name":"X","best_bid_price":0.0,"best_bid_amount":0.0,'
        '"best_ask_price":0.0025,"best_ask_amount":873.0}}}'
    )
    top = parse_frame(frame, 0)[0]
    assert (top.bid_price, top.bid_size, top.ask_price, top.ask_size) == (None, None, "0.0025", "873.0")


def test_trades():
    frame = (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms","data":'
        '[{"trade_seq":1,"trade_id":"ETH-1","timestamp":5,"price":43250.5,"amount":10.0,"direction":"sell",'
        '"instrument_name":"BTC-PERPETUAL","tick_direction":0}]}}'
    )
    (trade,) = parse_frame(frame, 0)
    assert isinstance(trade, Trade)
    assert (trade.trade_id, trade.price, trade.size, trade.side, trade.exchange_ts_ms) == (
        "ETH-1",
        "43250.5",
        "10.0",
        "sell",
        5,
    )


def test_jsonrpc_error_surfaces_code_and_message():
    (ack,) = parse_frame('{"jsonrpc":"2.0","id":7,"error":{"code":10028,"message":"too_many_requests"}}', 0)
    assert isinstance(ack, SubscribeAck) and ack.request_id == 7
    assert ack.error == "10028: too_many_requests"
    (ack,) = parse_frame(
        '{"jsonrpc":"2.0","id":8,"error":{"code":-32602,"message":"Invalid params","data":{"param":"channels"}}}', 0
    )
    assert ack.error.startswith("-32602: Invalid params") and "channels" in ack.error


@pytest.mark.parametrize(
    "frame",
    [
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.',
        "not json",
        '{"jsonrpc":"2.0","surprise":1}',
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"mystery.X.raw","data":{}}}',
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.X.raw","data":{"type":"snapshot"}}}',
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.X.raw","data":{"type":"change","timestamp":1,'
        '"instrument_name":"X","change_id":2,"bids":[],"asks":[]}}}',
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.X.raw","data":{"type":"change","timestamp":1,'
        '"instrument_name":"X","change_id":2,"prev_change_id":1,"bids":[["maybe",1,1]],"asks":[]}}}',
        '{"jsonrpc":"2.0","method":"heartbeat"}',
        '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}',
    ],
)
def test_malformed_frames_raise_protocol_error(frame):
    with pytest.raises(ProtocolError):
        parse_frame(frame, 0)


def test_session_ids_batches_and_heartbeat_reply():
    session = DeribitSession()
    assert session.sends_heartbeats
    (hb,) = session.on_open()
    assert json.loads(hb.frame) == {
        "id": 1,
        "method": "public/set_heartbeat",
        "params": {"interval": 10},
        "jsonrpc": "2.0",
    }
    channels = [f"book.I{i}.100ms" for i in range(config.MAX_CHANNELS_PER_REQUEST * 2 + 5)]
    requests = session.subscribe(channels)
    assert [r.request_id for r in requests] == [2, 3, 4]
    assert [len(r.channels) for r in requests] == [config.MAX_CHANNELS_PER_REQUEST] * 2 + [5]
    assert [c for r in requests for c in json.loads(r.frame)["params"]["channels"]] == channels
    assert all(json.loads(r.frame)["method"] == "public/subscribe" for r in requests)
    (unsub,) = session.unsubscribe(channels[:3])
    assert unsub.request_id == 5 and json.loads(unsub.frame)["method"] == "public/unsubscribe"
    (beat,) = session.parse('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}', 3)
    assert isinstance(beat, Heartbeat) and beat.recv_ts_ns == 3
    assert json.loads(beat.reply) == {"id": 6, "method": "public/test", "params": {}, "jsonrpc": "2.0"}
    # the answer to our public/test is swallowed; a plain heartbeat needs no reply
    assert session.parse('{"jsonrpc":"2.0","id":6,"result":{"version":"1.2.26"}}', 0) == []
    (plain,) = session.parse('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}', 0)
    assert plain.reply is None
    (ack,) = session.parse('{"jsonrpc":"2.0","id":2,"result":["book.I0.100ms"]}', 0)
    assert ack.request_id == 2 and ack.channels == ["book.I0.100ms"] and ack.error is None


def test_session_rate_limited_request_can_be_resent():
    session = DeribitSession()
    (req,) = session.subscribe(["book.A.100ms", "ticker.A.100ms"])
    (ack,) = session.parse(
        '{"jsonrpc":"2.0","id":' + str(req.request_id) + ',"error":{"code":10028,"message":"too_many_requests"}}', 0
    )
    assert DeribitSession.is_rate_limited(ack)
    again = session.resend(req.request_id)
    assert again is not None and again.request_id == req.request_id + 1 and again.channels == req.channels


def test_credentials_auth_first_and_never_in_repr():
    creds = config.credentials_from_env({"DERIBIT_CLIENT_ID": "abc", "DERIBIT_CLIENT_SECRET": "s3cret"})
    assert creds is not None and "s3cret" not in repr(creds) and "s3cret" not in str(creds)
    assert config.credentials_from_env({"DERIBIT_CLIENT_ID": "abc"}) is None
    session = DeribitSession(credentials=creds)
    auth, hb = session.on_open()
    body = json.loads(auth.frame)
    assert body["method"] == "public/auth"
    assert body["params"] == {"grant_type": "client_credentials", "client_id": "abc", "client_secret": "s3cret"}
    assert json.loads(hb.frame)["method"] == "public/set_heartbeat"
    assert config.interval_for(creds) == "raw" and config.interval_for(None) == "100ms"


@pytest.mark.parametrize("text", ["43250.50", "0.30000000000000004441", "1.0", "123456789012345678.5", "1E+3"])
def test_book_numbers_keep_their_exact_json_text(text):
    entry = f'["new",{text},{text}]'
    frame = (
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.X.raw","data":{"type":"change",'
        '"timestamp":1,"instrument_name":"X","prev_change_id":1,"change_id":2,"bids":[' + entry + '],"asks":[]}}}'
    )
    (delta,) = parse_frame(frame, 0)
    assert delta.bids == [(text, text)]
