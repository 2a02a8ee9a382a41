"""The toy text-to-image model: a CLIP-architecture text encoder and the ldm ``UNetModel``.

Built from the modules the WebUI runs for SD 1.x, so that the engine's capture and the WebUI path see
the same kind of model:

* **Text encoder** (:class:`ToyTextEncoder`): CLIP's text-transformer architecture (token + position
  embedding, pre-LayerNorm causal self-attention blocks with QuickGELU MLPs, a final LayerNorm), small
  (2 layers, width 64), trained with the UNet. It reads CLIP BPE ids in 77-token chunks, mapped through
  a lookup table to its own 19-row embedding (:data:`~astar_ext.tokenizer.VOCAB`), and encodes each chunk
  on its own, as the WebUI does. No CLIP weights exist here to freeze, and a frozen random encoder
  would leave the whole text understanding to the UNet's cross-attention; training it costs nothing.
* **UNet**: ``ldm.modules.diffusionmodules.openaimodel.UNetModel`` with spatial transformers
  (self-attention ``attn1``, cross-attention ``attn2``) at both of its levels, two res-blocks per level
  and a middle block: SD 1.x's block layout, narrower and one level shallower.
* **Pixel space** (no autoencoder to train): a 32x32 RGB image in [-1, 1] is folded by a lossless 4x4
  space-to-depth (``pixel_unshuffle``) into a ``[48, 8, 8]`` "latent". The fold plays the part of SD's
  VAE (which maps 512 px to 64x64): it makes the UNet run at 8x8 and 4x4, which is what makes
  training on two CPU cores possible, and loses nothing.
* **Capture level 0**: the maps are 8x8 (a quarter of the image side, like SD's 16x16 maps of 64x64
  latents are a quarter of theirs); they come from the five ``attn2`` layers of ``input_blocks.1/2`` and
  ``output_blocks.3/4/5``, the same count as SD 1.x's 16x16 layers.
* **Noise schedule**: SD's scaled-linear betas (1000 steps) with v-prediction, as SD 2.x's 768-v models
  (``parameterization = "v"``; see :mod:`astar_ext.toy.train` for why not eps). :class:`ToyLDM` exposes
  ``alphas_cumprod`` and ``apply_model`` so that k-diffusion's ``CompVisVDenoiser`` wraps it as the
  WebUI wraps a v-model; the denoiser's input scaling is the same as for eps-models, so the engine's
  step size (``scale * (1 + sigma^2)``) meets the same sigmas as with SD.

ldm is imported when a model is built.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..bench.tiny import sd_alphas_cumprod
from .tokenizer import CHUNK, UNK, VOCAB, ToyTokenizer

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy_model.pt")


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """Architecture of the toy model (stored with its weights)."""

    image_size: int = 32
    patch: int = 4  # space-to-depth factor: image 32x32x3 -> latent 8x8x48
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 1)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (1, 2)
    num_head_channels: int = 32
    context_dim: int = 64
    text_layers: int = 2
    text_heads: int = 4
    capture_level: int = 0

    @property
    def latent_channels(self) -> int:
        return 3 * self.patch ** 2

    @property
    def latent_size(self) -> int:
        return self.image_size // self.patch

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToyConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields}
        return cls(**kw)


class QuickGELU(nn.Module):
    """CLIP's activation, ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class TextBlock(nn.Module):
    """CLIP's residual attention block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``, causal."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), QuickGELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class ToyTextEncoder(nn.Module):
    """CLIP ids ``[B, 77*k]`` -> context ``[B, 77*k, D]``, each 77-token chunk encoded on its own."""

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        lookup = torch.full((49408,), UNK, dtype=torch.long)
        for row, (_, clip_id) in enumerate(VOCAB, start=1):
            lookup[clip_id] = row
        self.register_buffer("lookup", lookup, persistent=False)
        self.token_embedding = nn.Embedding(len(VOCAB) + 1, dim)
        self.positional_embedding = nn.Parameter(torch.randn(CHUNK, dim) * 0.01)
        self.blocks = nn.ModuleList(TextBlock(dim, heads) for _ in range(layers))
        self.ln_final = nn.LayerNorm(dim)
        self.register_buffer("causal", torch.full((CHUNK, CHUNK), float("-inf")).triu(1), persistent=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, n = ids.shape
        if n % CHUNK:
            raise ValueError(f"expected 77-token chunks, got {n} ids")
        rows = self.lookup[ids.clamp(0, self.lookup.shape[0] - 1)].reshape(-1, CHUNK)
        x = self.token_embedding(rows) + self.positional_embedding
        for block in self.blocks:
            x = block(x, self.causal)
        return self.ln_final(x).reshape(b, n, -1)


class ToyLDM(nn.Module):
    """``diffusion_model`` (ldm UNetModel) + ``cond_stage_model`` + ``alphas_cumprod`` + ``apply_model``.

    The same interface as ldm's ``LatentDiffusion`` where k-diffusion's ``CompVisVDenoiser`` and the
    engine use it; latents are ``[B, 48, 8, 8]`` (:meth:`to_latent` / :meth:`to_image`).
    """

    parameterization = "v"

    def __init__(self, config: ToyConfig = ToyConfig()):
        super().__init__()
        from ldm.modules.diffusionmodules.openaimodel import UNetModel

        c = config
        self.config = c
        self.diffusion_model = UNetModel(
            image_size=c.latent_size, in_channels=c.latent_channels, out_channels=c.latent_channels,
            model_channels=c.model_channels, attention_resolutions=list(c.attention_resolutions),
            num_res_blocks=c.num_res_blocks, channel_mult=list(c.channel_mult),
            num_head_channels=c.num_head_channels, use_spatial_transformer=True, transformer_depth=1,
            context_dim=c.context_dim, use_checkpoint=False, legacy=False,
        )
        self.cond_stage_model = ToyTextEncoder(c.context_dim, c.text_layers, c.text_heads)
        self.register_buffer("alphas_cumprod", sd_alphas_cumprod(), persistent=False)
        self.tokenizer = ToyTokenizer()

    # --- the LatentDiffusion interface -----------------------------------------------------------
    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: dict | torch.Tensor) -> torch.Tensor:
        """Predicted ``v`` ``[B, 48, 8, 8]`` of latents ``x`` (the UNet input ``z_t``) at timesteps ``t`` ``[B]``."""
        context = torch.cat(cond["c_crossattn"], 1) if isinstance(cond, dict) else cond
        return self.diffusion_model(x, t, context=context)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """Context ``[B, 77*k, 64]`` of CLIP ids ``[B, 77*k]``."""
        return self.cond_stage_model(ids.to(self.alphas_cumprod.device))

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        ids = torch.tensor(self.tokenizer.ids(prompts), device=self.alphas_cumprod.device)
        return self.encode(ids)

    def to_latent(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, 32, 32]`` in [-1, 1] -> latents ``[B, 48, 8, 8]`` (space-to-depth)."""
        return F.pixel_unshuffle(images, self.config.patch)

    def to_image(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, 48, 8, 8]`` -> images ``[B, 3, 32, 32]`` (clamped to [-1, 1])."""
        return F.pixel_shuffle(latents, self.config.patch).clamp(-1, 1)


def denoiser(model: ToyLDM):
    """k-diffusion's wrapper of the model (``CompVisVDenoiser`` for a v-model, as the WebUI chooses)."""
    import k_diffusion as K

    cls = K.external.CompVisVDenoiser if model.parameterization == "v" else K.external.CompVisDenoiser
    return cls(model)


def save_weights(model: ToyLDM, path: str, meta: dict[str, Any] | None = None, half: bool = True) -> None:
    """Write ``{"config", "state_dict" (fp16 when ``half``), "meta"}`` to ``path`` (atomic replace)."""
    state = {k: (v.detach().half() if half and v.is_floating_point() else v.detach()).cpu().contiguous()
             for k, v in model.state_dict().items()}
    blob = {"config": dataclasses.asdict(model.config), "state_dict": state, "meta": dict(meta or {})}
    tmp = path + ".tmp"
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_model(path: str | None = None, device: str | torch.device = "cpu") -> ToyLDM:
    """The shipped toy model (or the weights at ``path``) in fp32, eval mode. ``model.meta`` holds the
    training record."""
    blob = torch.load(path or WEIGHTS, map_location="cpu", weights_only=True)
    model = ToyLDM(ToyConfig.from_dict(blob["config"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    model.meta = blob.get("meta", {})
    return model.to(device).eval()
