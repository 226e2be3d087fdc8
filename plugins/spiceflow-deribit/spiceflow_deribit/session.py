"""The Deribit JSON-RPC dialect of one WebSocket connection: request ids, batching,
heartbeats and authentication. A new session per connection (ids restart at 1)."""

from __future__ import annotations

import itertools

from spiceflow_core.model import Event, SubscribeAck
from spiceflow_core.plugin.contract import Request, WsSession

from . import config, schemas
from .parsing import parse_frame


def _encode(request_id: int, method: str, params: dict) -> str:
    return schemas.encoder.encode(
        schemas.RpcRequest(jsonrpc="2.0", id=request_id, method=method, params=params)
    ).decode()


class DeribitSession(WsSession):
    sends_heartbeats = True

    def __init__(
        self,
        *,
        credentials: config.Credentials | None = None,
        heartbeat_interval: int = config.HEARTBEAT_INTERVAL,
        max_channels_per_request: int = config.MAX_CHANNELS_PER_REQUEST,
    ) -> None:
        if heartbeat_interval < config.MIN_HEARTBEAT_INTERVAL:
            raise ValueError(f"Deribit heartbeat interval must be >= {config.MIN_HEARTBEAT_INTERVAL}s")
        self.credentials = credentials
        self.heartbeat_interval = heartbeat_interval
        self.max_channels_per_request = max_channels_per_request
        self._ids = itertools.count(1)
        #: request id -> (method, channels) of requests still awaiting their response
        self.pending: dict[int, tuple[str, list[str]]] = {}

    # -- frames we send -----------------------------------------------------------------
    def _request(self, method: str, params: dict, channels: list[str] | None = None) -> Request:
        request_id = next(self._ids)
        self.pending[request_id] = (method, list(channels or []))
        return Request(frame=_encode(request_id, method, params), request_id=request_id, channels=list(channels or []))

    def on_open(self) -> list[Request]:
        requests = []
        if self.credentials is not None:
            # the secret is only ever inside this frame, never in a log line or repr
            requests.append(
                self._request(
                    "public/auth",
                    {
                        "grant_type": "client_credentials",
                        "client_id": self.credentials.client_id,
                        "client_secret": self.credentials.client_secret,
                    },
                )
            )
        requests.append(self._request("public/set_heartbeat", {"interval": self.heartbeat_interval}))
        return requests

    def _batched(self, method: str, channels: list[str]) -> list[Request]:
        size = self.max_channels_per_request
        return [
            self._request(method, {"channels": channels[i : i + size]}, channels[i : i + size])
            for i in range(0, len(channels), size)
        ]

    def subscribe(self, channels: list[str]) -> list[Request]:
        return self._batched("public/subscribe", channels)

    def unsubscribe(self, channels: list[str]) -> list[Request]:
        return self._batched("public/unsubscribe", channels)

    def test_reply(self) -> str:
        """The ``public/test`` answer to a ``test_request`` (its response is swallowed)."""
        return self._request("public/test", {}).frame

    def resend(self, request_id: int) -> Request | None:
        """The same subscription again under a new id, e.g. after ``too_many_requests``
        (the caller waits for credits to refill first: ~0.3 s per request)."""
        method, channels = self.pending.pop(request_id, ("", []))
        if method not in ("public/subscribe", "public/unsubscribe"):
            return None
        return self._request(method, {"channels": channels}, channels)

    @staticmethod
    def is_rate_limited(ack: SubscribeAck) -> bool:
        return ack.error is not None and ack.error.startswith(f"{config.TOO_MANY_REQUESTS}:")

    def retry_after(self, ack: SubscribeAck) -> float | None:
        """The core's retry hook: after ``too_many_requests`` wait until the credit pool
        holds one more request (the core backs off further on repeated refusals and
        sends ``resend(request_id)``); any other error is final."""
        if not self.is_rate_limited(ack):
            return None
        return config.SUBSCRIBE_COST / config.SUBSCRIBE_REFILL_PER_SECOND

    # -- frames we receive ------------------------------------------------------------------
    def parse(self, frame: str | bytes, recv_ts_ns: int) -> list[Event]:
        events = parse_frame(frame, recv_ts_ns, test_reply=self.test_reply)
        # an answer to a request is a frame of its own (parse_frame returns it alone)
        if not events or type(events[0]) is not SubscribeAck:
            return events
        ack = events[0]
        method, channels = self.pending.get(ack.request_id, ("", []))
        if not self.is_rate_limited(ack):
            self.pending.pop(ack.request_id, None)  # kept for resend() otherwise
        if method == "public/test" and ack.error is None:
            return []  # the answer to our heartbeat reply: nothing to report
        if method == "public/unsubscribe" and ack.error is None and not ack.channels:
            ack.channels = channels
        return events
