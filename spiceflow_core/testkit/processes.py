"""Stopping a ``spiceflow`` process a test started, as a user does: Ctrl-C."""

from __future__ import annotations

import signal
import subprocess

import anyio


async def interrupt(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 15.0) -> int:
    """SIGINT (unless it has exited already), then its exit code; killed and
    ``TimeoutExpired`` raised when it does not stop within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return await anyio.to_thread.run_sync(lambda: proc.wait(timeout=timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
