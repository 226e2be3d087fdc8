"""Frames -> events, from OKX's documented message shapes and real recorded frames."""

from __future__ import annotations

from pathlib import Path

import pytest
from spiceflow_okx.parsing import ArgEvent, parse_frame
from spiceflow_okx.sync import CHECKSUM

from spiceflow_core.model import BookDelta, BookSnapshot, Heartbeat, TopOfBook, Trade
from spiceflow_core.plugin import ProtocolError

#: real frames recorded from wss://ws.okx.com:8443/ws/v5/public in 2022 (cryptofeed's
#: sample data, trimmed): older messages with a checksum and no seqId
RECORDED = Path(__file__).parent / "data" / "recorded_frames.txt"

SNAPSHOT = (
    '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{'
    '"asks":[["8476.98","415","0","13"],["8477","7","0","2"]],'
    '"bids":[["8476.97","256","0","12"],["8475.55","101","0","1"]],'
    '"ts":"1597026383085","checksum":-855196043,"prevSeqId":-1,"seqId":123456}]}'
)
UPDATE = (
    '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{'
    '"asks":[["8476.98","0","0","0"]],"bids":[["8476.97","300","0","13"]],'
    '"ts":"1597026383185","checksum":0,"prevSeqId":123456,"seqId":123470}]}'
)
NO_CHANGE = (
    '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{'
    '"asks":[],"bids":[],"ts":"1597026383285","checksum":0,"prevSeqId":123470,"seqId":123470}]}'
)
BBO = (
    '{"arg":{"channel":"bbo-tbt","instId":"BCH-USDT-SWAP"},"data":[{"asks":[["111.06","55154","0","2"]],'
    '"bids":[["111.05","57745","0","2"]],"ts":"1670324386802","seqId":363996337}]}'
)
TRADES = (
    '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474",'
    '"px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}'
)


def test_snapshot_keeps_strings_and_sequence():
    [snap] = parse_frame(SNAPSHOT, 42)
    assert isinstance(snap, BookSnapshot)
    assert (snap.symbol, snap.sequence, snap.checksum, snap.reset) == ("BTC-USDT", 123456, -855196043, True)
    assert snap.bids == [("8476.97", "256"), ("8475.55", "101")]
    assert snap.asks == [("8476.98", "415"), ("8477", "7")]
    assert snap.exchange_ts_ms == 1597026383085 and snap.recv_ts_ns == 42


def test_update_chains_by_prev_seq_id_and_zero_checksum_is_absent():
    [delta] = parse_frame(UPDATE, 0)
    assert isinstance(delta, BookDelta)
    assert (delta.prev_sequence, delta.first_sequence, delta.sequence) == (123456, 123470, 123470)
    assert delta.asks == [("8476.98", "0")] and delta.bids == [("8476.97", "300")]
    assert delta.checksum is None  # 0 means "not sent", never a pass


def test_no_change_update_is_an_empty_delta_with_seq_equal_prev():
    [delta] = parse_frame(NO_CHANGE, 0)
    assert isinstance(delta, BookDelta)
    assert delta.prev_sequence == delta.sequence == 123470 and delta.bids == delta.asks == []


def test_bbo_tbt_is_top_of_book():
    [top] = parse_frame(BBO, 0)
    assert isinstance(top, TopOfBook)
    assert (top.symbol, top.bid_price, top.bid_size, top.ask_price, top.ask_size) == (
        "BCH-USDT-SWAP",
        "111.05",
        "57745",
        "111.06",
        "55154",
    )
    assert top.sequence == 363996337 and top.exchange_ts_ms == 1670324386802


def test_trades():
    [trade] = parse_frame(TRADES, 0)
    assert isinstance(trade, Trade)
    assert (trade.symbol, trade.trade_id, trade.price, trade.size, trade.side) == (
        "BTC-USDT",
        "130639474",
        "42219.9",
        "0.12060306",
        "buy",
    )


def test_events_pong_and_notice():
    assert parse_frame("pong", 5) == [Heartbeat(venue="okx", recv_ts_ns=5)]
    [ack] = parse_frame('{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}')
    assert ack == ArgEvent("subscribe", "books:BTC-USDT")
    [err] = parse_frame('{"event":"error","code":"60012","msg":"Invalid request: {}","connId":"a4d3ae55"}')
    assert err == ArgEvent("error", None, "60012: Invalid request: {}")
    notice = '{"event":"notice","code":"64008","msg":"The connection will soon be closed","connId":"a4d3ae55"}'
    assert parse_frame(notice) == []


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        '{"surprise":1}',
        '{"event":"mystery"}',
        '{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[]}]}',
        '{"arg":{"channel":"books","instId":"X"},"action":"sideways","data":[{"asks":[],"bids":[],"ts":"1"}]}',
        '{"arg":{"channel":"books","instId":"X"},"action":"update","data":[{"asks":[["1"]],"bids":[],"ts":"1"}]}',
    ],
)
def test_bad_frames_raise_protocol_error(frame):
    with pytest.raises(ProtocolError):
        parse_frame(frame)


def test_recorded_snapshots_verify_with_our_checksum():
    """Real OKX frames (2022, books-l2-tbt): every snapshot's checksum equals ours over
    its levels as sent -- the interleaving, the uneven sides, the signed integer."""
    snapshots = [
        e for line in RECORDED.read_text().splitlines() for e in parse_frame(line) if isinstance(e, BookSnapshot)
    ]
    assert len(snapshots) == 4
    assert any(not s.bids for s in snapshots)  # one side empty: the other goes on alone
    for snap in snapshots:
        assert snap.checksum is not None
        assert CHECKSUM.compute(snap.bids[:25], snap.asks[:25]) == snap.checksum, snap.symbol
        assert snap.sequence == -1  # no seqId in 2022: the session numbers them
