"""The plugin hook: the pluggy specification of project ``spiceflow``.

A venue distribution registers a module under the ``spiceflow.venues`` entry-point
group; the module implements ``spiceflow_venues`` with ``@hookimpl``.
"""

from __future__ import annotations

import pluggy

from spiceflow_core.plugin.contract import PROJECT, Venue, hookimpl

__all__ = ["ENTRY_POINT_GROUP", "PROJECT", "hookimpl", "hookspec", "spiceflow_venues"]

ENTRY_POINT_GROUP = "spiceflow.venues"

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def spiceflow_venues() -> list[Venue]:  # type: ignore[empty-body]  # a specification: plugins implement it
    """Return the venues this plugin provides (each a :class:`Venue` instance)."""
