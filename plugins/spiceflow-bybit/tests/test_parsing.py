"""Frames from Bybit's v5 documentation (Orderbook, Trade, Connect pages) -> events."""

from __future__ import annotations

import pytest
from spiceflow_bybit.parsing import Reply, parse_frame

from spiceflow_core.plugin import BookDelta, BookSnapshot, Heartbeat, ProtocolError, TopOfBook, Trade

V = "bybit-linear"

# "Orderbook" response examples (trimmed to two levels a side)
SNAPSHOT = (
    '{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1672304484978,"data":{"s":"BTCUSDT",'
    '"b":[["16493.50","0.006"],["16493.00","0.100"]],"a":[["16611.00","0.029"],["16612.00","0.213"]],'
    '"u":18521288,"seq":7961638724},"cts":1672304484976}'
)
DELTA = (
    '{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,"data":{"s":"BTCUSDT",'
    '"b":[["30247.20","30.028"],["30245.40","0.224"],["30242.10","0"]],"a":[["30248.70","0"]],'
    '"u":177400507,"seq":66544703342},"cts":1687940967464}'
)
TRADE = (
    '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":1672304486865,'
    '"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick",'
    '"i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false}]}'
)


def test_snapshot_resets_the_book_with_exact_strings():
    [snap] = parse_frame(V, SNAPSHOT, 5)
    assert isinstance(snap, BookSnapshot)
    assert snap.reset is True and snap.depth_limit is None
    assert (snap.symbol, snap.sequence, snap.exchange_ts_ms, snap.recv_ts_ns) == ("BTCUSDT", 18521288, 1672304484978, 5)
    assert snap.bids == [("16493.50", "0.006"), ("16493.00", "0.100")]
    assert snap.asks[0] == ("16611.00", "0.029")


def test_delta_is_one_update_id_and_size_zero_deletes():
    [delta] = parse_frame(V, DELTA, 0)
    assert isinstance(delta, BookDelta)
    assert delta.first_sequence == delta.sequence == 177400507 and delta.prev_sequence is None
    assert ("30242.10", "0") in delta.bids and delta.asks == [("30248.70", "0")]


def test_a_restart_snapshot_has_u_1():
    frame = SNAPSHOT.replace('"u":18521288', '"u":1')
    [snap] = parse_frame(V, frame, 0)
    assert isinstance(snap, BookSnapshot) and snap.sequence == 1 and snap.reset


def test_level_one_is_the_top_of_book():
    frame = SNAPSHOT.replace("orderbook.50", "orderbook.1")
    [top] = parse_frame(V, frame, 0)
    assert isinstance(top, TopOfBook)
    assert (top.bid_price, top.bid_size, top.ask_price, top.ask_size) == ("16493.50", "0.006", "16611.00", "0.029")
    empty = '{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[],"u":3}}'
    [top] = parse_frame(V, empty, 0)
    assert top.bid_price is None and top.ask_price is None


def test_public_trade():
    [trade] = parse_frame(V, TRADE, 0)
    assert isinstance(trade, Trade)
    assert (trade.price, trade.size, trade.side, trade.trade_id) == (
        "16578.50",
        "0.001",
        "buy",
        "20f43950-d8dd-5b31-9112-a178eb6023af",
    )
    assert trade.exchange_ts_ms == 1672304486865


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        # "Connect": subscription answers (linear/inverse, spot) and pongs
        (
            '{"success":true,"ret_msg":"","conn_id":"3cd84cb1","req_id":"7","op":"subscribe"}',
            Reply("subscribe", "7", True, ""),
        ),
        (
            '{"success":true,"ret_msg":"subscribe","conn_id":"2324d924","req_id":"10001","op":"subscribe"}',
            Reply("subscribe", "10001", True, "subscribe"),
        ),
        (
            '{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.NOPE]","conn_id":"c","req_id":"2","op":"subscribe"}',
            Reply("subscribe", "2", False, "Invalid symbol :[orderbook.50.NOPE]"),
        ),
        ('{"success":true,"ret_msg":"pong","conn_id":"0970e817","op":"ping"}', Reply("ping", None, True, "pong")),
    ],
)
def test_answers_are_replies(frame, expected):
    assert parse_frame(V, frame, 0) == expected


def test_option_style_pong_is_a_heartbeat():
    [hb] = parse_frame(V, '{"args":["1672916271846"],"op":"pong"}', 0)
    assert isinstance(hb, Heartbeat)


def test_a_topic_we_do_not_consume_is_no_event():
    assert parse_frame(V, '{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{"symbol":"BTCUSDT"}}', 0) == []


@pytest.mark.parametrize(
    "frame",
    [
        '{"topic":"orderbook.50.',  # not JSON
        '{"surprise":{"nobody":"expects"}}',  # unknown shape
        SNAPSHOT.replace('"16493.50"', "16493.50"),  # a number where Bybit sends a string
        SNAPSHOT.replace('"u":18521288,', ""),  # no update id
        '{"topic":"orderbook","type":"delta","data":{"s":"X","b":[],"a":[],"u":1}}',  # no depth in the topic
        b"\x00\x01binary\xff",
    ],
)
def test_bad_frames_raise_protocol_errors(frame):
    with pytest.raises(ProtocolError):
        parse_frame(V, frame, 0)
