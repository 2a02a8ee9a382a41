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
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    """Size and shaping of the tiny model.

    ``attention_sharpness`` multiplies the ``to_k`` weights of every ``attn2`` layer;
    ``output_scale`` multiplies the UNet's final convolution (the predicted noise).
    """

    model_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_res_blocks: int = 2
    num_heads: int = 2
    transformer_depth: int | tuple[int, ...] = 1
    context_dim: int = 32
    vocab_size: int = 49408
    attention_sharpness: float = 4.0
    output_scale: float = 0.3
    seed: int = 0


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
        try:
            self.diffusion_model = UNetModel(
                image_size=32, in_channels=4, out_channels=4,
                model_channels=config.model_channels,
                attention_resolutions=list(config.attention_resolutions),
                num_res_blocks=config.num_res_blocks,
                channel_mult=list(config.channel_mult),
                num_heads=config.num_heads,
                use_spatial_transformer=True,
                transformer_depth=config.transformer_depth if isinstance(config.transformer_depth, int)
                else list(config.transformer_depth),
                context_dim=config.context_dim,
                use_checkpoint=False,
                legacy=False,
            )
            reinit_zero_layers(self.diffusion_model)
            with torch.no_grad():
                for name, module in self.diffusion_model.named_modules():
                    if name.endswith("attn2"):
                        module.to_k.weight.mul_(config.attention_sharpness)
                out = self.diffusion_model.out[-1]
                out.weight.mul_(config.output_scale)
                out.bias.mul_(config.output_scale)
            self.text = TinyTextEncoder(config.vocab_size, config.context_dim)
        finally:
            torch.random.set_rng_state(gen_state)
        self.register_buffer("alphas_cumprod", sd_alphas_cumprod(), persistent=False)
        self.config = config
        self.eval().requires_grad_(True)

    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: dict | torch.Tensor) -> torch.Tensor:
        context = torch.cat(cond["c_crossattn"], 1) if isinstance(cond, dict) else cond
        return self.diffusion_model(x, t, context=context)

    @torch.no_grad()
    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text(ids)


def reinit_zero_layers(module: nn.Module, std: float = 0.02) -> int:
    """Give random weights to the layers ldm initialises to zero; returns how many were changed."""
    changed = 0
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.Linear)) and not sub.weight.detach().any():
            nn.init.normal_(sub.weight, 0.0, std * 5)
            changed += 1
    return changed
