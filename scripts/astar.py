"""A-STAR extension entry point for the AUTOMATIC1111 WebUI.

The WebUI executes every file of ``scripts/`` with the extension root on ``sys.path``; importing the
package here keeps it in ``sys.modules`` for later lazy imports. The ``scripts.Script`` subclass
that puts A-STAR into txt2img and img2img is added by the WebUI integration (issue 3); until then
the extension only provides the engine and registers nothing in the UI.
"""

import astar_ext  # noqa: F401
