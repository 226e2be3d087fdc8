"""The venue plugin contract: everything a venue plugin implements and uses, in one
import (``from spiceflow_core.plugin import Venue, WsSession, hookimpl, ...``).

The documentation of the contract -- what to implement, in which plugin file, and the
rules a venue is checked against when it loads -- is the docstring of
``spiceflow_core.plugin.contract``. Next to it: the pluggy hook specification
(``hookspecs``), plugin discovery (``registry``) and the REST client (``rest``).
"""

from spiceflow_core.plugin import contract as _contract
from spiceflow_core.plugin.contract import *  # noqa: F403 -- the contract's __all__, declared once there

__all__ = _contract.__all__
