"""STAND-IN package of WebUI Forge's ``backend.sampling`` (see ``tests/standin/forge``)."""
