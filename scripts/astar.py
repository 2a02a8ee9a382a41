"""A-STAR extension entry point for the AUTOMATIC1111 WebUI (1.10.x), WebUI Forge and Forge Classic.

The WebUI executes every file of ``scripts/`` with the extension root on ``sys.path`` and records
the ``scripts.Script`` subclasses it finds in the module: importing ``AStarScript`` here is enough.
The package stays cached in ``sys.modules``; callbacks are (re-)registered each time this file runs,
idempotently, because "Reload UI" clears them and "Reload custom script bodies" does not.

The host is picked here, at start-up, by the packages the program has: WebUI Forge (``modules_forge`` and
its ``backend``) gets the Forge adapter (``astar_ext.forge.host``), Forge Classic (``modules_forge`` and
``ldm_patched``) the Classic one (``astar_ext.forge.classic``), any other WebUI the AUTOMATIC1111 one
(``astar_ext.webui.host``).
"""

from astar_ext.webui.hosting import pick_host
from astar_ext.webui.script import AStarScript, register_callbacks, use_host

use_host(pick_host())
register_callbacks()

__all__ = ["AStarScript"]
