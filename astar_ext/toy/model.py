"""The toy text-to-image model v2: a latent diffusion model of SD 1.x's kind, small enough to train on a CPU.

Three parts, built from the modules the WebUI builds from an ldm config, under the names of its checkpoints,
so that one set of weights runs here (host-free) and in the WebUI (:mod:`astar_ext.toy.export`):

* **Text encoder** (:class:`ToyTextEncoder`, ``cond_stage_model``): the architecture of Hugging Face's
  ``CLIPTextModel`` (what ldm's ``FrozenCLIPEmbedder`` builds): token and position embeddings over CLIP's
  full 49408-token vocabulary and 77 positions, pre-LayerNorm causal self-attention blocks with QuickGELU
  MLPs, a final LayerNorm; narrow (width 64, 2 layers, 4 heads) and trained with the UNet. It reads the ids
  of CLIP's own BPE tokenizer in WebUI-style 77-token chunks, each chunk encoded on its own.
* **VAE** (:class:`~astar_ext.toy.vae.ToyVAE`, ``first_stage_model``): ldm's ``AutoencoderKL`` layout,
  f = 8: an image ``[3, 256, 256]`` is a latent ``[4, 32, 32]``, as SD 1.x's 512 px are ``[4, 64, 64]``.
* **UNet** (``diffusion_model``): ``ldm.modules.diffusionmodules.openaimodel.UNetModel``, four levels
  (32x32, 16x16, 8x8, 4x4 at 32 / 64 / 96 / 96 channels), spatial transformers (self-attention ``attn1``,
  cross-attention ``attn2``) at the 16x16 and 8x8 levels and in the middle block (the text enters at 16x16
  too: with cross-attention at 8x8 alone the model learnt the scenes but hardly followed the prompt).

**Capture level 2** (image/32, the WebUI adapter's level): the maps are 8x8 at 256 px, from the five
``attn2`` layers of ``input_blocks.5/6`` and ``output_blocks.2/3/4`` (SD 1.x has five 16x16 layers at
512 px, in ``input_blocks.7/8`` and ``output_blocks.3/4/5``); the middle block's is at 4x4, as SD 1.x's is
at 8x8. Level 1 (image/16) has three 16x16 layers (``input_blocks.3``, ``output_blocks.5/6``).

**Noise schedule**: SD's scaled-linear betas (1000 steps) with v-prediction, as SD 2.x's 768-v models
(``parameterization = "v"``). :class:`ToyLDM` exposes ``alphas_cumprod`` and ``apply_model`` so that
k-diffusion's ``CompVisVDenoiser`` wraps it as the WebUI wraps a v-model.

ldm is imported when a model is built.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..bench.tiny import sd_alphas_cumprod
from .tokenizer import CHUNK, ToyTokenizer
from .vae import ToyVAE, VAEConfig, colour_matrix

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy_model.pt")
CLIP_VOCAB = 49408


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """Architecture of the toy model (stored with its weights)."""

    image_size: int = 256
    latent_channels: int = 4
    model_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 3, 3)
    num_res_blocks: tuple[int, ...] = (1, 1, 2, 1)
    attention_resolutions: tuple[int, ...] = (2, 4)
    num_head_channels: int = 32
    context_dim: int = 64
    text_layers: int = 2
    text_heads: int = 4
    capture_level: int = 2
    scale_factor: float = 1.0  # latent * scale_factor is what the UNet sees (SD 1.x: 0.18215)
    vae: VAEConfig = VAEConfig()

    @property
    def latent_size(self) -> int:
        return self.image_size // self.vae.factor

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToyConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields}
        if isinstance(kw.get("vae"), dict):
            kw["vae"] = VAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in kw["vae"].items()})
        return cls(**kw)


class QuickGELU(nn.Module):
    """CLIP's activation, ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class CLIPAttention(nn.Module):
    """Multi-head causal self-attention with ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` (HF's names)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        att = att.masked_fill(torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
        out = att.softmax(-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class CLIPMLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), QuickGELU(), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    """``x + attn(layer_norm1(x))`` then ``x + mlp(layer_norm2(x))``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.layer_norm1, self.self_attn = nn.LayerNorm(dim), CLIPAttention(dim, heads)
        self.layer_norm2, self.mlp = nn.LayerNorm(dim), CLIPMLP(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class _Embeddings(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.token_embedding = nn.Embedding(CLIP_VOCAB, dim)
        self.position_embedding = nn.Embedding(CHUNK, dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.01)


class _Encoder(nn.Module):
    def __init__(self, dim: int, layers: int, heads: int):
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(dim, heads) for _ in range(layers))


class CLIPTextTransformer(nn.Module):
    """HF ``CLIPTextTransformer``: ids ``[N, 77]`` -> ``last_hidden_state`` ``[N, 77, D]``."""

    def __init__(self, dim: int, layers: int, heads: int):
        super().__init__()
        self.embeddings = _Embeddings(dim)
        self.encoder = _Encoder(dim, layers, heads)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding(pos)
        for layer in self.encoder.layers:
            x = layer(x)
        return self.final_layer_norm(x)


class _CLIPTextModel(nn.Module):
    def __init__(self, dim: int, layers: int, heads: int):
        super().__init__()
        self.text_model = CLIPTextTransformer(dim, layers, heads)


class ToyTextEncoder(nn.Module):
    """CLIP ids ``[B, 77*k]`` -> context ``[B, 77*k, D]``, each 77-token chunk encoded on its own.

    ``self.transformer.text_model`` holds the weights under HF ``CLIPTextModel``'s names (the WebUI
    checkpoint's ``cond_stage_model.transformer.text_model.*``)."""

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.transformer = _CLIPTextModel(dim, layers, heads)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, n = ids.shape
        if n % CHUNK:
            raise ValueError(f"expected 77-token chunks, got {n} ids")
        rows = ids.clamp(0, CLIP_VOCAB - 1).reshape(-1, CHUNK)
        return self.transformer.text_model(rows).reshape(b, n, -1)


class ToyLDM(nn.Module):
    """``diffusion_model`` (ldm UNetModel) + ``cond_stage_model`` + ``first_stage_model`` + ``alphas_cumprod``
    + ``apply_model``: the interface of ldm's ``LatentDiffusion`` where k-diffusion's ``CompVisVDenoiser`` and
    the engine use it. Latents are ``[B, 4, 32, 32]`` (:meth:`to_latent` / :meth:`to_image`)."""

    parameterization = "v"

    def __init__(self, config: ToyConfig = ToyConfig()):
        super().__init__()
        from ldm.modules.diffusionmodules.openaimodel import UNetModel

        c = config
        self.config = c
        self.diffusion_model = UNetModel(**unet_params(c))
        self.cond_stage_model = ToyTextEncoder(c.context_dim, c.text_layers, c.text_heads)
        self.first_stage_model = ToyVAE(c.vae)
        self.register_buffer("alphas_cumprod", sd_alphas_cumprod(), persistent=False)
        self.tokenizer = ToyTokenizer()

    # --- the LatentDiffusion interface -----------------------------------------------------------
    def apply_model(self, x: torch.Tensor, t: torch.Tensor, cond: dict | torch.Tensor) -> torch.Tensor:
        """Predicted ``v`` ``[B, 4, 32, 32]`` of latents ``x`` (the UNet input ``z_t``) at timesteps ``t`` ``[B]``."""
        context = torch.cat(cond["c_crossattn"], 1) if isinstance(cond, dict) else cond
        return self.diffusion_model(x, t, context=context)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """Context ``[B, 77*k, D]`` of CLIP ids ``[B, 77*k]``."""
        return self.cond_stage_model(ids.to(self.alphas_cumprod.device))

    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        ids = torch.tensor(self.tokenizer.ids(prompts), device=self.alphas_cumprod.device)
        return self.encode(ids)

    def to_latent(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, 256, 256]`` in [-1, 1] -> scaled latents ``[B, 4, 32, 32]`` (the VAE's posterior mean)."""
        return self.first_stage_model.encode(images) * self.config.scale_factor

    def to_image(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``[B, 4, 32, 32]`` -> images ``[B, 3, 256, 256]`` (clamped to [-1, 1])."""
        return self.first_stage_model.decode(latents / self.config.scale_factor).clamp(-1, 1)

    def to_grid(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``[B, 4, 32, 32]`` -> the 32x32 scene grid ``[B, 3, 32, 32]`` in [-1, 1] of their images:
        what :meth:`to_image` gives, averaged over its 8x8 blocks (the constructed VAE's decoder is ``M^T z``
        upsampled 8x; tests check the two agree), without running the decoder at 256 px."""
        m = colour_matrix().to(latents)
        return torch.einsum("jc,bjhw->bchw", m, latents / self.config.scale_factor).clamp(-1, 1)


def unet_params(c: ToyConfig) -> dict[str, Any]:
    """The ``UNetModel`` keyword arguments of ``c`` (``unet_config.params`` of the WebUI yaml)."""
    return {"image_size": c.latent_size, "in_channels": c.latent_channels, "out_channels": c.latent_channels,
            "model_channels": c.model_channels, "attention_resolutions": list(c.attention_resolutions),
            "num_res_blocks": list(c.num_res_blocks), "channel_mult": list(c.channel_mult),
            "num_head_channels": c.num_head_channels, "use_spatial_transformer": True, "transformer_depth": 1,
            "context_dim": c.context_dim, "use_checkpoint": False, "legacy": False}


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
