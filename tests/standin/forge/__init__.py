"""STAND-IN of the WebUI Forge interfaces that A-STAR uses (main ``dfdcbab6``), for tests only (MIT).

Forge keeps the WebUI's ``modules`` and changes its backend. This stand-in is the AUTOMATIC1111 stand-in
(``tests/standin/webui``) with Forge's differences laid over it: ``modules/`` here holds only the modules Forge
changes (its ``__path__`` falls back to the WebUI stand-in's), ``backend/`` imitates the parts of Forge's backend
that the CFG denoiser and A-STAR's adapter use, and ``modules_forge/`` exists so that ``scripts/astar.py``
recognises Forge. Nothing here is Forge code: it is written from reading Forge's source, file by file (each
module's docstring names the file), to reproduce its signatures, call order and inference mode.
"""
