"""A tiny latent-diffusion model built from the real ldm ``UNetModel`` (for tests and benchmarks).

The UNet is the class the WebUI runs (``ldm.modules.diffusionmodules.openaimodel.UNetModel``
from Stability-AI/stablediffusion, on PyPI as ``stable-diffusion-sdkit``) with SD 1.x's block
layout (``attention_resolutions [4, 2, 1]``, two res-blocks per level, spatial transformers with
``attn2`` cross-attention), only narrower. :class:`TinyLDM` exposes what k-diffusion's
``CompVisDenoiser`` and the WebUI's denoiser use: ``alphas_cumprod`` (SD's scaled-linear betas)
and ``apply_model(x, t, cond)`` with ``cond = {"c_crossattn": [context]}``.

Random weights, shaped to behave a little like a trained model (see :class:`TinyConfig`): the
zero-initialised layers of ldm are re-initialised so that every block influences the output; the
cross-attention keys are scaled up, because random projections give nearly uniform attention over
the 77 tokens where a trained model's is peaked; the noise prediction is scaled down, because a
random prediction of full size makes the sampler walk randomly where a trained one keeps the
latent's layout from step to step. The text encoder is a seeded embedding table over CLIP's
vocabulary. ldm is imported only when a model is built.

:func:`sdxl_config` gives the same UNet class the **SDXL block layout** (sgm's ``sd_xl_base.yaml``, narrower):
cross-attention only at the levels 1 and 2 (``attention_resolutions [2, 4]``, no attention at level 0), several
transformer blocks per level, a middle block at level 2, a context that is the channel-wise concatenation of two text
encoders, and the ``vector`` (ADM) conditioning added to the time embedding. ldm's ``UNetModel`` (the pinned
stablediffusion package) cannot express two of these, so they are built on top of it, the way sgm's ``UNetModel``
does them:

* **per-level transformer depth**: ldm takes one ``transformer_depth`` for every level, and its
  ``SpatialTransformer`` only works with depth 1 given one context tensor (it indexes ``context_dim[d]`` and
  ``context[i]`` per block). :func:`deepen_transformers` appends blocks of the same class
  (``BasicTransformerBlock``: ``attn1``, ``attn2`` = ``CrossAttention``) to each transformer until its level's
  depth, and gives every transformer the same context per block (sgm's ``SpatialTransformer`` does this);
* **ADM conditioning**: ldm's ``num_classes`` knows class ids and ``"continuous"`` only; sgm's ``"sequential"``
  (``label_emb = Sequential(Sequential(Linear(adm, 4C), SiLU, Linear(4C, 4C)))``) is attached after construction,
  with ``num_classes = "sequential"`` so that ldm's ``forward`` adds ``label_emb(y)`` to the time embedding.

Module names then follow sgm's: ``input_blocks.{4,5}.1.transformer_blocks.{0..}.attn2`` at level 1,
``input_blocks.{7,8}``, ``middle_block.1`` and ``output_blocks.{0,1,2}`` at level 2 (image/32),
``output_blocks.{3,4,5}`` at level 1. Other differences from sgm that A-STAR does not see: sgm's
``SpatialTransformer`` always uses ``to_out`` dropout modules and xformers fall-backs, and its
``use_linear_in_transformer`` projections; the narrow widths and the number of blocks.
"""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    """Size and shaping of the tiny model.

    ``attention_sharpness`` multiplies the ``to_k`` weights of every ``attn2`` layer;
    ``output_scale`` multiplies the UNet's final convolution (the predicted noise).

    SDXL layout (:func:`sdxl_config`): ``transformer_depth`` per level (a tuple; 0 where the level has no
    attention), ``context_dims`` the widths of the text encoders whose outputs are concatenated (their sum is
    the context width), ``adm_in_channels`` the width of the ``vector`` conditioning (the second encoder's
    pooled output + six ``size_embedding``-wide embeddings of the image size, crop and target size).
    """

    model_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_res_blocks: int = 2
    num_heads: int = 2
    transformer_depth: int | tuple[int, ...] = 1
    context_dim: int = 32
    vocab_size: int = 49408
    context_dims: tuple[int, ...] | None = None
    adm_in_channels: int | None = None
    size_embedding: int = 8
    attention_sharpness: float = 4.0
    output_scale: float = 0.3
    seed: int = 0


def sdxl_config(**changes) -> TinyConfig:
    """The tiny SDXL layout: levels (1, 2, 2), attention at levels 1 and 2 with 2 and 3 blocks per transformer
    (SDXL base: 2 and 10), two text encoders of 16 and 32 channels (CLIP-L 768 + OpenCLIP-bigG 1280 = 2048),
    and ``vector`` = pooled (32) + 6 x 8 size embeddings (SDXL: 1280 + 6 x 256 = 2816)."""
    values = dict(channel_mult=(1, 2, 2), attention_resolutions=(2, 4), transformer_depth=(0, 2, 3),
                  context_dims=(16, 32), context_dim=48, adm_in_channels=32 + 6 * 8)
    values.update(changes)
    return TinyConfig(**values)


