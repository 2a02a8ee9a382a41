"""STAND-IN of the AUTOMATIC1111 WebUI 1.10.1 host for CI tests (test code only, MIT).

``modules/`` imitates the WebUI's ``modules`` package (put this directory first on ``sys.path``),
``scripts/`` holds stand-ins of WebUI script files, ``model.py`` a LatentDiffusion-like model around
:class:`astar_ext.bench.tiny.TinyLDM`, and ``harness.py`` the ``webui`` pytest fixture. Nothing here is copied
from the WebUI (AGPL): it is an independent implementation of the behaviour, names and call order.
"""
