"""Kept import path: the module lives at ``spiceflow_core.broadcast.wire``."""

from spiceflow_core.broadcast.wire import *
