"""The WebUI Forge host: Forge's model objects, UNet, text engines and UNet call, for the A-STAR script.

Forge (``lllyasviel/stable-diffusion-webui-forge``, checked at main ``dfdcbab6``; ``docs/hosts.md`` has the
facts with file references) keeps the WebUI's extension interface, so the A-STAR script itself is the one of
``astar_ext/webui/script.py``; this module is the :class:`~astar_ext.hostapi.Host` it asks on Forge:

* The loaded model is a ``ForgeDiffusionEngine`` (``backend/diffusion_engine/``): ``is_sd1``/``is_sd2``/
  ``is_sdxl`` flags, ``forge_objects.unet`` (a ``UnetPatcher``) whose ``model`` is a ``KModel``
  (``backend/modules/k_model.py``) with ``apply_model(x, t, c_concat, c_crossattn, control,
  transformer_options, **kwargs)``, a ``predictor`` and the ``diffusion_model`` (``IntegratedUNet2DConditionModel``,
  ``backend/nn/unet.py``: the ldm layout, ``attn2`` ``CrossAttention`` modules called with ``context=``).
* The text engines are ``ClassicTextProcessingEngine`` s (``backend/text_processing/classic_engine.py``) with
  the WebUI's ``tokenize_line``/``tokenize``/``id_end``: ``text_processing_engine`` on SD 1.x/2.x,
  ``text_processing_engine_l`` and ``_g`` on SDXL (their outputs concatenated channel-wise, CLIP-L first).
* The CFG denoiser (``modules/sd_samplers_cfg_denoiser.py``) runs the UNet through
  ``backend.sampling.sampling_function``; its ``inner_model.inner_model`` is the loaded model. The timestep
  samplers (DDIM, PLMS) hand it the VP latent and a timestep, which it converts to a k-diffusion latent and
  sigma first (``classic_ddim_eps_estimation``).
* Sampling runs under ``torch.inference_mode()`` and the weights are inference tensors (the model is loaded in
  ``@torch.inference_mode()`` functions). The engine leaves inference mode for the loss pass
  (:func:`~astar_ext.controller.grad_mode`); :meth:`ForgeHost.run_options` makes the UNet's weights normal
  tensors when the sampler starts (:func:`~astar_ext.passrun.normal_tensors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..capture import attention_levels
from ..hostapi import NoModelLoaded
from ..passconcepts import Tokenizer, encoders_tokenizer
from ..passrun import image_of_rows, normal_tensors, subscript_rows

ENGINE_NAMES = ("text_processing_engine", "text_processing_engine_l", "text_processing_engine_g")
"""The text engines of Forge's SD 1.x/2.x (one) and SDXL (CLIP-L, OpenCLIP-bigG) models, in context order."""

QUANTIZED = ("nf4", "fp4", "gguf")


def is_forge(sd_model: Any) -> bool:
    return hasattr(sd_model, "forge_objects")


def is_sdxl(sd_model: Any) -> bool:
    return bool(getattr(sd_model, "is_sdxl", False))


def unet_patcher(sd_model: Any) -> Any:
    return sd_model.forge_objects.unet


def text_engines(sd_model: Any) -> list[Any]:
    """The model's text engines that tokenize the prompt (``tokenize_line``), in context order."""
    out = []
    for name in ENGINE_NAMES:
        engine = getattr(sd_model, name, None)
        if engine is not None and hasattr(engine, "tokenize_line") and hasattr(engine, "tokenize"):
            out.append(engine)
    return out


def _storage(sd_model: Any) -> str:
    model = getattr(unet_patcher(sd_model), "model", None)
    return str(getattr(model, "storage_dtype", "") or "")


def model_refusal(sd_model: Any) -> str | None:
    """None when A-STAR can run on Forge's loaded model, otherwise why not."""
    if sd_model is None:
        return "no model is loaded"
    if not is_forge(sd_model):
        return "the loaded model is not a Forge model (no forge_objects)"
    if getattr(sd_model, "is_sd3", False):
        return "A-STAR does not support SD3: its MMDiT has no cross-attention layers"
    if not (getattr(sd_model, "is_sd1", False) or getattr(sd_model, "is_sd2", False) or is_sdxl(sd_model)):
        return (f"A-STAR supports SD 1.x, SD 2.x and SDXL on Forge; the loaded model ({type(sd_model).__name__}) "
                "has no UNet with cross-attention layers")
    storage = _storage(sd_model).lower()
    if any(q in storage for q in QUANTIZED):
        return (f"A-STAR does not run on a quantized UNet ({storage}): the gradient pass through its "
                "dequantizing layers is untested")
    model = getattr(unet_patcher(sd_model), "model", None)
    unet = getattr(model, "diffusion_model", None)
    if unet is None or not hasattr(model, "apply_model"):
        return "the loaded model has no UNet that A-STAR knows (forge_objects.unet.model.diffusion_model)"
    if not attention_levels(unet):
        return "the loaded model's UNet has no cross-attention (attn2) layers"
    if not text_engines(sd_model):
        return "the loaded model has no text engine with tokenize_line, so the concepts cannot be located"
    return None


