"""Layout mode: each concept's target region on the attention-map grid (the paper's §5, Fig. 12).

A-STAR's §5 uses the retention loss (Eq. 3) with masks the user gives instead of the masks of the previous
step: each concept is held to its region and the object lands there. The paper says no more; what is
decided here (``algorithm.md`` A17):

* **Regions.** A box ``(x0, y0, x1, y1)`` in fractions of the image (origin at the top left), or a binary
  mask of any size (white = inside, :func:`decode_mask`). The text form and its checks are in
  :mod:`astar_ext.params` (``parse_layout``).
* **Resizing to the map grid** ``[h, w]`` (image/32 on SD, whatever the pass: hires, img2img, any aspect):
  area average, then a threshold. A cell's *coverage* is the share of its area inside the region (exact
  for a box; for a mask the area average of its pixels, each pixel a rectangle of the image, so any size
  maps onto any grid, :func:`resample_matrix`). A cell is inside when its coverage is at least
  :data:`REGION_THRESHOLD` = 0.5 (half the cell; ``algorithm.md`` §5's recommendation): the grid region
  then has the area of the drawn one to within half a cell on each edge. A region too small to cover any
  cell by half (a box under half a cell wide) keeps the cells it covers most, so it is never empty.
* **Use.** At every corrected step, from the first, the grid region of a concept replaces its retention
  mask ``B`` of Eq. 3 (a fixed target, no gradient); concepts without a region keep the automatic masks
  (``losses.retention_masks``); Eq. 2 stays on. The same layout applies to every image of the batch.
* **Fit.** The share of a concept's attention inside its region, ``sum(A * B) / sum(A)`` over the grid
  (:func:`fit`), is what the infotext reports at the end of the window.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
from collections.abc import Sequence

import numpy as np
import torch

from .params import LayoutEntry, ParamError, concept_key, parse_layout

REGION_THRESHOLD = 0.5  # a map cell is inside a region when at least half of its area is
_TOL = 1e-6  # coverage comparisons tolerate rounding (a box edge at a cell's middle is exactly half)


def coverage_1d(lo: float, hi: float, n: int) -> np.ndarray:
    """``[n]``: the share of each of ``n`` equal cells of ``[0, 1]`` that lies inside ``[lo, hi]``."""
    edges = np.arange(n + 1, dtype=np.float64) / n
    inside = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None)
    return inside * n


def resample_matrix(src: int, dst: int) -> np.ndarray:
    """``[dst, src]`` area-average weights: row ``i`` holds the share of destination cell ``i`` (of ``dst`` equal
    cells of ``[0, 1]``) covered by each source cell (of ``src``); each row sums to 1."""
    out = np.zeros((dst, src), dtype=np.float64)
    for j in range(src):
        out[:, j] = coverage_1d(j / src, (j + 1) / src, dst)
    return out


def box_coverage(box: Sequence[float], h: int, w: int) -> np.ndarray:
    """``[h, w]``: the share of each map cell inside the box ``(x0, y0, x1, y1)`` (fractions of the image)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.outer(coverage_1d(y0, y1, h), coverage_1d(x0, x1, w))


