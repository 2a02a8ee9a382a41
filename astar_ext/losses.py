"""A-STAR's losses on per-concept attention maps ``[B, K, h, w]``.

* :func:`segregation_loss` — Eq. 2 of the paper, as printed: for every unordered pair of concepts,
  ``sum_ij min(A^m, A^n) / sum_ij (A^m + A^n)``, summed over the pairs. Each pair term lies in
  ``[0, 0.5]`` (0.5 for identical maps, 0 for disjoint ones).
* :func:`retention_loss` — Eq. 3: for every concept, ``1 - sum_ij min(A_t, B_{t+1}) / sum_ij (A_t +
  B_{t+1})`` with ``B`` the binary mask of the concept at the previous denoising step, summed over
  the concepts. Each term lies in ``[0.5, 1]`` (0.5 when the map equals its mask).
* :func:`region_share_loss` — layout mode's term for a concept held to a region ``R`` (the default
  ``layout_loss = "share"``): ``1 - sum_ij A R / sum_ij A``, the share of the concept's attention outside
  its region. The paper only says "the retention loss with these masks" (§5); Eq. 3 with ``R`` as ``B`` is
  kept as ``layout_loss = "eq3"`` (see the function's docstring for why it moves objects less).
* :func:`retention_masks` — the binarisation of a map into the next step's ``B``: min-max normalise,
  then threshold at ``tau`` (or Otsu's threshold); an empty or flat map gives no mask and its term
  is skipped at the next step.

The paper sums over pairs and concepts (no mean); so do we.
"""

from __future__ import annotations

import dataclasses
import itertools

import torch

EPS = 1e-8
FLAT = 1e-6  # a map whose max - min is below this is "flat": no mask
FLOOR = 1e-3  # a map whose max is below this is "empty": no mask


def concept_pairs(k: int) -> list[tuple[int, int]]:
    """Every unordered pair ``(m, n)``, ``m < n``, of ``k`` concepts, in lexicographic order."""
    return list(itertools.combinations(range(k), 2))


