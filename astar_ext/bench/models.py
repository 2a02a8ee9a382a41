"""The models of the benchmark: the tiny model, and SD 1.5 / SDXL UNets at full size with random weights.

Each is a small ``LatentDiffusion`` look-alike (:class:`BenchModel`): ``diffusion_model`` (an ldm
``UNetModel``), ``alphas_cumprod`` (SD's scaled-linear schedule, shared by SD 1.x and SDXL) and
``apply_model(x, t, cond)``, which is what k-diffusion's ``CompVisDenoiser`` calls. Weights are
random (seeded); the layers ldm initialises to zero get random weights too, so that every block
takes part in the output and in the gradient. Cost does not depend on the weights' values.

* ``tiny``: :class:`astar_ext.bench.tiny.TinyLDM` (SD 1.x block layout, 32 channels), 256x256 px
  (latent 32x32), its seeded text encoder over CLIP's ids.
* ``sd15``: ldm ``UNetModel`` with ``configs/v1-inference.yaml``'s parameters (model_channels 320,
  channel_mult [1, 2, 4, 4], attention_resolutions [4, 2, 1], num_res_blocks 2, num_heads 8,
  context_dim 768, transformer depth 1, conv ``proj_in``; 859.5 M parameters). No text encoder:
  the context is a seeded random ``[B, 77, 768]`` (the token columns still come from CLIP's
  tokenizer).
* ``sdxl``: the SDXL base UNet (sgm ``UNetModel`` of ``sd_xl_base.yaml``: model_channels 320,
  channel_mult [1, 2, 4], attention_resolutions [4, 2], transformer depth [0, 2, 10] (10 in the
  middle block), 64 channels per head, linear ``proj_in``, context_dim 2048, ``adm_in_channels``
  2816 through a ``label_emb`` MLP; 2.567 B parameters) built from ldm's classes, because ``sgm`` is
  not installable from PyPI. ldm's ``UNetModel`` takes one transformer depth for all levels and its
  ``SpatialTransformer`` cannot run more than one block with one context, so the transformers are
  rebuilt with :class:`DeepSpatialTransformer` (sgm's forward: every block gets the same context)
  at SDXL's depths, and ``label_emb`` is added the way sgm builds it (``num_classes="sequential"``).
  The module tree, the parameter shapes and the forward computation are those of SDXL's UNet; the
  attention class is ldm's ``CrossAttention`` where the WebUI runs sgm's (same class name, same
  projections; the WebUI replaces both classes' ``forward`` with the same optimisation). Context
  ``[B, 77, 2048]`` and ``vector`` ``[B, 2816]`` are seeded random tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from .tiny import TinyConfig, TinyLDM, reinit_zero_layers, sd_alphas_cumprod


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a benchmark configuration generates by default."""

    name: str
    description: str
    width: int
    height: int
    steps: int
    context_dim: int
    sdxl: bool = False
    gpu_only: bool = False


SPECS = {
    "tiny": ModelSpec("tiny", "tiny ldm UNet (SD 1.x layout, 32 channels), random weights", 192, 192, 8, 32),
    "sd15": ModelSpec("sd15", "SD 1.5 UNet (v1-inference.yaml), random weights", 512, 512, 50, 768,
                      gpu_only=True),
    "sdxl": ModelSpec("sdxl", "SDXL base UNet (sd_xl_base.yaml, built from ldm classes), random weights",
                      1024, 1024, 30, 2048, sdxl=True, gpu_only=True),
}


class BenchModel(nn.Module):
    """``diffusion_model`` + ``alphas_cumprod`` + ``apply_model``, like ldm's ``LatentDiffusion``
    (SD 1.x: ``cond = {"c_crossattn": [context], ...}``) or the WebUI's SDXL model
    (``cond = {"crossattn": context, "vector": y, ...}``)."""

    def __init__(self, unet: nn.Module, sdxl: bool = False):
        super().__init__()
        self.diffusion_model = unet
        self.sdxl = sdxl
        self.register_buffer("alphas_cumprod", sd_alphas_cumprod(), persistent=False)

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        if self.sdxl:
            return self.diffusion_model(x, t, context=cond["crossattn"], y=cond["vector"])
        context = torch.cat(cond["c_crossattn"], 1)
        return self.diffusion_model(x, t, context=context)


def _sd15_unet() -> nn.Module:
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    return UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=320,
                     attention_resolutions=[4, 2, 1], num_res_blocks=2, channel_mult=[1, 2, 4, 4],
                     num_heads=8, use_spatial_transformer=True, transformer_depth=1, context_dim=768,
                     use_checkpoint=False, legacy=False)


