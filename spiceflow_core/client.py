"""Kept import path: the module lives at ``spiceflow_core.broadcast.subscriber``."""

from spiceflow_core.broadcast.subscriber import *
