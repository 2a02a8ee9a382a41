"""STAND-IN of ``modules/paths.py`` (and ``paths_internal.py``) of WebUI 1.10.1: the base directories.

``script_path`` is the stand-in WebUI root (``tests/standin/webui``); nothing is written to ``data_path``.
"""

import os

script_path = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
data_path = script_path
models_path = os.path.join(data_path, "models")
extensions_dir = os.path.join(data_path, "extensions")
extensions_builtin_dir = os.path.join(script_path, "extensions-builtin")
