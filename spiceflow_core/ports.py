"""Free loopback ports, for a child process that must be told its port up front (a
nats-server, a ``spiceflow run`` under test). Racy by nature: another process may take the
port before the child binds it. Code that binds a socket itself binds port 0 instead."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