def _deep_spatial_transformer_class() -> type:
    from ldm.modules.attention import SpatialTransformer

    class DeepSpatialTransformer(SpatialTransformer):
        """ldm's ``SpatialTransformer`` with sgm's forward: with one context, every block gets it."""

        def forward(self, x: torch.Tensor, context: torch.Tensor | list | None = None) -> torch.Tensor:
            from einops import rearrange

            if not isinstance(context, list):
                context = [context]
            b, c, h, w = x.shape
            x_in = x
            x = self.norm(x)
            if not self.use_linear:
                x = self.proj_in(x)
            x = rearrange(x, "b c h w -> b (h w) c").contiguous()
            if self.use_linear:
                x = self.proj_in(x)
            for i, block in enumerate(self.transformer_blocks):
                x = block(x, context=context[i if len(context) > 1 else 0])
            if self.use_linear:
                x = self.proj_out(x)
            x = rearrange(x, "b (h w) c -> b c h w", h=h, w=w).contiguous()
            if not self.use_linear:
                x = self.proj_out(x)
            return x + x_in

    return DeepSpatialTransformer


def _sdxl_unet() -> nn.Module:
    from ldm.modules.attention import SpatialTransformer
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    depth_of_level = {1: 2, 2: 10}  # transformer_depth [0, 2, 10]; the middle block: 10
    unet = UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=320,
                     attention_resolutions=[4, 2], num_res_blocks=2, channel_mult=[1, 2, 4],
                     num_head_channels=64, use_spatial_transformer=True, use_linear_in_transformer=True,
                     transformer_depth=1, context_dim=2048, use_checkpoint=False, legacy=False)
    deep = _deep_spatial_transformer_class()

    def rebuilt(old: nn.Module, depth: int) -> nn.Module:
        ch = old.in_channels
        return deep(ch, ch // 64, 64, depth=depth, context_dim=[2048] * depth, use_linear=True, use_checkpoint=False)

    level = 0
    for block in list(unet.input_blocks) + [unet.middle_block] + list(unet.output_blocks):
        for i, layer in enumerate(block):
            name = type(layer).__name__
            if name == "Downsample":
                level += 1
            elif name == "Upsample":
                level -= 1
            elif isinstance(layer, SpatialTransformer):
                block[i] = rebuilt(layer, depth_of_level[level])
    unet.num_classes = "sequential"
    ted = 320 * 4
    unet.label_emb = nn.Sequential(nn.Sequential(nn.Linear(2816, ted), nn.SiLU(), nn.Linear(ted, ted)))
    return unet


def build_unet(name: str) -> nn.Module:
    builders: dict[str, Callable[[], nn.Module]] = {"sd15": _sd15_unet, "sdxl": _sdxl_unet}
    return builders[name]()


def build_model(name: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> nn.Module:
    """Model ``name`` on ``device`` with its UNet in ``dtype`` (seeded random weights; the global RNG is
    left as it was)."""
    spec = SPECS[name]
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        if name == "tiny":
            model = TinyLDM(TinyConfig(seed=seed))
        else:
            # built on the device and in the dtype directly: SDXL in fp32 would need 10 GB first
            default = torch.get_default_dtype()
            torch.set_default_dtype(dtype)
            try:
                with torch.device(device):
                    unet = build_unet(name)
                    reinit_zero_layers(unet)
            finally:
                torch.set_default_dtype(default)
            model = BenchModel(unet, sdxl=spec.sdxl)
    finally:
        torch.random.set_rng_state(gen_state)
    model = model.to(device)
    model.diffusion_model.to(dtype)
    if torch.device(device).type == "cpu" and dtype != torch.float32:
        # CPU autocast does not run the norms in fp32 as CUDA's does, and ldm's GroupNorm32 feeds them
        # fp32 input: keep their parameters in fp32 (a CPU check of the half-precision path only)
        for m in model.diffusion_model.modules():
            if isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
                m.float()
    if dtype != torch.float32:
        model.diffusion_model.dtype = dtype  # ldm's forward casts its input to this (the WebUI's fp16 UNet)
    return model.eval().requires_grad_(True)  # ldm and sgm never freeze the UNet (webui-host.md §10)


def conditioning(name: str, model: nn.Module, prompts: list[str], ids: Callable[[str], torch.Tensor],
                 device: torch.device, seed: int = 0) -> tuple[object, object]:
    """``(cond, uncond)`` rows of ``prompts`` (one image each; the negative prompt is empty):
    the tiny model's text encoder over the token ids ``ids(prompt)`` (``[1, 77*k]``), seeded random
    contexts (and SDXL's ``vector``) for the full-size UNets."""
    spec = SPECS[name]
    if name == "tiny":
        cond = torch.cat([model.encode(ids(p).to(device)) for p in prompts])
        uncond = model.encode(ids("").to(device)).expand(len(prompts), -1, -1).contiguous()
        return cond, uncond
    gen = torch.Generator().manual_seed(seed + 1)
    k = max(ids(p).shape[1] for p in prompts)
    cond = torch.randn(len(prompts), k, spec.context_dim, generator=gen)
    uncond = torch.randn(1, k, spec.context_dim, generator=gen).expand(len(prompts), -1, -1).contiguous()
    if spec.sdxl:
        vector = torch.randn(1, 2816, generator=gen).expand(len(prompts), -1).contiguous()
        return ({"crossattn": cond.to(device), "vector": vector.to(device)},
                {"crossattn": uncond.to(device), "vector": vector.to(device)})
    return cond.to(device), uncond.to(device)


def parameter_bytes(module: nn.Module) -> int:
    """Bytes of the parameters and buffers of ``module``."""
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))