def tokenizer(sd_model: Any) -> Tokenizer:
    """The text engines' own tokenization (SDXL: CLIP-L's, checked prompt by prompt against OpenCLIP-bigG's).

    Raises :class:`~astar_ext.hostapi.NoModelLoaded` for Forge's placeholder model (``modules/sd_models.py``,
    ``FakeInitialModel``: Forge loads the checkpoint at the first generation)."""
    if not is_forge(sd_model):
        raise NoModelLoaded("Forge loads the checkpoint at the first generation")
    engines = text_engines(sd_model)
    if not engines:
        raise ValueError("the loaded model has no text engine with tokenize_line")
    hf = getattr(engines[0], "tokenizer", None)
    decode = (lambda i: hf.convert_ids_to_tokens(int(i))) if hasattr(hf, "convert_ids_to_tokens") else None
    return encoders_tokenizer(engines, decode)


def cond_pass(reconstruct: Any, denoiser: torch.nn.Module, kwargs: dict, call: int, rows: list[int],
              safe: Callable[[torch.nn.Module], contextlib.AbstractContextManager] | None = None) -> Any:
    """``denoise_fn(x, sigma)`` for the controller on Forge: the cond rows that hold a concept, through
    ``KModel.apply_model`` as ``backend/sampling/sampling_function.py`` runs a cond batch (the conditioning as
    ``c_crossattn`` and, on SDXL, ``y``; ``c_concat`` for inpainting models; the patcher's
    ``transformer_options`` with this batch's ``cond_or_uncond``/``sigmas``/``cond_mark``/``cond_indices``).
    Forge Classic runs its ``ldm_patched`` ``BaseModel.apply_model`` (same signature and conditions, the same
    batching in ``ldm_patched/modules/samplers.py``) the same way. ``safe(unet)`` makes the UNet call
    differentiable (default :func:`autograd_safe`, Forge main's kernels; Classic: :data:`CLASSIC_KERNELS`).

    The timestep samplers' calls are converted as the CFG denoiser converts them
    (``classic_ddim_eps_estimation``: ``x * sqrt(sigma^2 + 1)`` at the sigma of the timestep), so the gradient
    is taken with respect to the latent the sampler holds. A ControlNet's residuals are not applied in the loss
    pass (``control`` is None); ``docs/hosts.md`` says so.
    """
    conds_list, tensor = reconstruct(kwargs["cond"], call)
    images = image_of_rows(conds_list, rows)
    row_index = torch.tensor(rows, dtype=torch.long)
    sd_model = denoiser.inner_model.inner_model
    patcher = unet_patcher(sd_model)
    model = patcher.model
    options = getattr(patcher, "model_options", {}) or {}
    image_cond = getattr(patcher, "extra_concat_condition", None)
    if image_cond is None:
        image_cond = kwargs.get("image_cond")
    classic = bool(getattr(denoiser, "classic_ddim_eps_estimation", False))

    def denoise(x: torch.Tensor, sigma: Any, subset: list[int] | None = None) -> Any:
        dev = x.device
        pick = torch.arange(len(rows)) if subset is None else torch.tensor(subset, dtype=torch.long)
        idx = images[pick].to(dev)
        c = subscript_rows(tensor, row_index[pick])
        s = torch.as_tensor(sigma, device=dev)
        s = s[idx] if s.dim() else s.expand(len(pick))
        x_in = x[idx]
        if classic:
            acd = sd_model.alphas_cumprod
            fake = ((1 - acd) / acd) ** 0.5
            s = fake[s.round().long().clip(0, int(fake.shape[0]) - 1)].to(dev)
            x_in = x_in * ((s ** 2 + 1.0) ** 0.5)[:, None, None, None]
        conds: dict[str, Any] = {}
        if isinstance(c, dict):
            conds["c_crossattn"] = c["crossattn"]
            if "vector" in c:
                conds["y"] = c["vector"]
        else:
            conds["c_crossattn"] = c
        if isinstance(image_cond, torch.Tensor) and image_cond.shape[0] == x.shape[0] \
                and image_cond.shape[2:] == x.shape[2:]:
            conds["c_concat"] = image_cond[idx.to(image_cond.device)]
        n = len(pick)
        transformer_options = dict(options.get("transformer_options", {}))
        transformer_options.update(cond_or_uncond=[0], sigmas=s, cond_mark=torch.zeros(n).to(s),
                                   cond_indices=list(range(n)), uncond_indices=[])
        with (safe or autograd_safe)(model.diffusion_model):
            return model.apply_model(x_in, s, transformer_options=transformer_options, **conds)

    return denoise


def _clone_input(module: torch.nn.Module, args: tuple) -> tuple | None:
    x = args[0] if args else None
    if isinstance(x, torch.Tensor) and x.requires_grad and torch.is_grad_enabled():
        return (x.clone(),) + tuple(args[1:])
    return None


