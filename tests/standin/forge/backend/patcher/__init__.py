"""STAND-IN package of WebUI Forge's ``backend.patcher`` (see ``tests/standin/forge``)."""
