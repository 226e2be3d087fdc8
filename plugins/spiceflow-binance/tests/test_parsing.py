from collections import Counter

import msgspec
import pytest
from spiceflow_binance.parsing import NO_REQUEST_ID, parse_frame

from spiceflow_core.model import BookDelta, SubscribeAck, TopOfBook, Trade
from spiceflow_core.plugin.contract import ProtocolError
from spiceflow_core.recording.capture import read_capture


@pytest.mark.parametrize(
    "prefix, venue, expected",
    [
        ("BINANCE", "binance", {"BookDelta": 177, "TopOfBook": 84, "Trade": 2}),
        ("BINANCE_FUTURES", "binance-usdm", {"BookDelta": 764, "TopOfBook": 613, "Trade": 91}),
    ],
)
def test_every_recorded_frame_parses(recorded, prefix, venue, expected):
    counts: Counter = Counter()
    frames = 0
    for rec in read_capture(recorded / prefix):
        if rec.kind != "recv":
            continue
        frames += 1
        events = parse_frame(venue, rec.body, 1)
        counts.update("BookDelta" if isinstance(e, BookDelta) else type(e).__name__ for e in events)
        for e in events:
            assert e.venue == venue
            if isinstance(e, BookDelta):
                assert e.first_sequence <= e.sequence
                assert (e.prev_sequence is not None) == (venue != "binance")
    assert dict(counts) == expected
    # kline_1m frames are valid but not consumed: no events, no error
    assert frames - sum(counts.values()) > 0


def test_depth_and_ticker_fields():
    delta = parse_frame(
        "binance-usdm",
        '{"stream":"sushiusdt@depth@100ms","data":{"e":"depthUpdate","E":1626992741037,"T":1626992741024,"s":"SUSHIUSDT","U":600859599090,"u":600859600917,"pu":600859598061,"b":[["7.5040","813"],["7.6090","0"]],"a":[["7.6150","1563"]]}}',
        5,
    )[0]
    assert isinstance(delta, BookDelta)
    assert {f: getattr(delta, f) for f in BookDelta.__struct_fields__} == msgspec.structs.asdict(
        BookDelta(
            venue="binance-usdm",
            symbol="SUSHIUSDT",
            first_sequence=600859599090,
            sequence=600859600917,
            prev_sequence=600859598061,
            bids=[("7.5040", "813"), ("7.6090", "0")],
            asks=[("7.6150", "1563")],
            exchange_ts_ms=1626992741037,
            recv_ts_ns=5,
        )
    )
    top = parse_frame(
        "binance",
        '{"stream":"nknusdt@bookTicker","data":{"u":499869752,"s":"NKNUSDT","b":"0.35210000","B":"672.00000000","a":"0.35220000","A":"100.00000000"}}',
        0,
    )[0]
    assert (
        isinstance(top, TopOfBook)
        and top.sequence == 499869752
        and top.bid_price == "0.35210000"
        and top.ask_size == "100.00000000"
    )
    trade = parse_frame(
        "binance",
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":12345,"p":"0.001","q":"100","b":88,"a":50,"T":2,"m":true,"M":true}}',
        0,
    )[0]
    assert trade == Trade(
        venue="binance", symbol="BTCUSDT", trade_id="12345", price="0.001", size="100", side="sell", exchange_ts_ms=2
    )
    agg = parse_frame(
        "binance-usdm",
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"a":5933014,"s":"BTCUSDT","p":"0.001","q":"100","f":100,"l":105,"T":2,"m":false}}',
        0,
    )[0]
    assert agg.trade_id == "5933014" and agg.side == "buy"


def test_raw_stream_payloads():
    (d,) = parse_frame(
        "binance", '{"e":"depthUpdate","E":1,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[]}', 0
    )
    assert d.first_sequence == 157 and d.sequence == 160
    assert parse_frame("binance", '{"e":"kline","E":1,"s":"BNBBTC","k":{}}', 0) == []


def test_acks_and_errors():
    assert parse_frame("binance", '{"result":null,"id":7}', 0) == [SubscribeAck(venue="binance", request_id=7)]
    (lst,) = parse_frame("binance", '{"result":["btcusdt@aggTrade"],"id":3}', 0)
    assert lst.channels == ["btcusdt@aggTrade"] and lst.error is None
    (err,) = parse_frame("binance", '{"error":{"code":2,"msg":"Invalid request: unknown variant"},"id":9}', 0)
    assert err.request_id == 9 and err.error == "code 2: Invalid request: unknown variant"
    (old,) = parse_frame("binance", '{"code":0,"msg":"Unknown property","id":4}', 0)
    assert old.request_id == 4 and "Unknown property" in old.error
    (anon,) = parse_frame("binance", '{"error":{"code":3,"msg":"Invalid JSON"}}', 0)
    assert anon.request_id == NO_REQUEST_ID and "Invalid JSON" in anon.error


@pytest.mark.parametrize(
    "frame",
    [
        '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpd',  # truncated
        "not json",
        b"\xff\xfe",
        '{"foo":"bar"}',  # valid JSON, unknown shape
        "[1,2,3]",
        '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","u":5,"b":[],"a":[]}}',  # no U
        '{"stream":"btcusdt@bookTicker","data":{"u":"x","s":"BTCUSDT"}}',
        '{"stream":"btcusdt@depth@100ms"}',
        '{"result":null,"id":"abc"}',
    ],
)
def test_bad_frames_raise_protocol_error(frame):
    with pytest.raises(ProtocolError):
        parse_frame("binance", frame, 0)