KernelSwap = tuple[str, tuple[str, ...], str]
"""Where a host's UNet finds its attention kernel: (the module of its ``CrossAttention``, that module's globals
that hold the kernel it calls, the module that defines ``attention_sub_quad`` and ``attention_pytorch``). The
UNet's module imported or picked the kernel by name, so its global is what ``CrossAttention`` calls."""

FORGE_KERNELS: KernelSwap = ("backend.nn.unet", ("attention_function",), "backend.attention")
"""Forge main (``backend/nn/unet.py:5`` imports ``attention_function`` from ``backend/attention.py``)."""

CLASSIC_KERNELS: KernelSwap = ("ldm_patched.ldm.modules.attention", ("optimized_attention",
                                                                      "optimized_attention_masked"),
                               "ldm_patched.ldm.modules.attention")
"""Forge Classic (``ldm_patched/ldm/modules/attention.py`` picks ``optimized_attention`` and
``optimized_attention_masked`` at import and defines the kernels itself)."""


@contextlib.contextmanager
def autograd_safe(unet: torch.nn.Module, kernels: KernelSwap = FORGE_KERNELS) -> Iterator[None]:
    """Make Forge's UNet differentiable for one call of the loss pass (a no-op when grad mode is off).

    Forge's UNet is written for inference and breaks autograd in two places (Forge main's ``backend/nn/unet.py``
    and Forge Classic's ``ldm_patched/ldm/modules/attention.py`` alike):

    * ``BasicTransformerBlock._forward`` adds the attention and feed-forward outputs to the residual stream in
      place (``x += n``) after ``norm1``/``norm2``/``norm3`` have saved that same tensor for their backward pass
      ("modified by an inplace operation"). A forward pre-hook hands each of these norms a copy of its input
      while autograd records, so the in-place add no longer touches a saved tensor; the values are the same.
    * The sub-quadratic attention that Forge picks on the CPU (``attention_sub_quad``) computes
      ``torch.exp(x, out=x)``, which autograd refuses. The UNet's module imported its kernel by name
      (``kernels``), so for the duration of the call that module global is set to ``attention_pytorch`` (the
      same attention, PyTorch's ``scaled_dot_product_attention``) and restored after. Forge's other kernels
      (PyTorch SDPA on a GPU, xformers, split, basic) are left alone.
    """
    if not torch.is_grad_enabled():
        yield
        return
    import importlib

    unet_module_name, names, kernel_module_name = kernels
    unet_module = importlib.import_module(unet_module_name)
    kernel_module = importlib.import_module(kernel_module_name)
    sub_quad = getattr(kernel_module, "attention_sub_quad", None)
    replacement = getattr(kernel_module, "attention_pytorch", None)

    handles = []
    saved: dict[str, Any] = {}
    try:
        for block in unet.modules():
            if type(block).__name__ == "BasicTransformerBlock":
                for name in ("norm1", "norm2", "norm3"):
                    norm = getattr(block, name, None)
                    if isinstance(norm, torch.nn.Module):
                        handles.append(norm.register_forward_pre_hook(_clone_input))
        if sub_quad is not None and replacement is not None:
            for name in names:
                if getattr(unet_module, name, None) is sub_quad:
                    saved[name] = sub_quad
                    setattr(unet_module, name, replacement)
        yield
    finally:
        for name, kernel in saved.items():
            setattr(unet_module, name, kernel)
        for handle in handles:
            handle.remove()


class ForgeHost:
    """The :class:`~astar_ext.hostapi.Host` of WebUI Forge (its ``backend``)."""

    name = "WebUI Forge"
    layer_defaults_text = "all of them on every model"

    def refusal(self, shared: Any, p: Any) -> str | None:
        return model_refusal(getattr(shared, "sd_model", None))

    def model_refusal(self, sd_model: Any) -> str | None:
        return model_refusal(sd_model)

    def unet(self, sd_model: Any) -> Any:
        return unet_patcher(sd_model).model.diffusion_model

    def tokenizer(self, sd_model: Any) -> Tokenizer:
        return tokenizer(sd_model)

    def excludes_eot(self, sd_model: Any) -> bool:
        return bool(getattr(sd_model, "is_sd2", False)) or is_sdxl(sd_model)

    def layer_choice(self, sd_model: Any, setting: str) -> str:
        return setting if setting and setting != "automatic" else "all"

    def run_options(self, shared: Any, sd_model: Any) -> dict:
        from modules import prompt_parser

        unet = self.unet(sd_model)

        def reconstructing(denoiser: Any, kwargs: dict, call: int, rows: list[int]) -> Any:
            return cond_pass(prompt_parser.reconstruct_multicond_batch, denoiser, kwargs, call, rows)

        return {"context_transform": None, "cond_pass": reconstructing, "prepare": lambda: normal_tensors(unet)}


HOST = ForgeHost()