def mask_coverage(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    """``[h, w]``: the area average of a ``[H, W]`` mask (values in [0, 1]) over each map cell, any ``H, W``."""
    m = np.asarray(mask, dtype=np.float64)
    return resample_matrix(m.shape[0], h) @ m @ resample_matrix(m.shape[1], w).T


def binarize(coverage: np.ndarray, threshold: float = REGION_THRESHOLD) -> np.ndarray:
    """``[h, w]`` bool: cells whose coverage is at least ``threshold``; if there is none, the cells of the
    largest coverage (a region smaller than half a cell is not lost). All False only for zero coverage."""
    top = float(coverage.max()) if coverage.size else 0.0
    if top <= 0:
        return np.zeros(coverage.shape, dtype=bool)
    inside = coverage >= threshold - _TOL
    if not inside.any():
        inside = coverage >= top - _TOL
    return inside


def decode_mask(data: str, concept: str = "?") -> np.ndarray:
    """A base64 PNG -> ``[H, W]`` bool, True where the pixel is white (luminance >= 128, after compositing any
    transparency over black). Raises :class:`~astar_ext.params.ParamError` (field ``layout``) when the image
    cannot be read or has no white pixel."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(data, validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
                grey = Image.alpha_composite(black, rgba).convert("L")
            else:
                grey = img.convert("L")
            arr = np.asarray(grey) >= 128
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ParamError("layout", f"the mask of {concept!r} could not be read as a PNG image ({e})") from None
    if arr.ndim != 2 or not arr.any():
        raise ParamError("layout", f"the mask of {concept!r} has nothing inside: no white pixel")
    return arr


def encode_mask(mask: np.ndarray) -> str:
    """``[H, W]`` bool -> base64 of a 1-bit PNG (white = inside): the compact form the infotext keeps."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool)).convert("1").save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


@dataclasses.dataclass(frozen=True)
class Region:
    """A concept's target region: a ``box`` in fractions of the image, or a ``mask`` ``[H, W]`` bool."""

    concept: str
    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = dataclasses.field(default=None, compare=False)

    def coverage(self, h: int, w: int) -> np.ndarray:
        """``[h, w]`` share of each map cell inside the region."""
        if self.box is not None:
            return box_coverage(self.box, h, w)
        return mask_coverage(self.mask, h, w)

    def grid(self, h: int, w: int, threshold: float = REGION_THRESHOLD) -> np.ndarray:
        """``[h, w]`` bool: the region on the map grid (area average, then ``threshold``)."""
        return binarize(self.coverage(h, w), threshold)


class Layout:
    """The decoded regions of a layout, by concept; :meth:`grids` puts them on a map grid for a concept order."""

    def __init__(self, regions: Sequence[Region], threshold: float = REGION_THRESHOLD):
        self.regions = tuple(regions)
        self.threshold = threshold
        self._by_key = {concept_key(r.concept): r for r in self.regions}
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_entries(cls, entries: Sequence[LayoutEntry]) -> Layout:
        return cls([Region(e.concept, box=e.box) if e.box is not None
                    else Region(e.concept, mask=decode_mask(e.mask, e.concept)) for e in entries])

    @classmethod
    def parse(cls, value: object) -> Layout:
        """From anything :func:`~astar_ext.params.parse_layout` takes; masks decoded (``ParamError`` if not)."""
        return cls.from_entries(parse_layout(value))

    def __bool__(self) -> bool:
        return bool(self.regions)

    def __len__(self) -> int:
        return len(self.regions)

    def region(self, label: str) -> Region | None:
        return self._by_key.get(concept_key(label))

    def to_text(self) -> str:
        """The text form, masks re-encoded as 1-bit PNGs (what the infotext keeps)."""
        parts = []
        for r in self.regions:
            if r.box is not None:
                parts.append(LayoutEntry(r.concept, box=r.box))
            else:
                parts.append(LayoutEntry(r.concept, mask=encode_mask(r.mask)))
        from .params import layout_to_text

        return layout_to_text(parts)

    def grids(self, labels: Sequence[str], hw: tuple[int, int],
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(masks [K, h, w] float 0/1, has [K] bool)`` for concepts ``labels`` on an ``h x w`` map grid;
        a concept without a region has an empty mask and ``has`` False."""
        h, w = int(hw[0]), int(hw[1])
        key = (tuple(concept_key(x) for x in labels), h, w, str(device))
        found = self._cache.get(key)
        if found is None:
            masks = torch.zeros(len(labels), h, w)
            has = torch.zeros(len(labels), dtype=torch.bool)
            for k, label in enumerate(labels):
                r = self.region(label)
                if r is not None:
                    masks[k] = torch.from_numpy(r.grid(h, w, self.threshold).astype(np.float32))
                    has[k] = True
            found = (masks.to(device), has.to(device))
            self._cache[key] = found
        return found


def fit(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``[B, K]``: the share of each concept map's mass inside its region, ``sum(A * B) / sum(A)``.

    ``maps`` ``[B, K, h, w]`` (non-negative), ``masks`` ``[K, h, w]`` or ``[B, K, h, w]`` (0/1). A map with no
    mass gives 0.
    """
    maps = maps.detach().float()
    masks = masks.to(maps)
    inside = (maps * masks).sum((-2, -1))
    total = maps.sum((-2, -1))
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.zeros_like(total))


def with_regions(prev_masks: torch.Tensor | None, prev_ok: torch.Tensor | None, masks: torch.Tensor,
                 has: torch.Tensor, shape: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The retention masks of one step with the layout: ``B`` of Eq. 3 for ``shape = [I, K, h, w]`` maps.

    Concepts with a region (``has`` ``[K]``) take it (``masks`` ``[K, h, w]``); the others keep the previous
    step's automatic mask (``prev_masks``/``prev_ok``, or none at the first corrected step).
    """
    i, k = int(shape[0]), int(shape[1])
    if prev_masks is None or prev_ok is None:
        prev_masks = masks.new_zeros(tuple(shape))
        prev_ok = torch.zeros(i, k, dtype=torch.bool, device=masks.device)
    pick = has.to(prev_masks.device)
    out = torch.where(pick[None, :, None, None], masks.to(prev_masks)[None].expand(i, -1, -1, -1), prev_masks)
    return out, prev_ok.to(pick.device) | pick[None]

