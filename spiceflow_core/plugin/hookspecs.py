"""The plugin interface: pluggy hook specifications of project ``spiceflow``.

A venue distribution registers a module under the ``spiceflow.venues`` entry-point
group; the module implements one or more of these hooks with ``@hookimpl``.
"""

from __future__ import annotations

import pluggy

from spiceflow_core.plugin.contract import Venue

PROJECT = "spiceflow"
ENTRY_POINT_GROUP = "spiceflow.venues"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def spiceflow_venues() -> list[Venue]:
    """Return the venues this plugin provides (each a :class:`Venue` instance)."""
