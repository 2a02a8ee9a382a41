"""STAND-IN of what Forge Classic's loader (``modules_forge/forge_loader.py``, ``load_model_for_a1111``) makes of a
WebUI model: the same ldm/sgm model object and text wrappers, with

* ``forge_objects`` (``unet`` a ``UnetPatcher`` of an ``ldm_patched`` ``BaseModel`` whose ``diffusion_model`` is
  Forge's UNet), ``forge_objects_original`` and ``forge_objects_after_applying_lora`` (re-copied into
  ``forge_objects`` before each sampling);
* ``model.diffusion_model`` replaced by that same UNet (Forge's block and attention forwards,
  ``ldm_patched.ldm.modules.attention``); its weights are normal tensors (the loader is ``@torch.no_grad()``);
* ``is_sd1``/``is_sd2``/``is_sdxl`` set by the loader.
"""

from __future__ import annotations

import copy

import torch

from tests.standin.forge.backend.patcher.unet import UnetPatcher
from tests.standin.forge.model import ForgeObjects


def classic_model(model):
    """Make the WebUI stand-in ``model`` a Forge Classic one (in place); returns it."""
    # imported here, not at the top: the fixture installs a fresh ``ldm_patched`` for each test
    from ldm_patched.ldm.modules.attention import patch_forwards
    from ldm_patched.modules.model_base import BaseModel

    with torch.no_grad():
        unet = patch_forwards(copy.deepcopy(model.model.diffusion_model))
    model.model.diffusion_model = unet
    model.forge_objects = ForgeObjects(UnetPatcher(BaseModel(unet, model.alphas_cumprod)))
    model.forge_objects_original = model.forge_objects.shallow_copy()
    model.forge_objects_after_applying_lora = model.forge_objects.shallow_copy()
    return model
