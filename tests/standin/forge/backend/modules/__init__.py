"""STAND-IN package of WebUI Forge's ``backend.modules`` (see ``tests/standin/forge``)."""
