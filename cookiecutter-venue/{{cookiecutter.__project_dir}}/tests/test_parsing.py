"""What the core expects the parser to make of each kind of frame.

FILL IN: replace the sample frames below with frames captured from the real exchange
(e.g. with ``spiceflow record`` or the exchange's docs) and adapt schemas.py and
parsing.py until these tests pass again; keep the expectations (exact decimal strings,
exchange symbols, ids) as they are: the book engine relies on them.
"""

import pytest
from {{ cookiecutter.__package }}.parsing import parse_frame
from {{ cookiecutter.__package }}.simulator import {{ cookiecutter.__class_prefix }}Simulator
from {{ cookiecutter.__package }}.sync import POLICY

from spiceflow_core.plugin import BookDelta, BookSnapshot, Heartbeat, ProtocolError, SubscribeAck, Verdict

VENUE = "{{ cookiecutter.venue_slug }}"

{% if cookiecutter.protocol_style == "plain-json" %}
SNAPSHOT = (
    '{"stream":"btcusdt@book","data":{"type":"snapshot","s":"BTCUSDT","U":1000,"u":1000,'
    '"b":[["64999.90","1.500"],["64999.80","0.25"]],"a":[["65000.10","2"]],"E":1700000000000}}'
)
DELTA = (
    '{"stream":"btcusdt@book","data":{"type":"delta","s":"BTCUSDT","U":1001,"u":1003,'
    '"b":[["64999.90","0"]],"a":[["65000.20","0.00100"]],"E":1700000000100}}'
)
ACK = '{"result":null,"id":1}'
REFUSED = '{"error":{"code":2,"msg":"Invalid request: unknown stream"},"id":2}'
UNCONSUMED = '{"stream":"btcusdt@kline_1m","data":{"e":"kline","s":"BTCUSDT"}}'
BOOK_MISSING_FIELDS = '{"stream":"btcusdt@book","data":{"type":"delta","s":"BTCUSDT"}}'
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
HEARTBEAT = '{"event":"heartbeat","time":1700000000000}'
{% elif cookiecutter.heartbeat_style == "client-ping" %}
HEARTBEAT = '{"pong":1}'  # the answer to our ping
{% endif %}
{% else %}
SNAPSHOT = (
    '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTCUSDT","data":'
    '{"type":"snapshot","instrument_name":"BTCUSDT","change_id":1000,"timestamp":1700000000000,'
    '"bids":[["64999.90","1.500"],["64999.80","0.25"]],"asks":[["65000.10","2"]]}}}'
)
DELTA = (
    '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTCUSDT","data":'
    '{"type":"change","instrument_name":"BTCUSDT","change_id":1003,"prev_change_id":1000,'
    '"timestamp":1700000000100,"bids":[["64999.90","0"]],"asks":[["65000.20","0.00100"]]}}}'
)
ACK = '{"jsonrpc":"2.0","id":1,"result":["book.BTCUSDT"],"usIn":1700000000000000}'
REFUSED = '{"jsonrpc":"2.0","id":2,"error":{"code":11050,"message":"bad_request"}}'
UNCONSUMED = '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"chart.BTCUSDT.1","data":{}}}'
BOOK_MISSING_FIELDS = (
    '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTCUSDT","data":{"type":"change"}}}'
)
{% if cookiecutter.heartbeat_style == "server-heartbeat" %}
HEARTBEAT = '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}'
TEST_REQUEST = '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'
{% elif cookiecutter.heartbeat_style == "client-ping" %}
HEARTBEAT = '{"jsonrpc":"2.0","id":0,"result":"pong"}'  # the answer to our public/ping
{% endif %}
{% endif %}


def test_a_snapshot_becomes_a_book_snapshot_with_exact_strings():
    [event] = parse_frame(VENUE, SNAPSHOT, 42)
    assert isinstance(event, BookSnapshot)
    assert (event.venue, event.symbol, event.sequence) == (VENUE, "BTCUSDT", 1000)
    # exactly as sent: trailing zeros kept, never floats
    assert event.bids == [("64999.90", "1.500"), ("64999.80", "0.25")]
    assert event.asks == [("65000.10", "2")]
    assert event.exchange_ts_ms == 1700000000000 and event.recv_ts_ns == 42


