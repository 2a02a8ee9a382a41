"""The toy model's own small VAE: ldm's ``AutoencoderKL`` layout (f = 8, 4 latent channels), set by hand.

The WebUI loads a checkpoint's ``first_stage_model`` as ``ldm.models.autoencoder.AutoencoderKL``: ldm's
``Encoder`` / ``Decoder`` (``ldm.modules.diffusionmodules.model``) and two 1x1 convolutions, ``quant_conv``
and ``post_quant_conv``. :class:`ToyVAE` is built from the same modules under the same names (its state dict
is the ``first_stage_model.*`` part of the WebUI checkpoint), without ``AutoencoderKL`` itself, which needs
PyTorch Lightning: 64 channels at every level, no res-block in the encoder's levels, one per level in the
decoder, the middle block's attention (always there), and plain 2x average pooling / nearest upsampling
(``resamp_with_conv: false``).

**Its weights are set, not trained** (:meth:`ToyVAE.construct`). The encoder maps an image
``[B, 3, 256, 256]`` in [-1, 1] to the average of each 8x8 block's colour, in four channels
(``M @ rgb`` with ``M`` a fixed ``[4, 3]`` matrix of orthonormal columns): a latent ``[B, 4, 32, 32]``,
posterior variance ``exp(-20)``; the decoder maps a latent back to ``M^T z``, each latent pixel an 8x8 block.
For the toy scenes (flat colours on a flat ground) that is nearly lossless at the 32x32 scene grid the
detector reads, and the diffusion model learns the scenes at that grid.

*Why not trained.* A VAE of this size trained here (ch 32, 20 min on the shared CPU) learnt the shapes and lost
the colours: ldm's GroupNorm has 32 groups, so at 32 channels the output norm of the encoder and of the decoder
standardises every channel on its own over the image, and a channel's absolute level (which colour an object
has) is lost; flat scenes have little else to carry it. With 64 channels a group holds two channels, and
the construction uses that: each signal channel ``s`` is paired with a channel holding only a fixed pattern
``A p`` (``A = 1000``; ``p``: a border ring made by a 3x3 convolution of a constant with zero padding in the
middle block's first res-block, normalised to unit variance), the signal channel holds ``s + A p``; the
group's standard deviation is then ``A`` up to ``O(s / A)``, and ``swish(A n_1 + b) - swish(A n_2 + b)`` of
the two normalised channels (``b`` large, where swish is the identity) is ``s`` again. Every other block is
an identity (its last convolution zero). Errors: below 2e-3 (tested).

The diffusion model works on ``latent * scale_factor`` (SD 1.x's ``0.18215``, here 1 / the standard deviation
of the training scenes' latents).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

PATTERN_AMPLITUDE = 1000.0
LINEAR_OFFSET = 6000.0  # swish(x + LINEAR_OFFSET) = x + LINEAR_OFFSET for the |x| < ~5000 that occur
LOGVAR = -20.0


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """ldm's ``ddconfig`` of the toy VAE (``first_stage_config.params.ddconfig`` in the WebUI yaml)."""

    ch: int = 64
    ch_mult: tuple[int, ...] = (1, 1, 1, 1)
    num_res_blocks: int = 0
    z_channels: int = 4
    resolution: int = 256

    def ddconfig(self) -> dict[str, Any]:
        return {"double_z": True, "z_channels": self.z_channels, "resolution": self.resolution, "in_channels": 3,
                "out_ch": 3, "ch": self.ch, "ch_mult": list(self.ch_mult), "num_res_blocks": self.num_res_blocks,
                "attn_resolutions": [], "dropout": 0.0, "resamp_with_conv": False}

    @property
    def factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


def colour_matrix() -> torch.Tensor:
    """``M`` ``[4, 3]``: the latent channels of an RGB colour (orthonormal columns, so ``M^T M = I``)."""
    seed = torch.tensor([[0.5, 0.5, 0.5], [0.7, -0.7, 0.0], [0.4, 0.4, -0.8], [0.3, -0.2, 0.6]], dtype=torch.float64)
    q, r = torch.linalg.qr(seed)
    return (q * torch.sign(torch.diagonal(r))).float()


