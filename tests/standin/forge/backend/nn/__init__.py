"""STAND-IN package of WebUI Forge's ``backend.nn`` (see ``tests/standin/forge``)."""
