"""The WebUI Forge adapters: the only part of the extension that knows Forge's backends.

Forge keeps the WebUI's extension interface, so the script, its UI, infotext, API, XYZ axes, settings and the
token route are those of :mod:`astar_ext.webui` (``script``, ``route``); :mod:`astar_ext.forge.host` is the host
they ask on Forge main (``backend/``: model objects, UNet, text engines, the conditional-only UNet call,
inference mode), :mod:`astar_ext.forge.classic` the one on Forge Classic (``ldm_patched``). ``scripts/astar.py``
picks one at start-up (``astar_ext.webui.hosting.pick_host``).
"""
