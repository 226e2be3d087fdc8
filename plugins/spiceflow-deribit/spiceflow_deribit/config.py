"""Deribit endpoints, limits and credentials: every number here is a documented
Deribit value (or a deliberate margin below one), in one place so README, session,
venue and simulator agree."""

from __future__ import annotations

import os
from dataclasses import dataclass

from spiceflow_core.plugin.contract import Endpoints

VENUE = "deribit"
EXCHANGE = "deribit"

LIVE = Endpoints(ws_url="wss://www.deribit.com/ws/api/v2", rest_url="https://www.deribit.com/api/v2")
WS_PATH = "/ws/api/v2"
REST_PATH = "/api/v2"

#: currencies whose instruments ``fetch_instruments`` loads by default (one
#: ``public/get_instruments`` call each; ``"any"`` would fetch all in one call)
DEFAULT_CURRENCIES: tuple[str, ...] = ("BTC", "ETH", "USDC", "USDT")

#: instrument kinds mapped to the core model; combos are fetched by the same call
#: (no ``kind`` filter) but the core model has no combo kind, so they are skipped.
MAPPED_KINDS = ("future", "option", "spot")

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
#: public channels are aggregated per 100 ms; ``raw`` needs an authorised connection
PUBLIC_INTERVAL = "100ms"
RAW_INTERVAL = "raw"

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


def interval_for(credentials: Credentials | None) -> str:
    return RAW_INTERVAL if credentials is not None else PUBLIC_INTERVAL
