"""STAND-IN of Forge Classic's ``modules_forge`` package (``scripts/astar.py`` looks for it and for
``ldm_patched``)."""