def test_an_update_becomes_a_book_delta_with_its_id_range():
    [event] = parse_frame(VENUE, DELTA, 43)
    assert isinstance(event, BookDelta)
    assert event.symbol == "BTCUSDT"
{% if cookiecutter.protocol_style == "plain-json" %}
    # U..u: the ids this update covers (sync.py checks U == previous u + 1)
    assert (event.first_sequence, event.sequence, event.prev_sequence) == (1001, 1003, None)
{% else %}
    # change_id and the id it follows (sync.py checks prev == previous change_id)
    assert (event.first_sequence, event.sequence, event.prev_sequence) == (1003, 1003, 1000)
{% endif %}
    assert event.bids == [("64999.90", "0")]  # size "0" deletes the level
    assert event.asks == [("65000.20", "0.00100")]


def test_the_answer_to_a_request_is_an_ack_with_its_id():
    [ack] = parse_frame(VENUE, ACK, 0)
    assert isinstance(ack, SubscribeAck)
    assert ack.request_id == 1 and ack.error is None


def test_a_refused_request_is_an_ack_with_the_error():
    [ack] = parse_frame(VENUE, REFUSED, 0)
    assert isinstance(ack, SubscribeAck)
    assert ack.request_id == 2
    assert ack.error == "{{ "code 2: Invalid request: unknown stream" if cookiecutter.protocol_style == "plain-json" else "11050: bad_request" }}"
{% if cookiecutter.heartbeat_style != "websocket-ping" %}


def test_a_heartbeat_frame_becomes_a_heartbeat():
    [event] = parse_frame(VENUE, HEARTBEAT, 7)
    assert isinstance(event, Heartbeat)
    assert event.reply is None and event.recv_ts_ns == 7
{% endif %}
{% if cookiecutter.protocol_style == "json-rpc" and cookiecutter.heartbeat_style == "server-heartbeat" %}


def test_a_test_request_carries_the_reply_to_send_back():
    [event] = parse_frame(VENUE, TEST_REQUEST, 0, test_reply=lambda: '{"method":"public/test"}')
    assert isinstance(event, Heartbeat)
    assert event.reply == '{"method":"public/test"}'  # the core sends it at once
{% endif %}
{% if cookiecutter.heartbeat_style == "websocket-ping" %}


def test_there_is_no_heartbeat_message_in_this_protocol():
    """WebSocket pings keep the connection alive; any frame counts as a sign of life."""
    from {{ cookiecutter.__package }}.session import {{ cookiecutter.__class_prefix }}Session

    assert {{ cookiecutter.__class_prefix }}Session.sends_heartbeats is False
    assert not any(isinstance(e, Heartbeat) for e in parse_frame(VENUE, ACK, 0))
{% endif %}


def test_a_valid_channel_we_do_not_consume_yields_nothing():
    assert parse_frame(VENUE, UNCONSUMED, 0) == []


@pytest.mark.parametrize("frame", ["{not json", '{"unexpected": true}', "[1, 2]", BOOK_MISSING_FIELDS])
def test_bad_frames_raise_protocol_error(frame):
    """The core counts and logs these and keeps the connection."""
    with pytest.raises(ProtocolError):
        parse_frame(VENUE, frame, 0)


def test_a_book_message_passes_the_venues_checksum_on():
    """The core verifies it against the local book when sync.CHECKSUM is set."""
    with_checksum = SNAPSHOT.replace('"{{ "E" if cookiecutter.protocol_style == "plain-json" else "timestamp" }}":', '"checksum":-12345,"{{ "E" if cookiecutter.protocol_style == "plain-json" else "timestamp" }}":')
    [event] = parse_frame(VENUE, with_checksum, 0)
    assert isinstance(event, BookSnapshot) and event.checksum == -12345
    [event] = parse_frame(VENUE, SNAPSHOT, 0)
    assert event.checksum is None  # none sent: nothing to verify


def test_the_simulator_speaks_what_the_parser_reads():
    """Keeps simulator.py and parsing.py in step when either changes."""
    sim = {{ cookiecutter.__class_prefix }}Simulator(symbols=["BTCUSDT"])
    seq, bids, asks = sim.truth("BTCUSDT")
    [snap] = parse_frame(VENUE, sim._snapshot_frame("BTCUSDT"), 0)
    assert isinstance(snap, BookSnapshot)
    assert (snap.symbol, snap.sequence, snap.bids, snap.asks) == ("BTCUSDT", seq, bids, asks)
    prev, new_seq, changed_bids, changed_asks = sim.books["BTCUSDT"].step()
    [delta] = parse_frame(VENUE, sim._update_frame("BTCUSDT", prev, new_seq, changed_bids, changed_asks), 0)
    assert isinstance(delta, BookDelta)
    assert (delta.sequence, delta.bids, delta.asks) == (new_seq, changed_bids, changed_asks)
    assert POLICY.first(snap.sequence, delta) is Verdict.APPLY  # the stream continues the snapshot
