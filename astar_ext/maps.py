"""Captured cross-attention probabilities -> one map per concept, ``[B, K, h, w]``.

Reproduces Attend-and-Excite's map extraction (the machinery A-STAR builds on, see
``algorithm.md`` §1): mean over layers and heads -> drop the SOT column -> x100 softmax
re-normalisation over the remaining prompt columns -> one map per concept -> 3x3 Gaussian
smoothing. Everything here runs in fp32.

Extensions of A&E (which assumes one 77-token chunk and one token per subject):

* the re-normalisation is done per 77-token chunk (each chunk has its own SOT and EOT);
* a concept's map is the sum of the re-normalised probabilities of its columns (the probability
  that a pixel attends to any token of the concept; it stays in [0, 1]), averaged over the chunks
  in which the concept occurs. A&E's suggestion to average sub-token maps would cap a two-token
  word at 0.5, where Eq. 3's ideal is a map equal to 1 on its mask.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

from .tokens import CHUNK_TOKENS, PromptTokens

SOFTMAX_TEMPERATURE = 100.0  # A&E multiplies the kept probabilities by 100 before the softmax


def gaussian_kernel(kernel_size: int = 3, sigma: float = 0.5) -> torch.Tensor:
    """A&E's smoothing kernel, ``[k, k]``, summing to 1.

    A&E's formula is ``exp(-((x - mu) / (2 sigma))^2)`` (not ``/(2 sigma^2)``), i.e. a Gaussian of
    standard deviation ``sqrt(2) * sigma``; for k = 3, sigma = 0.5 the 1-D weights are
    ``[0.2119, 0.5761, 0.2119]`` and the 2-D kernel is their outer product.
    """
    x = torch.arange(kernel_size, dtype=torch.float64)
    mean = (kernel_size - 1) / 2
    w = torch.exp(-(((x - mean) / (2 * sigma)) ** 2))
    w = w / w.sum()
    return torch.outer(w, w).float()


def smooth(maps: torch.Tensor, kernel_size: int = 3, sigma: float = 0.5) -> torch.Tensor:
    """Depth-wise Gaussian smoothing of ``[B, K, h, w]`` maps, reflect padding (as A&E)."""
    b, k, h, w = maps.shape
    pad = kernel_size // 2
    kernel = gaussian_kernel(kernel_size, sigma).to(maps.device, maps.dtype)
    x = maps.reshape(b * k, 1, h, w)
    mode = "reflect" if h > pad and w > pad else "replicate"
    x = F.pad(x, (pad, pad, pad, pad), mode=mode)
    x = F.conv2d(x, kernel[None, None])
    return x.reshape(b, k, h, w)


@dataclasses.dataclass(frozen=True)
class ColumnLayout:
    """Which context columns to capture and how they combine into concept maps, per batch row.

    For each row, the 77-token chunks that hold one of its concepts are gathered (G chunks, the
    same G for all rows; a row with fewer repeats its first chunk, which then carries no concept).

    Attributes:
        labels: the K concept labels (spec order, shared by all rows).
        gather: ``[B, G*77]`` long, absolute context columns to capture.
        keep: ``[B, G, 77]`` bool, the columns that enter the re-normalisation.
        member: ``[B, K, G*77]`` float, weight of each gathered column in each concept map.
        valid: ``[B, K]`` bool, the concept occurs in the row's prompt.
        row_image: ``[B]`` long or None. Several rows may belong to one image (the WebUI's AND
            prompts give each part its own conditioning row); :meth:`image_maps` then combines
            them. None: each row is its own image.
    """

    labels: tuple[str, ...]
    gather: torch.Tensor
    keep: torch.Tensor
    member: torch.Tensor
    valid: torch.Tensor
    row_image: torch.Tensor | None = None

    @property
    def rows(self) -> int:
        return int(self.gather.shape[0])

    @property
    def num_chunks(self) -> int:
        return int(self.keep.shape[1])

    def to(self, device: torch.device | str) -> ColumnLayout:
        row_image = self.row_image.to(device) if self.row_image is not None else None
        return dataclasses.replace(self, gather=self.gather.to(device), keep=self.keep.to(device),
                                   member=self.member.to(device), valid=self.valid.to(device), row_image=row_image)

    @property
    def image_valid(self) -> torch.Tensor:
        """``[I, K]`` bool: the concept occurs in at least one row of the image."""
        if self.row_image is None:
            return self.valid
        n = int(self.row_image.max()) + 1
        count = torch.zeros(n, self.valid.shape[1]).index_add(0, self.row_image.cpu(), self.valid.cpu().float())
        return (count > 0).to(self.valid.device)

    def image_maps(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Combine per-row maps ``[B, K, h, w]`` into per-image maps ``[I, K, h, w]``.

        A concept's map of an image is the mean of its maps in the image's rows that hold it.
        Returns ``(maps [I, K, h, w], valid [I, K])``; without ``row_image`` the input itself.
        """
        if self.row_image is None:
            return maps, self.valid.to(maps.device)
        idx = self.row_image.to(maps.device)
        n = int(idx.max()) + 1
        weight = self.valid.to(maps.device, maps.dtype)  # [B, K]
        summed = maps.new_zeros((n,) + tuple(maps.shape[1:])).index_add(0, idx, maps * weight[..., None, None])
        count = weight.new_zeros(n, weight.shape[1]).index_add(0, idx, weight)
        return summed / count.clamp_min(1)[..., None, None], count > 0

    @classmethod
    def build(cls, rows: Sequence[PromptTokens], normalize_eot: bool = False,
              row_image: Sequence[int] | None = None) -> ColumnLayout:
        """Build the layout of a batch from each row's matched concepts.

        Args:
            rows: one :class:`~astar_ext.tokens.PromptTokens` per row (all from the same spec).
            normalize_eot: False: A&E's SD 1.x rule, keep local columns 1..75 (EOT and padding
                take part in the re-normalisation, only column 76 is dropped). True: A&E's SD 2.1
                rule, keep only the prompt tokens (EOT and padding excluded).
            row_image: the image (0..I-1) of each row, when several rows belong to one image.
        """
        if not rows:
            raise ValueError("ColumnLayout needs at least one row")
        k = len(rows[0].concepts)
        if any(len(r.concepts) != k for r in rows):
            raise ValueError("all rows must come from the same concept spec")
        labels = tuple(c.label for c in rows[0].concepts)

        chunk_lists = []
        for r in rows:
            needed = sorted({col // CHUNK_TOKENS for c in r.concepts for col in c.columns}) or [0]
            chunk_lists.append(needed)
        g = max(len(c) for c in chunk_lists)
        b = len(rows)
        gather = torch.zeros(b, g * CHUNK_TOKENS, dtype=torch.long)
        keep = torch.zeros(b, g, CHUNK_TOKENS, dtype=torch.bool)
        member = torch.zeros(b, k, g * CHUNK_TOKENS)
        valid = torch.zeros(b, k, dtype=torch.bool)
        local = torch.arange(CHUNK_TOKENS)
        for i, (r, needed) in enumerate(zip(rows, chunk_lists)):
            padded = needed + [needed[0]] * (g - len(needed))
            for slot, chunk in enumerate(padded):
                gather[i, slot * CHUNK_TOKENS:(slot + 1) * CHUNK_TOKENS] = chunk * CHUNK_TOKENS + local
                length = r.chunk_lengths[chunk] if chunk < len(r.chunk_lengths) else 0
                last = length if normalize_eot else CHUNK_TOKENS - 2
                keep[i, slot, 1:max(1, last) + 1] = True
            slot_of = {chunk: slot for slot, chunk in enumerate(needed)}
            for m, concept in enumerate(r.concepts):
                if not concept.columns:
                    continue
                valid[i, m] = True
                chunks = {col // CHUNK_TOKENS for col in concept.columns}
                for col in concept.columns:
                    chunk, j = divmod(col, CHUNK_TOKENS)
                    member[i, m, slot_of[chunk] * CHUNK_TOKENS + j] = 1.0 / len(chunks)
        images = None
        if row_image is not None:
            if len(row_image) != b:
                raise ValueError("row_image needs one image index per row")
            images = torch.tensor(list(row_image), dtype=torch.long)
        return cls(labels, gather, keep, member, valid, images)


def aggregate_layers(probs: Mapping[str, torch.Tensor] | Iterable[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of head-averaged probabilities ``[B, N, C]`` -> ``[B, N, C]`` (fp32).

    Every layer at one resolution has the same number of heads in SD 1.x/2.x/XL, so the mean of
    per-layer head means equals A&E's mean over all (layer, head) maps.
    """
    tensors = list(probs.values()) if isinstance(probs, Mapping) else list(probs)
    if not tensors:
        raise ValueError("no attention was captured")
    return torch.stack([t.float() for t in tensors]).mean(0)


def renormalize(probs: torch.Tensor, layout: ColumnLayout, temperature: float = SOFTMAX_TEMPERATURE) -> torch.Tensor:
    """A&E's re-normalisation of ``[B, N, G*77]`` probabilities, per chunk.

    Drops SOT (and whatever ``layout.keep`` excludes), multiplies the rest by ``temperature`` and
    applies a softmax over them. Excluded columns come out as 0. Returns ``[B, N, G*77]``.
    """
    b, n, c = probs.shape
    x = probs.float().reshape(b, n, layout.num_chunks, CHUNK_TOKENS) * temperature
    keep = layout.keep[:, None].to(x.device)
    x = x.masked_fill(~keep, float("-inf")).softmax(-1)
    return x.reshape(b, n, c)


def concept_maps(
    probs: Mapping[str, torch.Tensor] | Iterable[torch.Tensor],
    layout: ColumnLayout,
    hw: tuple[int, int],
    smoothing: bool = True,
    temperature: float = SOFTMAX_TEMPERATURE,
) -> torch.Tensor:
    """Per-concept attention maps ``[B, K, h, w]`` from captured probabilities.

    Args:
        probs: per layer, head-averaged attention probabilities ``[B, h*w, G*77]`` of the columns
            ``layout.gather`` (queries flattened row-major over (h, w), as the UNet does).
        layout: the batch's :class:`ColumnLayout`.
        hw: the map size ``(h, w)``; non-square images give ``h != w``.
        smoothing: apply A&E's Gaussian smoothing (k=3, sigma=0.5).
    """
    p = aggregate_layers(probs)
    b, n, _ = p.shape
    h, w = hw
    if h * w != n:
        raise ValueError(f"captured {n} queries, which is not {h}x{w}")
    p = renormalize(p, layout, temperature)
    maps = torch.einsum("bnc,bkc->bkn", p, layout.member.to(p.device, p.dtype))
    maps = maps.reshape(b, -1, h, w)
    return smooth(maps) if smoothing else maps


def map_size(latent_hw: tuple[int, int], level: int) -> tuple[int, int]:
    """Spatial size after ``level`` stride-2 downsamplings of a latent (ldm pads: ceil division)."""
    h, w = latent_hw
    f = 2 ** level
    return math.ceil(h / f), math.ceil(w / f)
