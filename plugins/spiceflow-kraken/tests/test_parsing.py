"""Frames -> events, from the documented v2 examples (docs.kraken.com, "Book (Level 2)",
"Ticker", "Trade", "Ping", "Heartbeat"), and the book checksum on them."""

from __future__ import annotations

import pytest
from spiceflow_kraken.checksum import KrakenChecksum, decimals_of
from spiceflow_kraken.parsing import Answer, parse_frame
from spiceflow_kraken.sync import Sequencer, timestamp_us

from spiceflow_core.book import BookSync, BookUpdated, GapDetected, Synced
from spiceflow_core.plugin import BookDelta, BookSnapshot, Heartbeat, ProtocolError, TopOfBook, Trade

# The documented MATIC/USD snapshot as it travels on the wire: numbers at the pair's full
# precision (4 price, 8 quantity decimals). The documentation page renders the same
# numbers without trailing zeros (0.566, 18097.1547); its checksum 2439117997 is the
# one of the full-precision text below.
SNAPSHOT = (
    '{"channel":"book","type":"snapshot","data":[{"symbol":"MATIC/USD",'
    '"bids":[{"price":0.5666,"qty":4831.75496356},{"price":0.5665,"qty":6658.22734739},'
    '{"price":0.5664,"qty":18724.91513344},{"price":0.5663,"qty":11563.92544914},'
    '{"price":0.5662,"qty":14006.65365711},{"price":0.5661,"qty":17454.85679807},'
    '{"price":0.5660,"qty":18097.15470000},{"price":0.5659,"qty":33644.89175666},'
    '{"price":0.5658,"qty":148.34640000},{"price":0.5657,"qty":606.70854372}],'
    '"asks":[{"price":0.5668,"qty":4410.79769741},{"price":0.5669,"qty":4655.40412487},'
    '{"price":0.5670,"qty":49844.89424998},{"price":0.5671,"qty":24306.41678000},'
    '{"price":0.5672,"qty":29783.25223475},{"price":0.5673,"qty":57234.71239278},'
    '{"price":0.5674,"qty":45065.04744000},{"price":0.5675,"qty":5912.76380354},'
    '{"price":0.5676,"qty":42514.92434778},{"price":0.5677,"qty":36304.08470220}],'
    '"checksum":2439117997,"timestamp":"2023-10-06T17:35:55.440295Z"}]}'
)
UPDATE = (
    '{"channel":"book","type":"update","data":[{"symbol":"MATIC/USD",'
    '"bids":[{"price":0.5657,"qty":1098.39475580}],"asks":[],'
    '"checksum":2114181697,"timestamp":"2023-10-06T17:35:55.440295Z"}]}'
)


def parse(frame: str, sequencer: Sequencer | None = None) -> list:
    return parse_frame(frame, 7, sequencer or Sequencer())


def test_snapshot_keeps_the_exact_number_text():
    [snap] = parse(SNAPSHOT)
    assert isinstance(snap, BookSnapshot)
    assert snap.symbol == "MATIC/USD" and snap.reset and snap.checksum == 2439117997
    assert snap.bids[6] == ("0.5660", "18097.15470000")  # never a float (0.566, 18097.1547)
    assert snap.asks[0] == ("0.5668", "4410.79769741")
    assert snap.sequence == timestamp_us("2023-10-06T17:35:55.440295Z") == 1696613755440295
    assert snap.exchange_ts_ms == 1696613755440 and snap.recv_ts_ns == 7


def test_documented_checksums_verify_on_the_wire_text():
    checksum = KrakenChecksum()
    [snap] = parse(SNAPSHOT)
    assert checksum.compute(snap.bids, snap.asks) == 2439117997
    # the update replaces the 10th bid: the book after it has the documented checksum
    bids = [*snap.bids[:9], ("0.5657", "1098.39475580")]
    assert checksum.compute(bids, snap.asks) == 2114181697


def test_checksum_pads_to_the_pair_precision_and_never_cuts():
    rendered_bids = [("0.566", "18097.1547")]  # trailing zeros lost (the docs' rendering)
    exact = KrakenChecksum().compute([("0.5660", "18097.15470000")], [])
    assert KrakenChecksum().compute(rendered_bids, []) != exact
    assert KrakenChecksum(price_decimals=4, qty_decimals=8).compute(rendered_bids, []) == exact
    # the guide's example level: asks "45285.2" / "0.00100000" -> "452852" + "100000"
    assert KrakenChecksum(1, 8).text([], [("45285.2", "0.00100000")]) == "452852100000"
    assert KrakenChecksum(0, 4).text([("1.23456789", "0.5")], []) == "123456789" + "5000"  # padded, never cut
    assert decimals_of("0.0001") == 4 and decimals_of("1") == 0 and decimals_of("0.10") == 1


