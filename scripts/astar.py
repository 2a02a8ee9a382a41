"""A-STAR extension entry point for the AUTOMATIC1111 WebUI (1.10.x).

The WebUI executes every file of ``scripts/`` with the extension root on ``sys.path`` and records
the ``scripts.Script`` subclasses it finds in the module: importing ``AStarScript`` here is enough.
The package stays cached in ``sys.modules``; callbacks are (re-)registered each time this file runs,
idempotently, because "Reload UI" clears them and "Reload custom script bodies" does not.
"""

from astar_ext.webui.script import AStarScript, register_callbacks

register_callbacks()

__all__ = ["AStarScript"]
