"""Requests and their acknowledgements: Kraken answers each symbol of a request; the
session reports one SubscribeAck per request once every symbol is answered."""

from __future__ import annotations

import msgspec
from spiceflow_kraken.session import KrakenSession

from spiceflow_core.plugin import Heartbeat, SubscribeAck


def answer(method: str, channel: str, symbol: str, req_id: int | None, error: str | None = None) -> str:
    msg: dict = {"method": method, "success": error is None, "time_in": "x", "time_out": "y"}
    if error is None:
        msg["result"] = {"channel": channel, "symbol": symbol}
    else:
        msg |= {"error": error, "symbol": symbol}
    if req_id is not None:
        msg["req_id"] = req_id
    return msgspec.json.encode(msg).decode()


def test_requests_group_by_channel_and_batch_symbols():
    session = KrakenSession(book_depth=100, max_symbols_per_request=2)
    requests = session.subscribe(["book:BTC/USD", "book:ETH/USD", "book:SOL/USD", "trade:BTC/USD", "ticker:BTC/USD"])
    frames = [msgspec.json.decode(r.frame) for r in requests]
    assert frames[0] == {
        "method": "subscribe",
        "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"], "depth": 100},
        "req_id": 1,
    }
    assert frames[1]["params"] == {"channel": "book", "symbol": ["SOL/USD"], "depth": 100}
    assert frames[2]["params"] == {"channel": "trade", "symbol": ["BTC/USD"]}  # depth only for book
    assert frames[3]["params"] == {"channel": "ticker", "symbol": ["BTC/USD"]}
    assert [r.request_id for r in requests] == [1, 2, 3, 4]
    assert requests[0].channels == ["book:BTC/USD", "book:ETH/USD"]
    [unsub] = KrakenSession().unsubscribe(["book:BTC/USD"])
    assert msgspec.json.decode(unsub.frame)["method"] == "unsubscribe"


def test_one_ack_per_request_once_every_symbol_answered():
    session = KrakenSession()
    session.subscribe(["book:BTC/USD", "book:ETH/USD"])
    assert session.parse(answer("subscribe", "book", "BTC/USD", 1), 0) == []
    [ack] = session.parse(answer("subscribe", "book", "ETH/USD", 1), 0)
    assert ack == SubscribeAck(venue="kraken", request_id=1, channels=["book:BTC/USD", "book:ETH/USD"])
    assert session.pending == {}
    assert session.parse(answer("subscribe", "book", "ETH/USD", 1), 0) == []  # a late duplicate


def test_answers_without_req_id_are_matched_by_channel_and_symbol():
    session = KrakenSession()
    session.subscribe(["book:BTC/USD"])
    session.unsubscribe(["trade:ETH/USD"])
    [ack] = session.parse(answer("unsubscribe", "trade", "ETH/USD", None), 0)
    assert ack.request_id == 2 and ack.error is None
    [ack] = session.parse(answer("subscribe", "book", "BTC/USD", None), 0)
    assert ack.request_id == 1


def test_a_refused_symbol_refuses_the_request_with_its_reason():
    session = KrakenSession()
    session.subscribe(["book:BTC/USD", "book:XYZ/USD"])
    assert session.parse(answer("subscribe", "book", "XYZ/USD", 1, "Currency pair not supported XYZ/USD"), 0) == []
    [ack] = session.parse(answer("subscribe", "book", "BTC/USD", 1), 0)
    assert ack.error == "XYZ/USD: Currency pair not supported XYZ/USD"


def test_already_in_the_wanted_state_counts_as_accepted():
    session = KrakenSession()
    session.subscribe(["book:BTC/USD"])
    [ack] = session.parse(answer("subscribe", "book", "BTC/USD", 1, "Already subscribed"), 0)
    assert ack.error is None
    session.unsubscribe(["book:BTC/USD"])
    [ack] = session.parse(answer("unsubscribe", "book", "BTC/USD", 2, "Subscription Not Found"), 0)
    assert ack.error is None


def test_an_error_about_the_whole_request_settles_it():
    session = KrakenSession()
    session.subscribe(["book:BTC/USD", "book:ETH/USD"])
    [ack] = session.parse('{"method":"subscribe","success":false,"error":"Invalid depth","req_id":1}', 0)
    assert ack.request_id == 1 and ack.error == "Invalid depth"


def test_keep_alive():
    session = KrakenSession()
    [ping] = session.on_open()
    assert msgspec.json.decode(ping.frame) == {"method": "ping"} and ping.request_id is None
    assert session.client_ping() == ping.frame
    assert session.sends_heartbeats
    assert isinstance(session.parse('{"method":"pong","time_in":"x","time_out":"y"}', 0)[0], Heartbeat)
