"""STAND-IN of WebUI Forge's ``modules`` package: Forge's changed modules here, the rest from the WebUI stand-in.

A module here that changes a WebUI stand-in module builds on it through :func:`webui_module`, which loads the
WebUI stand-in's file under a private name (``modules._webui_<name>``), so both can exist side by side.
"""

import sys

from tests.standin.forgelike import overlay_webui_modules

webui_module = overlay_webui_modules(sys.modules[__name__])
