"""The ``spiceflow`` command line."""

from spiceflow_core.cli.main import main

__all__ = ["main"]