def test_book_sync_verifies_snapshot_and_update_and_catches_a_bad_checksum():
    seq = Sequencer()
    sync = BookSync("kraken", "MATIC/USD", _policy(), checksum=KrakenChecksum(4, 8), keep_depth=10)
    [snap] = parse(SNAPSHOT, seq)
    assert sync.on_snapshot(snap) == [Synced(snap.sequence)]
    [delta] = parse(UPDATE, seq)
    assert isinstance(delta, BookDelta) and delta.sequence == snap.sequence + 1  # same timestamp: +1
    # the update adds a level at 0.5657 (10th bid): after it the book is cut to 10 levels
    assert sync.on_delta(delta) == [BookUpdated(delta.sequence)]
    assert sync.counters.checksums_verified == 2 and sync.checksum_verified
    wrong = parse(UPDATE.replace("2114181697", "2114181698"), seq)[0]
    [gap] = sync.on_delta(wrong)
    assert isinstance(gap, GapDetected) and "checksum mismatch" in gap.reason
    assert sync.counters.checksum_failures == 1


def _policy():
    from spiceflow_kraken.sync import POLICY

    return POLICY


def test_ticker_trade_heartbeat_pong_status():
    [top] = parse(
        '{"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,'
        '"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,'
        '"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17}]}'
    )
    assert isinstance(top, TopOfBook)
    assert (top.bid_price, top.bid_size, top.ask_price, top.ask_size) == (
        "0.10025",
        "740.0",
        "0.10036",
        "1361.44813783",
    )
    [trade] = parse(
        '{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":0.5117,'
        '"qty":40.0,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}'
    )
    assert isinstance(trade, Trade)
    assert (trade.trade_id, trade.price, trade.size, trade.side) == ("4665906", "0.5117", "40.0", "sell")
    assert trade.exchange_ts_ms == 1695628177708
    assert isinstance(parse('{"channel":"heartbeat"}')[0], Heartbeat)
    pong = '{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z","time_out":"2023-09-24T14:10:23.799703Z"}'
    assert isinstance(parse(pong)[0], Heartbeat)
    status = (
        '{"channel":"status","data":[{"api_version":"v2","connection_id":12393906104898154338,'
        '"system":"online","version":"2.0.0"}],"type":"update"}'
    )
    assert parse(status) == []


def test_subscribe_answers():
    ok = (
        '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},'
        '"success":true,"time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z","req_id":3}'
    )
    assert parse(ok) == [Answer(method="subscribe", req_id=3, channel="book", symbol="BTC/USD")]
    refused = (
        '{"error":"Currency pair not supported XYZ/USD","method":"subscribe","req_id":4,"success":false,'
        '"symbol":"XYZ/USD","time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z"}'
    )
    assert parse(refused) == [
        Answer(
            method="subscribe", req_id=4, channel=None, symbol="XYZ/USD", error="Currency pair not supported XYZ/USD"
        )
    ]


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        "[1,2]",
        '{"surprise":true}',
        '{"channel":"book","type":"update","data":[{"symbol":"X/Y","bids":[],"asks":[]}]}',  # no checksum
        '{"channel":"book","type":"update","data":[{"symbol":"X/Y","bids":[{"price":1.5,"qty":true}],"checksum":1}]}',
        '{"channel":"book","type":"weird","data":[]}',
        '{"channel":"nope","type":"update","data":[]}',
        '{"method":"subscribe","req_id":1}',  # no success
        '{"method":"frobnicate","success":true}',
        '{"channel":"book","type":"update","data":[{"symbol":"X/Y","checksum":1,"timestamp":"yesterday"}]}',
    ],
)
def test_bad_frames_raise_protocol_error(frame):
    with pytest.raises(ProtocolError):
        parse(frame)


def test_sequencer_is_strictly_increasing_per_symbol_and_snapshot_covers_older_updates():
    seq = Sequencer()
    assert seq.update("A", 100) == 100
    assert seq.update("A", 100) == 101  # same timestamp: +1
    assert seq.update("A", 50) == 102  # a timestamp going back never makes an older id
    assert seq.snapshot("A", 102) == 102  # the state as of 102: covers every update before
    assert seq.update("A", None) == 103
    assert seq.snapshot("B", None) == 1
