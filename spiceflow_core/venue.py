"""Kept import path: the module lives at ``spiceflow_core.plugin.contract``."""

from spiceflow_core.plugin.contract import *
