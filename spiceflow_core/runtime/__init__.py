"""The actor runtime: reference data, WebSocket, router, order book and broadcast
actors wired per venue by the orchestrator (see ``orchestrator.py``)."""
