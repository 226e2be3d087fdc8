"""Starting ``spiceflow`` as a user does (the installed command) and stopping it as a
user does (Ctrl-C)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import anyio

# the installed console script (``python -m spiceflow_core.cli.main`` would load the CLI
# module twice, as __main__ and as spiceflow_core.cli.main)
_SCRIPT = Path(sys.executable).parent / "spiceflow"
#: the ``spiceflow`` command line prefix: ``subprocess.run([*SPICEFLOW, "replay", ...])``
SPICEFLOW = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "import sys; from spiceflow_core.cli.main import main; sys.exit(main())"]
)


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
