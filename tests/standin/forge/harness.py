"""The ``forge`` pytest fixture: the stand-in WebUI Forge (``tests/standin/forge``) for one test.

It is the ``webui`` fixture's :class:`~tests.standin.webui.harness.WebUI` with this directory first on ``sys.path``
(Forge's ``modules`` overrides, ``backend``, ``modules_forge``) and Forge models (:class:`StandinForgeModel`)
instead of LatentDiffusion ones; ``backend``, ``modules_forge`` and ``astar_ext.forge`` are purged from
``sys.modules`` with ``modules`` before and after. ``scripts/astar.py`` then picks the Forge host, as in Forge.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest

from tests.standin.webui import harness as webui_harness

FORGE_ROOT = os.path.dirname(os.path.abspath(__file__))


class Forge(webui_harness.WebUI):
    purge_prefixes = ("modules", "backend", "modules_forge", "astar_ext.webui", "astar_ext.forge")
    root = FORGE_ROOT

    def install(self):
        import k_diffusion.sampling

        self._saved_modules = {k: sys.modules.pop(k) for k in list(sys.modules) if self._purged(k)}
        self._kd_torch = k_diffusion.sampling.torch
        root = webui_harness.REPO_ROOT
        self._added_paths = [self.root] + ([root] if root not in sys.path else [])
        sys.path[:0] = self._added_paths
        self._installed = True
        for name in webui_harness.MODULE_NAMES:
            setattr(self, name.replace("api.", "api_"), importlib.import_module(f"modules.{name}"))
        self.sd_hijack_unet.install()
        self.sd_model = self.make_model("sd1")
        self.shared.sd_model = self.sd_model
        self.shared.opts.data["sd_model_checkpoint"] = self.sd_model.sd_checkpoint_info.title
        return self

    def make_model(self, variant="sd1", *, name=None, tiny=None, embeddings=None, use=False):
        """A registered stand-in Forge model, ``"sd1"`` or ``"sdxl"`` (the tiny SDXL layout)."""
        from tests.standin.forge.model import StandinForgeModel

        if tiny is None and variant == "sdxl":
            tiny = webui_harness.tiny_sdxl(0)
        model = StandinForgeModel(tiny or self.tiny, variant=variant, embeddings=embeddings)
        info = self.sd_models.CheckpointInfo(name or f"tiny-forge-{variant}.safetensors")
        self.sd_models.register_model(model, info)
        if use:
            self.use_model(model)
        return model


@pytest.fixture
def forge(tiny):
    """The stand-in WebUI Forge (see :class:`Forge`), installed for one test."""
    handle = Forge(tiny)
    try:
        yield handle.install()
    finally:
        handle.uninstall()
