"""STAND-IN package of Forge Classic's ``ldm_patched`` (see ``tests/standin/forge_classic``)."""