def _soft_overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum min(a, b) / sum (a + b)`` over the last two dims (Eq. 2's pair term)."""
    inter = torch.minimum(a, b).sum((-2, -1))
    total = (a + b).sum((-2, -1))
    return inter / total.clamp_min(EPS)


def segregation_loss(maps: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 2: the overlap of every pair of concept maps.

    Args:
        maps: ``[B, K, h, w]`` concept maps (non-negative).
        valid: ``[B, K]`` bool; a pair with a concept missing from a row contributes 0.

    Returns:
        ``(loss [B], pair_terms [B, P])`` with ``P = K (K - 1) / 2`` in :func:`concept_pairs` order.
    """
    b, k = maps.shape[:2]
    pairs = concept_pairs(k)
    if not pairs:
        zero = maps.sum((1, 2, 3)) * 0
        return zero, maps.new_zeros(b, 0)
    m_idx = torch.tensor([p[0] for p in pairs], device=maps.device)
    n_idx = torch.tensor([p[1] for p in pairs], device=maps.device)
    terms = _soft_overlap(maps[:, m_idx], maps[:, n_idx])
    if valid is not None:
        terms = terms * (valid[:, m_idx] & valid[:, n_idx]).to(terms.dtype)
    return terms.sum(1), terms


def retention_loss(maps: torch.Tensor, masks: torch.Tensor, mask_ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3: keep each concept's map on its mask from the previous step.

    Args:
        maps: ``[B, K, h, w]`` concept maps of the current step.
        masks: ``[B, K, h, w]`` binary masks (0/1) of the previous step, no gradient.
        mask_ok: ``[B, K]`` bool; a concept without a usable mask is skipped (contributes 0).

    Returns:
        ``(loss [B], terms [B, K])``; a skipped term is 0.
    """
    masks = masks.to(maps.dtype).detach()
    terms = 1.0 - _soft_overlap(maps, masks)
    terms = terms * mask_ok.to(terms.dtype)
    return terms.sum(1), terms


def region_share_loss(maps: torch.Tensor, regions: torch.Tensor, ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Layout mode: for every concept held to a region, the share of its attention outside the region.

    ``1 - sum_ij A_ij R_ij / sum_ij A_ij`` (0 when all of the map is inside ``R``, 1 when none is); it is one
    minus the layout *fit* the infotext reports (:func:`astar_ext.regions.fit`).

    Why not Eq. 3 with ``R`` as ``B``: ``sum min(A, R) / sum (A + R)`` = ``in / (in + out + |R|)`` for a
    binary ``R`` and ``A <= 1``. A region is usually far larger than the attention mass of a concept (a half-
    image box is 128 cells of a 16x16 map; a concept's map holds a few tens), so ``|R|`` dominates the
    denominator: the gradient mostly raises the attention inside the region (``d/d in ~ (out + |R|) /
    total^2``) and hardly lowers it outside (``d/d out = -in / total^2``). The share's gradient is balanced
    (``out / (in + out)^2`` against ``-in / (in + out)^2``): it moves attention from outside to inside, which
    is what moves the object (docs/faithfulness.md, "Layout mode").

    Args:
        maps: ``[B, K, h, w]`` concept maps (non-negative).
        regions: ``[B, K, h, w]`` binary regions (0/1), no gradient.
        ok: ``[B, K]`` bool; a concept without a region (or not in the image) is skipped (contributes 0).

    Returns:
        ``(loss [B], terms [B, K])``; a skipped term is 0.
    """
    regions = regions.to(maps.dtype).detach()
    inside = (maps * regions).sum((-2, -1))
    total = maps.sum((-2, -1))
    terms = 1.0 - inside / total.clamp_min(EPS)
    terms = terms * ok.to(terms.dtype)
    return terms.sum(1), terms


def _otsu_thresholds(values: torch.Tensor, bins: int = 64) -> torch.Tensor:
    """Otsu's threshold of each row of ``values`` ``[M, n]`` (values in [0, 1]) -> ``[M]``."""
    cand = torch.linspace(0, 1, bins + 1, device=values.device, dtype=values.dtype)[1:-1]  # [T]
    above = values[:, :, None] >= cand  # [M, n, T]
    n = values.shape[1]
    w1 = above.sum(1).to(values.dtype) / n  # share of pixels above
    w0 = 1 - w1
    s1 = (values[:, :, None] * above).sum(1)
    s0 = values.sum(1, keepdim=True) - s1
    mu1 = s1 / (w1 * n).clamp_min(1)
    mu0 = s0 / (w0 * n).clamp_min(1)
    between = w0 * w1 * (mu0 - mu1) ** 2  # [M, T]
    return cand[between.argmax(1)]


def retention_masks(
    maps: torch.Tensor, threshold: float = 0.5, method: str = "threshold"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary masks ``B`` of ``[B, K, h, w]`` maps for the next step's retention loss.

    Each map is min-max normalised to [0, 1]; ``method="threshold"`` keeps pixels ``>= threshold``,
    ``method="otsu"`` uses Otsu's threshold of the normalised map. A map whose maximum is below
    ``FLOOR`` or whose range is below ``FLAT`` gets no mask.

    Returns:
        ``(masks [B, K, h, w] float 0/1, ok [B, K] bool)``.
    """
    if method not in ("threshold", "otsu"):
        raise ValueError(f"unknown mask method {method!r}")
    maps = maps.detach().float()
    b, k, h, w = maps.shape
    flat = maps.reshape(b * k, h * w)
    lo = flat.min(1, keepdim=True).values
    hi = flat.max(1, keepdim=True).values
    rng = hi - lo
    norm = (flat - lo) / rng.clamp_min(EPS)
    if method == "otsu":
        tau = _otsu_thresholds(norm)[:, None]
    else:
        tau = torch.full_like(lo, float(threshold))
    masks = (norm >= tau).float()
    ok = (hi[:, 0] >= FLOOR) & (rng[:, 0] >= FLAT) & (masks.sum(1) > 0)
    masks = masks * ok[:, None].float()
    return masks.reshape(b, k, h, w), ok.reshape(b, k)


def binary_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of binary masks over the last two dims; 0 where both are empty."""
    a = a > 0.5
    b = b > 0.5
    inter = (a & b).sum((-2, -1)).float()
    union = (a | b).sum((-2, -1)).float()
    return inter / union.clamp_min(1)


@dataclasses.dataclass
class LossTerms:
    """The combined objective of one loss pass (Eq. 4 with weights).

    ``total`` ``[B]`` = ``seg_weight * seg`` + ``ret_weight * ret``; ``pairs`` ``[B, P]`` and
    ``retention`` ``[B, K]`` are the individual terms (``retention`` is 0 where skipped).
    """

    total: torch.Tensor
    seg: torch.Tensor
    ret: torch.Tensor
    pairs: torch.Tensor
    retention: torch.Tensor


def astar_loss(
    maps: torch.Tensor,
    valid: torch.Tensor,
    prev_masks: torch.Tensor | None,
    prev_ok: torch.Tensor | None,
    seg_weight: float = 1.0,
    ret_weight: float = 1.0,
    ret_weights: torch.Tensor | None = None,
    share: torch.Tensor | None = None,
) -> LossTerms:
    """Eq. 4 with weights: ``seg_weight * L_seg + ret_weight * L_ret``.

    Without previous masks (the first optimised step) ``L_ret`` is 0. ``ret_weights`` ``[K]``: a weight per
    concept for its Eq. 3 term instead of ``ret_weight`` (layout mode weighs the concepts held to a region
    apart from those on their automatic masks); ``ret`` stays the unweighted sum. ``share`` ``[K]`` bool:
    the concepts whose term is :func:`region_share_loss` against their mask (a layout region) instead of
    Eq. 3.
    """
    seg, pairs = segregation_loss(maps, valid)
    if prev_masks is None or prev_ok is None:
        ret = torch.zeros_like(seg)
        retention = maps.new_zeros(maps.shape[:2])
    else:
        ret, retention = retention_loss(maps, prev_masks, prev_ok & valid)
        if share is not None and bool(share.any()):
            _, shared = region_share_loss(maps, prev_masks, prev_ok & valid)
            retention = torch.where(share.to(retention.device)[None], shared, retention)
            ret = retention.sum(1)
    if ret_weights is None:
        total = seg_weight * seg + ret_weight * ret
    else:
        total = seg_weight * seg + (retention * ret_weights.to(retention)[None]).sum(1)
    return LossTerms(total, seg, ret, pairs, retention)
