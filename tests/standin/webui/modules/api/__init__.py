"""STAND-IN of the WebUI 1.10.1 ``modules/api`` package (no HTTP server; see ``api.py``)."""