class ToyVAE(nn.Module):
    """``encoder``, ``decoder``, ``quant_conv``, ``post_quant_conv``: the modules and names of ldm's
    ``AutoencoderKL`` (embed_dim = z_channels)."""

    def __init__(self, config: VAEConfig = VAEConfig(), construct: bool = True):
        super().__init__()
        from ldm.modules.diffusionmodules.model import Decoder, Encoder

        self.config = config
        dd = config.ddconfig()
        z = config.z_channels
        self.encoder = Encoder(**dd)
        self.decoder = Decoder(**dd)
        self.quant_conv = nn.Conv2d(2 * z, 2 * z, 1)
        self.post_quant_conv = nn.Conv2d(z, z, 1)
        if construct:
            self.construct()

    @torch.no_grad()
    def construct(self) -> None:
        """Set the weights described in the module docstring."""
        c = self.config
        if c.ch < 64 or c.z_channels != 4 or c.ch % 32:
            raise ValueError("the construction needs 64+ channels (two per GroupNorm group) and 4 latent channels")
        for p in self.parameters():
            p.zero_()
        m = colour_matrix()
        const = c.ch - 2  # channels const, const + 1: a constant 1 (one GroupNorm group)
        enc, dec = self.encoder, self.decoder
        for j in range(4):
            enc.conv_in.weight[2 * j, :, 1, 1] = m[j]
        enc.conv_in.bias[const:] = 1.0
        for j in range(3):
            dec.conv_in.weight[2 * j, :, 1, 1] = m[:, j]
        dec.conv_in.bias[const:] = 1.0
        _pattern_block(enc.mid.block_1, const, signals=4)
        _pattern_block(dec.mid.block_1, const, signals=3)
        for net, signals, out in ((enc, 4, enc.conv_out), (dec, 3, dec.conv_out)):
            for j in range(signals):
                net.norm_out.weight[2 * j:2 * j + 2] = PATTERN_AMPLITUDE
                net.norm_out.bias[2 * j:2 * j + 2] = LINEAR_OFFSET
                out.weight[j, 2 * j, 1, 1] = 1.0
                out.weight[j, 2 * j + 1, 1, 1] = -1.0
        enc.conv_out.bias[4:] = LOGVAR
        self.quant_conv.weight[:, :, 0, 0] = torch.eye(8)
        self.post_quant_conv.weight[:, :, 0, 0] = torch.eye(4)

    def moments(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[B, 3, H, W]`` in [-1, 1] -> ``(mean, logvar)``, each ``[B, 4, H/8, W/8]`` (logvar clamped
        to [-30, 20] as ldm's ``DiagonalGaussianDistribution`` does)."""
        mean, logvar = self.quant_conv(self.encoder(images)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The posterior mean ``[B, 4, H/8, W/8]`` (unscaled) of images ``[B, 3, H, W]`` in [-1, 1]."""
        return self.moments(images)[0]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Unscaled latents ``[B, 4, h, w]`` -> images ``[B, 3, 8h, 8w]`` (not clamped)."""
        return self.decoder(self.post_quant_conv(latents))


def _pattern_block(block: nn.Module, const: int, signals: int) -> None:
    """Make ldm ``ResnetBlock`` ``block`` add ``A p`` to channels ``0 .. 2 * signals - 1``: ``p`` is the 3x3
    all-ones convolution (zero padding) of the constant channel ``const``, minus its interior value, normalised
    by the block's second GroupNorm to zero mean and unit variance over the image (a border ring)."""
    interior = 9.0 * (1.0 / (1.0 + math.exp(-1.0)))  # swish(1) summed over the 3x3 window
    block.norm1.bias[const] = 1.0
    block.conv1.weight[0:2, const] = 1.0
    block.conv1.bias[0:2] = -interior
    block.norm2.weight[0] = 1.0
    block.norm2.bias[0] = 40.0  # swish(40 + p) = 40 + p
    block.conv2.weight[0:2 * signals, 0, 1, 1] = PATTERN_AMPLITUDE
    block.conv2.bias[0:2 * signals] = -40.0 * PATTERN_AMPLITUDE
