"""Kept import path: the module lives at ``spiceflow_core.plugin.hookspecs``."""

from spiceflow_core.plugin.hookspecs import *
