"""The frames the session sends, and what it does with the answers.

FILL IN: when you change the subscribe format in session.py, state the exact frame
the exchange documents here first.
"""

import msgspec
from {{ cookiecutter.__package }} import config
from {{ cookiecutter.__package }}.session import {{ cookiecutter.__class_prefix }}Session

from spiceflow_core.plugin import {% if cookiecutter.heartbeat_style != "websocket-ping" %}Heartbeat, {% endif %}SubscribeAck

{% if cookiecutter.protocol_style == "plain-json" %}
ANSWER = '{{ '{{' }}"result":null,"id":{id}{{ '}}' }}'
ERROR_WITHOUT_ID = '{"error":{"code":2,"msg":"Invalid JSON"},"id":null}'
{% else %}
ANSWER = '{{ '{{' }}"jsonrpc":"2.0","id":{id},"result":["book.BTCUSDT"]{{ '}}' }}'
ERROR_WITHOUT_ID = '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}'
{% endif %}


def decode(frame: str) -> dict:
    return msgspec.json.decode(frame)


def test_subscribe_sends_one_request_per_chunk_with_increasing_ids():
    session = {{ cookiecutter.__class_prefix }}Session()
{% if cookiecutter.protocol_style == "plain-json" %}
    [request] = session.subscribe(["btcusdt@book", "ethusdt@book"])
    assert decode(request.frame) == {"method": "SUBSCRIBE", "params": ["btcusdt@book", "ethusdt@book"], "id": 1}
    assert request.request_id == 1 and request.channels == ["btcusdt@book", "ethusdt@book"]
    [again] = session.unsubscribe(["btcusdt@book"])
    assert decode(again.frame) == {"method": "UNSUBSCRIBE", "params": ["btcusdt@book"], "id": 2}
{% else %}
    [request] = session.subscribe(["book.BTCUSDT", "book.ETHUSDT"])
    first_id = 1
    assert decode(request.frame) == {
        "jsonrpc": "2.0",
        "id": first_id,
        "method": "public/subscribe",
        "params": {"channels": ["book.BTCUSDT", "book.ETHUSDT"]},
    }
    assert request.request_id == first_id and request.channels == ["book.BTCUSDT", "book.ETHUSDT"]
    [again] = session.unsubscribe(["book.BTCUSDT"])
    assert decode(again.frame)["method"] == "public/unsubscribe" and again.request_id == first_id + 1
{% endif %}
    many = [f"c{i}" for i in range(config.CHANNELS_PER_REQUEST + 1)]
    chunks = session.subscribe(many)
    assert [len(r.channels) for r in chunks] == [config.CHANNELS_PER_REQUEST, 1]
    assert len({r.request_id for r in chunks}) == 2


def test_a_new_session_restarts_ids():
    """One session per connection: ids never leak across reconnects."""
    [first] = {{ cookiecutter.__class_prefix }}Session().subscribe(["x"])
    [again] = {{ cookiecutter.__class_prefix }}Session().subscribe(["y"])
    assert first.request_id == again.request_id == 1


def test_acks_are_matched_and_forgotten():
    session = {{ cookiecutter.__class_prefix }}Session()
    [request] = session.subscribe([config.BOOK_CHANNEL.format(symbol="BTCUSDT", symbol_lower="btcusdt")])
    assert request.request_id in session.pending
    [ack] = session.parse(ANSWER.format(id=request.request_id), 0)
    assert isinstance(ack, SubscribeAck) and ack.request_id == request.request_id
    assert ack.channels == request.channels and ack.error is None
    assert request.request_id not in session.pending
    assert session.parse(ANSWER.format(id=request.request_id), 0) == []  # nobody waits for it now


def test_an_error_without_a_usable_id_refuses_the_oldest_pending_request():
    """One connection answers in order: an error naming no request (the venue could not
    read a frame) answers the oldest request still waiting."""
    session = {{ cookiecutter.__class_prefix }}Session()
    [first] = session.subscribe(["a"])
    [second] = session.subscribe(["b"])
    [ack] = session.parse(ERROR_WITHOUT_ID, 0)
    assert isinstance(ack, SubscribeAck) and ack.error
    assert (ack.request_id, ack.channels) == (first.request_id, ["a"])
    assert list(session.pending) == [second.request_id]
{% if cookiecutter.heartbeat_style == "websocket-ping" %}


def test_keep_alive_is_left_to_websocket_pings():
    session = {{ cookiecutter.__class_prefix }}Session()
    assert session.sends_heartbeats is False  # any frame is a sign of life
    assert session.on_open() == [] and session.client_ping() is None
{% elif cookiecutter.heartbeat_style == "client-ping" %}


def test_the_client_pings_at_once_and_then_periodically():
    session = {{ cookiecutter.__class_prefix }}Session()
    assert session.sends_heartbeats is True  # the pong is the heartbeat
    ping = session.client_ping()
    assert ping is not None
    [first] = session.on_open()
    assert first.frame == ping and first.request_id is None  # no ack awaited for a ping
{% if cookiecutter.protocol_style == "json-rpc" %}
    assert decode(ping) == {"jsonrpc": "2.0", "id": config.PING_ID, "method": config.PING_METHOD, "params": {}}
    [pong] = session.parse('{"jsonrpc":"2.0","id":0,"result":"pong"}', 0)
{% else %}
    assert ping == config.PING_FRAME
    [pong] = session.parse('{"pong":1}', 0)
{% endif %}
    assert isinstance(pong, Heartbeat)
{% else %}


def test_the_server_sends_heartbeats():
    session = {{ cookiecutter.__class_prefix }}Session()
    assert session.sends_heartbeats is True  # the WebSocketOnly workflow waits for one
{% if cookiecutter.protocol_style == "json-rpc" %}
    [set_heartbeat] = session.on_open()
    assert decode(set_heartbeat.frame) == {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "public/set_heartbeat",
        "params": {"interval": config.HEARTBEAT_INTERVAL},
    }


def test_a_test_request_is_answered_with_public_test_whose_answer_is_swallowed():
    session = {{ cookiecutter.__class_prefix }}Session()
    [beat] = session.parse('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}', 0)
    assert isinstance(beat, Heartbeat) and beat.reply is not None
    reply = decode(beat.reply)
    assert reply["method"] == "public/test"
    answer = msgspec.json.encode({"jsonrpc": "2.0", "id": reply["id"], "result": {"version": "1"}}).decode()
    assert session.parse(answer, 0) == []  # not an ack anyone waits for
{% else %}
    assert session.on_open() == []
    [beat] = session.parse('{"event":"heartbeat","time":1}', 0)
    assert isinstance(beat, Heartbeat) and beat.reply is None
{% endif %}
{% endif %}
