"""STAND-IN package of WebUI Forge's ``backend`` (see ``tests/standin/forge``)."""
