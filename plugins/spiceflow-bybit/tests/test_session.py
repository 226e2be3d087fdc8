"""The frames the session sends ("Connect" page) and how answers are matched."""

from __future__ import annotations

import msgspec
from spiceflow_bybit import config
from spiceflow_bybit.session import BybitSession

from spiceflow_core.plugin import Heartbeat, SubscribeAck


def decode(frame: str) -> dict:
    return msgspec.json.decode(frame)


def test_subscribe_and_unsubscribe_frames():
    session = BybitSession("bybit-linear")
    [request] = session.subscribe(["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"])
    assert decode(request.frame) == {
        "op": "subscribe",
        "req_id": "1",
        "args": ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"],
    }
    assert request.request_id == 1 and request.channels == ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]
    [again] = session.unsubscribe(["publicTrade.BTCUSDT"])
    assert decode(again.frame) == {"op": "unsubscribe", "req_id": "2", "args": ["publicTrade.BTCUSDT"]}


def test_spot_requests_are_split_at_ten_args():
    session = BybitSession("bybit-spot", args_per_request=config.SPOT.args_per_request)
    requests = session.subscribe([f"publicTrade.S{i}USDT" for i in range(23)])
    assert [len(r.channels) for r in requests] == [10, 10, 3]
    assert [decode(r.frame)["req_id"] for r in requests] == ["1", "2", "3"]


def test_answers_match_by_req_id():
    session = BybitSession("bybit-linear")
    first, second = session.subscribe(["a"]) + session.subscribe(["b"])
    [ack] = session.parse('{"success":true,"ret_msg":"","conn_id":"c","req_id":"2","op":"subscribe"}', 0)
    assert ack == SubscribeAck(venue="bybit-linear", request_id=second.request_id, channels=["b"])
    [refused] = session.parse(
        '{"success":false,"ret_msg":"error:already subscribed,topic:a","conn_id":"c","req_id":"1","op":"subscribe"}',
        0,
    )
    assert refused.request_id == first.request_id and refused.error == "error:already subscribed,topic:a"
    assert session.pending == {}


def test_answers_without_req_id_match_the_oldest_request_of_their_op():
    session = BybitSession("bybit-spot")
    sub = session.subscribe(["a"])[0]
    unsub = session.unsubscribe(["b"])[0]
    [ack] = session.parse('{"success":true,"ret_msg":"","conn_id":"c","req_id":"","op":"unsubscribe"}', 0)
    assert ack.request_id == unsub.request_id and ack.channels == ["b"]
    [ack] = session.parse('{"success":true,"ret_msg":"subscribe","conn_id":"c","op":"subscribe"}', 0)
    assert ack.request_id == sub.request_id
    # an answer nobody waits for is dropped, not reported
    assert session.parse('{"success":true,"ret_msg":"","conn_id":"c","req_id":"9","op":"subscribe"}', 0) == []


def test_ids_restart_with_each_session():
    assert BybitSession("v").subscribe(["x"])[0].request_id == BybitSession("v").subscribe(["y"])[0].request_id == 1


def test_ping_on_connect_and_periodically_and_the_pong_is_a_heartbeat():
    session = BybitSession("bybit-linear")
    assert session.sends_heartbeats is True
    ping = session.client_ping()
    assert ping is not None and decode(ping)["op"] == "ping"
    [first] = session.on_open()
    assert first.frame == ping and first.request_id is None
    for pong in (
        '{"success":true,"ret_msg":"pong","conn_id":"465772b1","req_id":"","op":"ping"}',
        '{"success":true,"ret_msg":"pong","conn_id":"0970e817","op":"ping"}',
    ):
        [hb] = session.parse(pong, 0)
        assert isinstance(hb, Heartbeat)
