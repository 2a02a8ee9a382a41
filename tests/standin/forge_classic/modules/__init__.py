"""STAND-IN of Forge Classic's ``modules`` package: Classic's changed modules here, the rest from the WebUI
stand-in (:func:`webui_module`, as in the Forge main stand-in); :func:`forge_module` loads a Forge main stand-in
module where Classic's file is the same (an ancestor of Forge main's) apart from the backend it calls."""

import importlib.util
import os
import sys

from tests.standin.forgelike import overlay_webui_modules

webui_module = overlay_webui_modules(sys.modules[__name__])
FORGE_MODULES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "forge", "modules")


def forge_module(name):
    """The Forge main stand-in's ``modules/<name>.py``, loaded once as ``modules._forge_<name>``."""
    key = f"{__name__}._forge_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(FORGE_MODULES, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
