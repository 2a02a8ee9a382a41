"""A-STAR extension entry point for the AUTOMATIC1111 WebUI (1.10.x) and WebUI Forge.

The WebUI executes every file of ``scripts/`` with the extension root on ``sys.path`` and records
the ``scripts.Script`` subclasses it finds in the module: importing ``AStarScript`` here is enough.
The package stays cached in ``sys.modules``; callbacks are (re-)registered each time this file runs,
idempotently, because "Reload UI" clears them and "Reload custom script bodies" does not.

The host is picked here, at start-up: WebUI Forge (its ``modules_forge`` package is importable) gets the
Forge adapter (``astar_ext.forge.host``), any other WebUI the AUTOMATIC1111 one (``astar_ext.webui.host``).
"""

import importlib.util

from astar_ext.webui.script import AStarScript, register_callbacks, use_host

if importlib.util.find_spec("modules_forge") is not None:
    from astar_ext.forge.host import HOST
else:
    from astar_ext.webui.host import HOST

use_host(HOST)
register_callbacks()

__all__ = ["AStarScript"]
