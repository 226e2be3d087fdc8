"""{{ cookiecutter.venue_name }}: endpoints, channel names and documented limits, in one place.

Protocol style: {{ cookiecutter.protocol_style }}; heartbeat style: {{ cookiecutter.heartbeat_style }}.
Every value marked ``FILL IN`` comes from the exchange's API documentation.
"""

from __future__ import annotations

from spiceflow_core.plugin import Endpoints

VENUE = {{ cookiecutter.venue_slug | jsonify }}
DISPLAY_NAME = {{ cookiecutter.venue_name | jsonify }}
PROTOCOL_STYLE = {{ cookiecutter.protocol_style | jsonify }}
HEARTBEAT_STYLE = {{ cookiecutter.heartbeat_style | jsonify }}

#: live defaults; ``spiceflow.toml`` (``[venues.{{ cookiecutter.venue_slug }}] ws_url/rest_url``) or
#: ``spiceflow run --endpoint`` override them (tests point them at the simulator)
ENDPOINTS = Endpoints(ws_url={{ cookiecutter.ws_url | jsonify }}, rest_url={{ cookiecutter.rest_url | jsonify }})

# FILL IN: the REST path of the instrument list (appended to the REST base URL), and the
# fixture file holding a saved copy of its answer (see fixtures/README.md).
INSTRUMENTS_PATH = "/api/v1/instruments"
INSTRUMENTS_FIXTURE = "instruments.json"

# FILL IN: the book channel name for one symbol (see ``channels`` in plugin.py).
{% if cookiecutter.protocol_style == "plain-json" %}
BOOK_CHANNEL = "{symbol_lower}@book"
{% else %}
BOOK_CHANNEL = "book.{symbol}"
{% endif %}

# FILL IN: documented WebSocket limits.
MAX_STREAMS_PER_CONNECTION = 200
MAX_MESSAGES_PER_SECOND = 5.0
#: channels per subscribe request (keeps each frame small)
CHANNELS_PER_REQUEST = 50
{% if cookiecutter.heartbeat_style == "server-heartbeat" and cookiecutter.protocol_style == "json-rpc" %}

#: seconds between the server's heartbeats, asked for with ``public/set_heartbeat``
HEARTBEAT_INTERVAL = 10
{% endif %}
{% if cookiecutter.heartbeat_style == "client-ping" %}

# FILL IN: the keep-alive message the venue expects from the client (sent right after
# connecting and then every ``runtime.ping_interval`` seconds) and the id of its answer.
{% if cookiecutter.protocol_style == "json-rpc" %}
PING_METHOD = "public/ping"
PING_ID = 0  # a fixed id: the answer {"id": 0, "result": "pong"} is the heartbeat
{% else %}
PING_FRAME = '{"ping":1}'  # answered with {"pong": 1}
{% endif %}
{% endif %}

#: instruments subscribed when the config names none (demo and first runs)
DEFAULT_INSTRUMENTS = ("BTCUSDT", "ETHUSDT")
