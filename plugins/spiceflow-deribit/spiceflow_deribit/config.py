"""Deribit endpoints, limits and credentials: every number here is a documented
Deribit value (or a deliberate margin below one), in one place so README, session,
venue and simulator agree."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import msgspec

from spiceflow_core.plugin import Endpoints

VENUE = "deribit"
EXCHANGE = "deribit"
#: name of the text captures of Deribit sessions (cryptofeed's exchange id)
CAPTURE_PREFIX = "DERIBIT"

LIVE = Endpoints(ws_url="wss://www.deribit.com/ws/api/v2", rest_url="https://www.deribit.com/api/v2")
WS_PATH = "/ws/api/v2"
REST_PATH = "/api/v2"

#: currencies whose instruments ``fetch_instruments`` loads by default (one
#: ``public/get_instruments`` call each; ``"any"`` would fetch all in one call)
DEFAULT_CURRENCIES: tuple[str, ...] = ("BTC", "ETH", "USDC", "USDT")

# -- heartbeats -------------------------------------------------------------------
#: ``public/set_heartbeat`` interval in seconds; Deribit refuses less than 10.
HEARTBEAT_INTERVAL = 10
MIN_HEARTBEAT_INTERVAL = 10

# -- subscriptions --------------------------------------------------------------------
#: channels per ``public/subscribe`` request. Deribit documents no hard number; large
#: requests are answered slowly and one request costs the same credits whatever its
#: size, so we batch generously but bounded.
MAX_CHANNELS_PER_REQUEST = 100
#: channels per connection before the core shards onto another connection (Deribit
#: documents no per-connection cap; this keeps one connection's fan-in reasonable).
MAX_STREAMS_PER_CONNECTION = 500
#: subscribe/unsubscribe credit bucket (Deribit rate-limits article): each request costs
#: 3000 credits from a pool of 30000 refilled at 10000/s, i.e. ~3.3 requests/s sustained
#: and a burst of 10. Exceeding it answers error 10028 ``too_many_requests``.
SUBSCRIBE_COST = 3000
SUBSCRIBE_MAX_CREDITS = 30000
SUBSCRIBE_REFILL_PER_SECOND = 10000
#: requests per second the core may send (margin below the 3.3/s sustained rate)
MAX_MESSAGES_PER_SECOND = 3.0
TOO_MANY_REQUESTS = 10028

# -- channels --------------------------------------------------------------------------
#: notification interval of the ``book``, ``trades`` and ``ticker`` channels: ``100ms``
#: aggregates changes per 100 ms; ``raw`` sends every change and needs an authorised
#: connection (``public/auth``)
Interval = Literal["100ms", "raw"]
PUBLIC_INTERVAL: Interval = "100ms"
RAW_INTERVAL: Interval = "raw"


class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[venues.deribit.options]`` in spiceflow.toml."""

    #: currencies whose instruments are loaded (one ``public/get_instruments`` call each)
    currencies: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_CURRENCIES))
    #: channel interval; unset: ``raw`` when API credentials are set, else ``100ms``
    interval: Interval | None = None

    def __post_init__(self) -> None:
        if not self.currencies:
            raise ValueError("currencies must name at least one currency")


# -- credentials --------------------------------------------------------------------------
ENV_CLIENT_ID = "DERIBIT_CLIENT_ID"
ENV_CLIENT_SECRET = "DERIBIT_CLIENT_SECRET"


@dataclass(frozen=True)
class Credentials:
    """API client credentials for ``public/auth`` (grant_type client_credentials).
    ``repr`` hides the secret so it can never reach a log line."""

    client_id: str
    client_secret: str

    def __repr__(self) -> str:
        return f"Credentials(client_id={self.client_id!r}, client_secret='***')"

    __str__ = __repr__


def credentials_from_env(environ: dict[str, str] | None = None) -> Credentials | None:
    """Credentials from ``DERIBIT_CLIENT_ID`` / ``DERIBIT_CLIENT_SECRET``, or None
    when either is missing or empty (then public ``100ms`` channels are used)."""
    env = os.environ if environ is None else environ
    client_id = env.get(ENV_CLIENT_ID, "").strip()
    secret = env.get(ENV_CLIENT_SECRET, "").strip()
    if client_id and secret:
        return Credentials(client_id, secret)
    return None


def interval_for(credentials: Credentials | None, configured: Interval | None = None) -> Interval:
    """The channel interval: the configured one, else ``raw`` with credentials and
    ``100ms`` without."""
    if configured is not None:
        return configured
    return RAW_INTERVAL if credentials is not None else PUBLIC_INTERVAL
