"""The WebUI Forge adapter: the only part of the extension that knows Forge's backend (``backend/``).

Forge keeps the WebUI's extension interface, so the script, its UI, infotext, API, XYZ axes, settings and the
token route are those of :mod:`astar_ext.webui` (``script``, ``route``); :mod:`astar_ext.forge.host` is the host
they ask on Forge (model objects, UNet, text engines, the conditional-only UNet call, inference mode).
``scripts/astar.py`` picks it at start-up when Forge's ``modules_forge`` package is importable.
"""
