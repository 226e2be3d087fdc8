"""The actor runtime: per venue, the reference data, WebSocket, order book and broadcast
actors, the router on the frame path and the supervisor that reconciles the
subscription table, all wired by the orchestrator (see ``orchestrator.py``)."""

from spiceflow_core.logs import route_retries_to_loguru

route_retries_to_loguru()
