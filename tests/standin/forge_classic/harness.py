"""The ``forge_classic`` pytest fixture: the stand-in Forge Classic (``tests/standin/forge_classic``) for one test.

It is the ``forge`` fixture's harness with this directory first on ``sys.path`` (Classic's ``modules`` overrides,
``ldm_patched``, ``modules_forge``) and Classic models: the WebUI stand-in's models with ``forge_objects`` and
Forge's UNet forwards (:func:`tests.standin.forge_classic.model.classic_model`). ``scripts/astar.py`` then picks
the Classic host, as in Forge Classic (``modules_forge`` and ``ldm_patched``, no ``backend``).
"""

from __future__ import annotations

import os

import pytest

from tests.standin.forge import harness as forge_harness
from tests.standin.webui import harness as webui_harness

CLASSIC_ROOT = os.path.dirname(os.path.abspath(__file__))


class ForgeClassic(forge_harness.Forge):
    purge_prefixes = ("modules", "ldm_patched", "modules_forge", "astar_ext.webui", "astar_ext.forge")
    root = CLASSIC_ROOT
    xyz_path = os.path.join(CLASSIC_ROOT, "scripts", "xyz_grid.py")

    def make_model(self, variant="sd1", *, name=None, tiny=None, embeddings=None, use=False):
        """A registered stand-in Classic model: the WebUI stand-in's ``variant`` model made a Classic one."""
        from tests.standin.forge_classic.model import classic_model

        model = webui_harness.WebUI.make_model(self, variant, name=name or f"tiny-classic-{variant}.safetensors",
                                               tiny=tiny, embeddings=embeddings)
        classic_model(model)
        if use:
            self.use_model(model)
        return model


@pytest.fixture
def forge_classic(tiny):
    """The stand-in Forge Classic (see :class:`ForgeClassic`), installed for one test."""
    handle = ForgeClassic(tiny)
    try:
        yield handle.install()
    finally:
        handle.uninstall()
