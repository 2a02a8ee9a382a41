"""STAND-IN of WebUI Forge's ``modules`` package: Forge's changed modules here, the rest from the WebUI stand-in.

A module here that changes a WebUI stand-in module builds on it through :func:`webui_module`, which loads the
WebUI stand-in's file under a private name (``modules._webui_<name>``), so both can exist side by side.
"""

import importlib.util
import os
import sys

WEBUI_MODULES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "webui", "modules")
__path__.append(WEBUI_MODULES)


def webui_module(name):
    """The WebUI stand-in's ``modules/<name>.py``, loaded once as ``modules._webui_<name>``."""
    key = f"{__name__}._webui_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(WEBUI_MODULES, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
