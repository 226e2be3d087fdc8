"""{{ cookiecutter.venue_name }}: endpoints, channel names and documented limits, in one place so
the README, the session, the venue and the simulator agree.

Protocol style: {{ cookiecutter.protocol_style }}; heartbeat style: {{ cookiecutter.heartbeat_style }}.
Every value marked ``FILL IN`` comes from the exchange's API documentation; where the
documentation says nothing, write down the choice made and why (plugin README,
"Decisions where the docs leave room").
"""

from __future__ import annotations

from spiceflow_core.plugin import Endpoints

VENUE = {{ cookiecutter.venue_slug | jsonify }}
#: the venue family in normalized ids; FILL IN: one name for several venues of one
#: exchange (Binance spot and futures are both ``binance``)
EXCHANGE = {{ cookiecutter.venue_slug | jsonify }}
DISPLAY_NAME = {{ cookiecutter.venue_name | jsonify }}
PROTOCOL_STYLE = {{ cookiecutter.protocol_style | jsonify }}
HEARTBEAT_STYLE = {{ cookiecutter.heartbeat_style | jsonify }}
#: name of the text captures of this venue's sessions (``spiceflow replay <dir>/<PREFIX>``
#: finds the venue by it); FILL IN: the exchange id of existing captures, if there are any
CAPTURE_PREFIX = {{ cookiecutter.venue_slug.upper() | jsonify }}

#: live defaults; ``spiceflow.toml`` (``[venues.{{ cookiecutter.venue_slug }}] ws_url/rest_url``) or
#: ``spiceflow run --endpoint`` override them (tests point them at the simulator)
ENDPOINTS = Endpoints(
    ws_url={{ cookiecutter.ws_url | jsonify }},
    rest_url={{ cookiecutter.rest_url | jsonify }},
)

# -- reference data ---------------------------------------------------------------------
# FILL IN: the REST path of the instrument list (appended to the REST base URL), and the
# fixture file holding a saved copy of its answer (see fixtures/README.md).
INSTRUMENTS_PATH = "/api/v1/instruments"
INSTRUMENTS_FIXTURE = "instruments.json"
#: seconds between REST requests; FILL IN: below the documented REST rate limit
REST_MIN_INTERVAL = 0.0

# -- channels and requests --------------------------------------------------------------
# FILL IN: the book channel name for one symbol (see ``channels`` in plugin.py).
{% if cookiecutter.protocol_style == "plain-json" %}
BOOK_CHANNEL = "{symbol_lower}@book"
SUBSCRIBE_METHOD = "SUBSCRIBE"
UNSUBSCRIBE_METHOD = "UNSUBSCRIBE"
{% else %}
BOOK_CHANNEL = "book.{symbol}"
SUBSCRIBE_METHOD = "public/subscribe"
UNSUBSCRIBE_METHOD = "public/unsubscribe"
{% endif %}
#: levels per side the venue maintains for a book whose levels pushed out of that depth
#: are not deleted on the stream (Bybit, Kraken, OKX: the local book is cut to it after
#: every message), or None for a full book. FILL IN from the channel's documentation.
MAINTAINED_DEPTH: int | None = None

# -- documented WebSocket limits ---------------------------------------------------------
# FILL IN: each value from the exchange's documentation. The simulator enforces them (a
# crossing is a ``LimitViolation`` in ``sim.violations``; the pipeline tests assert none).
#: channels on one connection (the core opens another connection beyond it)
MAX_STREAMS_PER_CONNECTION = 200
#: client messages per second and connection
MAX_MESSAGES_PER_SECOND = 5.0
#: whether WebSocket ping/pong frames count toward ``MAX_MESSAGES_PER_SECOND`` (Binance
#: counts them; OKX counts requests only)
LIMIT_COUNTS_CONTROL_FRAMES = True
#: channels in one subscribe request (the documented maximum, or a size that keeps
#: frames small when there is none)
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
