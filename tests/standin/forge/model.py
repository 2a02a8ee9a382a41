"""STAND-IN of a Forge model (``backend/diffusion_engine/sd15.py``, ``sdxl.py``: a ``ForgeDiffusionEngine``) around the
tiny models of the tests.

What Forge's engines have and A-STAR reads: ``forge_objects`` (``unet`` a ``UnetPatcher`` of a ``KModel``),
``forge_objects_original`` (re-copied into ``forge_objects`` before each sampling), the ``is_sd1``/``is_sd2``/
``is_sdxl``/``is_sd3`` flags, the text engines (``text_processing_engine`` on SD 1.x; ``text_processing_engine_l`` and
``_g`` on SDXL, concatenated CLIP-L first) with ``tokenize_line``/``tokenize``/``id_end`` and the HF ``tokenizer``
(``classic_engine.py``: ``self.tokenizer``; here the WebUI stand-in's decode-only one), and
``get_learned_conditioning``/``decode_first_stage``/``encode_first_stage``, decorated with
``@torch.inference_mode()``. ``cond_stage_model`` is None and there is no ``model`` attribute, as in Forge. The
UNet is a copy of the tiny ldm UNet made under ``torch.inference_mode()`` (Forge loads its models in
``@torch.inference_mode()`` functions, so the weights are inference tensors) with Forge's block and attention
forwards (``backend.nn.unet.forgeify``).

Stand-in artifacts, needed only by the WebUI stand-in's sampler constructors that Forge's subclass: ``alphas_cumprod``,
``parameterization`` and ``cond_stage_key``; ``ema_scope`` (a no-op) for the WebUI stand-in's batch loop.
"""

from __future__ import annotations

import contextlib
import copy

import torch

from tests.standin.webui.model import StandinConditioner, StandinFirstStage, StandinTextWrapper


class ForgeObjects:
    def __init__(self, unet, clip=None, vae=None, clipvision=None):
        self.unet, self.clip, self.vae, self.clipvision = unet, clip, vae, clipvision

    def shallow_copy(self):
        return ForgeObjects(self.unet, self.clip, self.vae, self.clipvision)


class StandinForgeModel:
    def __init__(self, tiny, variant: str = "sd1", embeddings=None):
        if variant not in ("sd1", "sdxl"):
            raise ValueError(f"unknown variant {variant!r}")
        # imported here, not at the top: the fixture installs a fresh ``backend`` for each test
        from backend.modules.k_model import KModel
        from backend.nn.unet import forgeify
        from backend.patcher.unet import UnetPatcher

        xl = variant == "sdxl"
        with torch.inference_mode():
            unet = forgeify(copy.deepcopy(tiny.diffusion_model))
            self.first_stage = StandinFirstStage()
        patcher = UnetPatcher(KModel(unet, tiny.alphas_cumprod))
        self.forge_objects = ForgeObjects(patcher)
        self.forge_objects_original = self.forge_objects.shallow_copy()
        self.forge_objects_after_applying_lora = self.forge_objects.shallow_copy()
        self.is_sd1, self.is_sd2, self.is_sdxl, self.is_sd3 = not xl, False, xl, False
        self.is_inpaint = False
        self.cond_stage_model = None
        self.first_stage_model = None
        if xl:
            self.text_processing_engine_l = StandinTextWrapper(tiny.text, embeddings=embeddings)
            self.text_processing_engine_g = StandinTextWrapper(tiny.text2, id_pad=0, embeddings=embeddings,
                                                               return_pooled=True)
            self._encode = StandinConditioner([self.text_processing_engine_l, self.text_processing_engine_g])
        else:
            self.text_processing_engine = StandinTextWrapper(tiny.text, embeddings=embeddings)
            self._encode = self.text_processing_engine
        for engine in self._engines():
            engine.tokenizer = engine.wrapped.tokenizer  # Forge's engines hold the HF tokenizer as ``tokenizer``
        self.alphas_cumprod = tiny.alphas_cumprod.clone()
        self.parameterization = "eps"
        self.cond_stage_key = "txt"
        self.tiny_config = tiny.config
        self.lowvram = False
        self.sd_checkpoint_info = None
        self.sd_model_checkpoint = None
        self.sd_model_hash = None

    def _engines(self):
        names = ("text_processing_engine_l", "text_processing_engine_g") if self.is_sdxl \
            else ("text_processing_engine",)
        return [getattr(self, n) for n in names]

    @property
    def device(self):
        return torch.device("cpu")

    @contextlib.contextmanager
    def ema_scope(self, context=None):
        yield

    @torch.inference_mode()
    def get_learned_conditioning(self, prompt):
        if self.is_sdxl:
            force_zero = getattr(prompt, "is_negative_prompt", False) and all(x == "" for x in prompt)
            return self._encode(prompt, force_zero_embeddings=["txt"] if force_zero else [])
        return self._encode(prompt)

    @torch.inference_mode()
    def decode_first_stage(self, x):
        return self.first_stage.decode(x)

    @torch.inference_mode()
    def encode_first_stage(self, x):
        return self.first_stage.encode(x)

    def get_first_stage_encoding(self, x):
        return x
