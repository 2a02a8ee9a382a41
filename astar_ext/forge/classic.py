"""The Forge Classic host: AUTOMATIC1111's models and text wrappers around Forge's ``ldm_patched`` UNet.

Forge Classic (``Haoming02/sd-webui-forge-classic``, branch ``classic``, checked at ``1f95d717``; ``docs/hosts.md``
has the facts with file references) is the Forge of early 2024, kept on gradio 3.41. It keeps the WebUI's
extension interface (so the A-STAR script is the one of ``astar_ext/webui/script.py``) and mixes the two other
hosts; this module is the :class:`~astar_ext.hostapi.Host` it asks there:

* The loaded model is AUTOMATIC1111's ldm/sgm model object (``modules_forge/forge_loader.py``,
  ``load_model_for_a1111``) with ``forge_objects`` added. Its text encoders are AUTOMATIC1111's wrappers
  (``FrozenCLIPEmbedderWithCustomWords`` subclasses in ``modules_forge/forge_clip.py``, with ``tokenize_line``):
  ``cond_stage_model`` on SD 1.x/2.x, ``conditioner.embedders`` on SDXL; they are read as on AUTOMATIC1111
  (:mod:`astar_ext.webui.host`).
* The UNet is Forge's ``ldm_patched`` ``UNetModel`` (``sd_model.model.diffusion_model`` is
  ``forge_objects.unet.model.diffusion_model``), and the CFG denoiser runs it through ``forge_sample``
  (``modules_forge/forge_sampler.py``) > ``ldm_patched/modules/samplers.py`` ``sampling_function`` >
  ``BaseModel.apply_model(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)``: the same call
  as Forge main's ``KModel.apply_model``, so the conditional-only pass is the Forge adapter's
  (:func:`astar_ext.forge.host.cond_pass`).
* Sampling runs under ``torch.inference_mode()`` (``modules/processing.py``), and the ``ldm_patched`` UNet has
  Forge main's two obstacles to a gradient pass (in-place residual adds, the CPU kernel's ``exp(out=)``), in
  ``ldm_patched/ldm/modules/attention.py``: :func:`~astar_ext.forge.host.autograd_safe` with
  :data:`~astar_ext.forge.host.CLASSIC_KERNELS`. The weights are loaded under ``torch.no_grad()``, not inference
  mode, but the model may be moved under inference mode, so they are made normal tensors when the sampler
  starts, as on Forge main.
"""

from __future__ import annotations

import functools
from typing import Any

from ..capture import attention_levels
from ..passconcepts import Tokenizer
from ..passrun import normal_tensors
from ..webui import host as webui_host
from . import host as forge_host


def model_refusal(sd_model: Any) -> str | None:
    """None when A-STAR can run on Forge Classic's loaded model, otherwise why not."""
    if sd_model is None:
        return "no model is loaded"
    if not forge_host.is_forge(sd_model):
        return "the loaded model is not a Forge model (no forge_objects)"
    if getattr(sd_model, "is_sd3", False):
        return "A-STAR does not support SD3: its MMDiT has no cross-attention layers"
    if getattr(sd_model, "cond_stage_key", None) == "edit":
        return "A-STAR does not support InstructPix2Pix models"
    if getattr(getattr(sd_model, "model", None), "conditioning_key", None) == "crossattn-adm":
        return "A-STAR does not support unCLIP models"
    model = getattr(forge_host.unet_patcher(sd_model), "model", None)
    unet = getattr(model, "diffusion_model", None)
    if unet is None or not hasattr(model, "apply_model"):
        return "the loaded model has no UNet that A-STAR knows (forge_objects.unet.model.diffusion_model)"
    if not attention_levels(unet):
        return "the loaded model's UNet has no cross-attention (attn2) layers"
    if not webui_host.text_encoders(sd_model):
        return "the loaded model's text encoder has no tokenize_line, so the concepts cannot be located"
    return None


class ClassicHost:
    """The :class:`~astar_ext.hostapi.Host` of Forge Classic (``ldm_patched`` backend, AUTOMATIC1111's text)."""

    name = "WebUI Forge Classic"
    layer_defaults_text = webui_host.LAYER_DEFAULTS_TEXT

    def refusal(self, shared: Any, p: Any) -> str | None:
        return model_refusal(getattr(shared, "sd_model", None))

    def model_refusal(self, sd_model: Any) -> str | None:
        return model_refusal(sd_model)

    def unet(self, sd_model: Any) -> Any:
        return forge_host.unet_patcher(sd_model).model.diffusion_model

    def tokenizer(self, sd_model: Any) -> Tokenizer:
        return webui_host.tokenizer(sd_model)

    def excludes_eot(self, sd_model: Any) -> bool:
        return webui_host.excludes_eot(sd_model)

    def layer_choice(self, sd_model: Any, setting: str) -> str:
        return webui_host.layer_choice(sd_model, setting)

    def run_options(self, shared: Any, sd_model: Any) -> dict:
        from modules import prompt_parser

        unet = self.unet(sd_model)
        safe = functools.partial(forge_host.autograd_safe, kernels=forge_host.CLASSIC_KERNELS)

        def reconstructing(denoiser: Any, kwargs: dict, call: int, rows: list[int]) -> Any:
            return forge_host.cond_pass(prompt_parser.reconstruct_multicond_batch, denoiser, kwargs, call, rows,
                                        safe=safe)

        return {"context_transform": None, "cond_pass": reconstructing, "prepare": lambda: normal_tensors(unet)}


HOST = ClassicHost()
