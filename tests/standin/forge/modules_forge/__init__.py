"""STAND-IN of Forge's ``modules_forge`` package (present, as in Forge; ``scripts/astar.py`` looks for it)."""
