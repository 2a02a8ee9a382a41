"""STAND-IN of the WebUI 1.10.1 ``modules`` package (a namespace package in the WebUI).

Imported as ``modules`` when ``tests/standin/webui`` is first on ``sys.path``; see
``tests/standin/webui/harness.py`` for the fixture that installs and removes it.
"""