def sd_alphas_cumprod(timesteps: int = 1000, linear_start: float = 0.00085, linear_end: float = 0.012) -> torch.Tensor:
    """SD's "scaled linear" betas (``v1-inference.yaml``) -> ``alphas_cumprod`` ``[timesteps]``."""
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


class TinyTextEncoder(nn.Module):
    """Token ids ``[B, 77*k]`` -> context ``[B, 77*k, D]``: embedding + position, LayerNorm."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.token = nn.Embedding(vocab_size, dim)
        self.position = nn.Embedding(77, dim)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.norm.bias, 0.0, 0.5)  # keep the final bias away from 0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device) % 77
        return self.norm(self.token(ids) + self.position(pos)[None])


class TinyLDM(nn.Module):
    """``diffusion_model`` (ldm UNetModel) + ``alphas_cumprod`` + ``apply_model``, like ldm's LatentDiffusion."""

    def __init__(self, config: TinyConfig = TinyConfig()):
        super().__init__()
        from ldm.modules.diffusionmodules.openaimodel import UNetModel

        gen_state = torch.random.get_rng_state()
        torch.manual_seed(config.seed)
        per_level = not isinstance(config.transformer_depth, int)
        try:
            self.diffusion_model = UNetModel(
                image_size=32, in_channels=4, out_channels=4,
                model_channels=config.model_channels,
                attention_resolutions=list(config.attention_resolutions),
                num_res_blocks=config.num_res_blocks,
                channel_mult=list(config.channel_mult),
                num_heads=config.num_heads,
                use_spatial_transformer=True,
                transformer_depth=1 if per_level else config.transformer_depth,
                context_dim=config.context_dim,
                use_checkpoint=False,
                legacy=False,
            )
            if per_level:
                deepen_transformers(self.diffusion_model, config.transformer_depth)
            if config.adm_in_channels:
                add_adm_embedding(self.diffusion_model, config.adm_in_channels)
            reinit_zero_layers(self.diffusion_model)
            with torch.no_grad():
                for name, module in self.diffusion_model.named_modules():
                    if name.endswith("attn2"):
                        module.to_k.weight.mul_(config.attention_sharpness)
                out = self.diffusion_model.out[-1]
                out.weight.mul_(config.output_scale)
                out.bias.mul_(config.output_scale)
            if config.context_dims:
                self.text = TinyTextEncoder(config.vocab_size, config.context_dims[0])
                self.text2 = TinyTextEncoder(config.vocab_size, config.context_dims[1])
            else:
                self.text = TinyTextEncoder(config.vocab_size, config.context_dim)
        finally:
            torch.random.set_rng_state(gen_state)
        self.register_buffer("alphas_cumprod", sd_alphas_cumprod(), persistent=False)
        self.config = config
        self.eval().requires_grad_(True)

    @property
    def is_sdxl_layout(self) -> bool:
        return bool(self.config.adm_in_channels)

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: dict | torch.Tensor) -> torch.Tensor:
        """ldm's ``{"c_crossattn": [context]}``, a bare context, or (SDXL layout) sgm's dict
        ``{"crossattn": context, "vector": vector}`` (``vector`` reaches the UNet as ``y``)."""
        if isinstance(cond, dict) and "crossattn" in cond:
            return self.diffusion_model(x, t, context=cond["crossattn"], y=cond.get("vector"))
        context = torch.cat(cond["c_crossattn"], 1) if isinstance(cond, dict) else cond
        return self.diffusion_model(x, t, context=context)

    @torch.no_grad()
    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """Context ``[B, 77*k, context_dim]`` (SDXL layout: both encoders, concatenated channel-wise)."""
        if self.config.context_dims:
            return torch.cat([self.text(ids), self.text2(ids)], dim=2)
        return self.text(ids)

    @torch.no_grad()
    def vector(self, ids: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """SDXL layout: the ``vector`` conditioning ``[B, adm_in_channels]`` of token ids ``[B, 77*k]``."""
        return sdxl_vector(pooled_output(self.text2(ids), ids), height, width, self.config.size_embedding)

    def conditioning(self, ids: torch.Tensor, height: int = 256, width: int = 256) -> dict | torch.Tensor:
        """What ``apply_model`` takes for these ids: the context, or (SDXL layout) sgm's dict."""
        if self.is_sdxl_layout:
            return {"crossattn": self.encode(ids), "vector": self.vector(ids, height, width)}
        return {"c_crossattn": [self.encode(ids)]}


@functools.cache
def shared_context_transformer() -> type:
    """A subclass of ldm's ``SpatialTransformer`` whose ``forward`` gives every block the same context (ldm's
    indexes ``context[i]`` per block, so it fails past the first block given one tensor; sgm's repeats it)."""
    from ldm.modules.attention import SpatialTransformer

    class SharedContextSpatialTransformer(SpatialTransformer):
        def forward(self, x, context=None):
            if not isinstance(context, list):
                context = [context] * len(self.transformer_blocks)
            return super().forward(x, context=context)

    return SharedContextSpatialTransformer


def deepen_transformers(unet: nn.Module, depth: tuple[int, ...]) -> int:
    """Give each ``SpatialTransformer`` of ``unet`` ``depth[level]`` blocks (level = stride-2 downsamplings
    before it; the middle block takes the last level's depth, as sgm's ``transformer_depth_middle`` default);
    returns the number of blocks added. New blocks copy the shape of the transformer's first block. Each
    transformer's class becomes :func:`shared_context_transformer`."""
    from ldm.modules.attention import BasicTransformerBlock, SpatialTransformer

    from ..capture import attention_levels

    shared_cls = shared_context_transformer()
    levels = attention_levels(unet)
    added = 0
    for name, module in unet.named_modules():
        if not isinstance(module, SpatialTransformer):
            continue
        first = module.transformer_blocks[0]
        level = levels[f"{name}.transformer_blocks.0.attn2"]
        want = depth[min(level, len(depth) - 1)]
        if want < 1:
            raise ValueError(f"{name} is at level {level}, where the depth is {want}: leave that level out of "
                             "attention_resolutions")
        attn = first.attn2
        heads = attn.heads
        inner = attn.to_q.in_features
        for _ in range(want - len(module.transformer_blocks)):
            module.transformer_blocks.append(BasicTransformerBlock(
                inner, heads, attn.to_q.out_features // heads, context_dim=attn.to_k.in_features,
                checkpoint=False))
            added += 1
        module.__class__ = shared_cls
    return added


def add_adm_embedding(unet: nn.Module, adm_in_channels: int) -> nn.Module:
    """sgm's ``num_classes="sequential"`` on an ldm ``UNetModel``: ``y`` (``[B, adm_in_channels]``) goes through
    ``Linear -> SiLU -> Linear`` and is added to the time embedding (ldm's ``forward`` adds ``label_emb(y)``)."""
    width = unet.time_embed[0].out_features
    unet.label_emb = nn.Sequential(nn.Sequential(nn.Linear(adm_in_channels, width), nn.SiLU(),
                                                 nn.Linear(width, width)))
    unet.num_classes = "sequential"
    return unet.label_emb


SSD_TRIMMED = (("input_blocks", 7), ("input_blocks", 8), ("output_blocks", 0), ("output_blocks", 1))
"""The deep image/32 transformers that SSD-1B shortens (from 10 blocks to 4); ``output_blocks.2`` keeps its 10."""
SSD_HALVED = (("output_blocks", 4), ("output_blocks", 5))
"""The image/16 transformers of the decoder that SSD-1B shortens from 2 blocks to 1."""


def ssd_layout(unet: nn.Module, deep_kept: int = 1) -> nn.Module:
    """SSD-1B's layout (the WebUI's ``convert_sdxl_to_ssd``, ``is_ssd``) from an SDXL-layout UNet, in place: the middle
    block keeps only its first res-block (no transformer); the transformers of :data:`SSD_TRIMMED` keep their first
    ``deep_kept`` blocks (SSD-1B: 4 of 10; the tiny layout's 3 blocks: 1), those of :data:`SSD_HALVED` their first."""
    del unet.middle_block[1:]
    for part, index in SSD_TRIMMED:
        del getattr(unet, part)[index][1].transformer_blocks[deep_kept:]
    for part, index in SSD_HALVED:
        del getattr(unet, part)[index][1].transformer_blocks[1:]
    return unet


def pooled_output(hidden: torch.Tensor, ids: torch.Tensor, id_end: int = 49407) -> torch.Tensor:
    """The hidden state at the first EOT of the first 77-token chunk (OpenCLIP's pooled output; the WebUI keeps
    the first chunk's), ``[B, D]``."""
    first = ids[:, :77]
    at = (first == id_end).int().argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), at]


def sdxl_vector(pooled: torch.Tensor, height: int, width: int, dim: int = 8,
                crop: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """SDXL's ``vector``: the pooled text output and sinusoidal embeddings of the original size ``(h, w)``, the
    crop's top-left corner and the target size (sgm's ``ConcatTimestepEmbedderND``, one ``dim``-wide embedding
    per number), ``[B, D + 6*dim]``."""
    from ldm.modules.diffusionmodules.util import timestep_embedding

    b = pooled.shape[0]
    numbers = torch.tensor([height, width, crop[0], crop[1], height, width], dtype=torch.float32)
    emb = timestep_embedding(numbers, dim).reshape(1, -1).to(pooled.device, pooled.dtype)
    return torch.cat([pooled, emb.expand(b, -1)], dim=1)


def reinit_zero_layers(module: nn.Module, std: float = 0.02) -> int:
    """Give random weights to the layers ldm initialises to zero; returns how many were changed."""
    changed = 0
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear)) and not sub.weight.detach().any():
            nn.init.normal_(sub.weight, 0.0, std * 5)
            changed += 1
    return changed
