"""``AStarController``: the A-STAR latent correction of one generation.

At every optimised step (``algorithm.md`` §4.3) the host hands the controller the sampler's own
latent ``x``, the noise level, the batch's :class:`~astar_ext.maps.ColumnLayout` and a
``denoise_fn(x, sigma)`` that runs the conditional-only UNet pass. The controller then

1. runs that pass on a leaf copy of ``x`` under ``torch.enable_grad()`` with the UNet weights
   frozen, recording the cross-attention of the concept columns (:class:`AttentionCapture`);
2. builds the concept maps (A&E's extraction, fp32) and the loss
   ``seg_weight * L_seg (Eq. 2) + ret_weight * L_ret (Eq. 3)`` against the masks it kept from the
   previous optimised step;
3. takes ``g = dL/dx`` (with a static loss scale for fp16 passes; a non-finite gradient skips the
   update and is recorded) and writes ``x <- x - alpha_i * f(sigma) * g`` into ``x`` IN PLACE, so the
   sampler steps from the corrected latent (Eq. 4's update ``z'_t = z_t - alpha_t grad L``);
4. keeps the binary masks of this step's maps (pre-update, detached) for the next step.

It polls ``should_stop()`` before every pass and records per-step diagnostics
(:class:`StepRecord`). It uses no random numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from .capture import AttentionCapture, frozen
from .losses import astar_loss, binary_iou, concept_pairs, retention_masks, segregation_loss
from .maps import ColumnLayout, concept_maps
from .params import DEFAULTS
from .schedule import Schedule, sigma_space_factor

DenoiseFn = Callable[[torch.Tensor, Any], Any]


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """Engine settings that are not user fields of the params table.

    Attributes:
        normalize_eot: exclude EOT and padding from the re-normalisation (A&E's SD 2.1 rule).
        smoothing: A&E's Gaussian smoothing of the maps.
        mask_method: ``"threshold"`` (at the params' ``mask_threshold``) or ``"otsu"``.
        loss_scale: the loss is multiplied by this before the backward pass and the gradient
            divided by it, so that an fp16 backward does not underflow.
        early_exit: stop the loss pass right after the last captured layer.
        freeze_weights: set ``requires_grad=False`` on the UNet's weights during the pass.
        keep_maps: keep every step's maps (cpu) in the records, for pictures.
    """

    normalize_eot: bool = False
    smoothing: bool = True
    mask_method: str = "threshold"
    loss_scale: float = 2.0 ** 12
    early_exit: bool = True
    freeze_weights: bool = True
    keep_maps: bool = False


@dataclasses.dataclass
class StepRecord:
    """Diagnostics of one optimised step (values of the first iteration, before its update).

    Index ``r`` runs over the images of the pass (the rows of an image are combined first).
    ``overlap[r][p]`` is Eq. 2's term of pair ``p`` (:attr:`pairs`) for image ``r`` (0 where
    ``pair_valid[r][p]`` is False: a concept of the pair is not in that image's prompt);
    ``retention[r][m]`` Eq. 3's term of concept ``m`` (``None`` where skipped);
    ``retention_iou[r][m]`` the IoU of concept ``m``'s binary mask at this step and at the
    previous optimised step (``None`` without a previous mask).
    """

    step: int
    sigma: float
    step_size: float
    factor: float
    seg_loss: float = math.nan
    ret_loss: float = math.nan
    loss: float = math.nan
    overlap: list[list[float]] = dataclasses.field(default_factory=list)
    pair_valid: list[list[bool]] = dataclasses.field(default_factory=list)
    retention: list[list[float | None]] = dataclasses.field(default_factory=list)
    retention_iou: list[list[float | None]] = dataclasses.field(default_factory=list)
    grad_norm: float = math.nan
    passes: int = 0
    updates: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    maps: torch.Tensor | None = None


@dataclasses.dataclass
class MeasureRecord:
    """A no-gradient measurement of the concept maps at one step (no update)."""

    step: int
    sigma: float
    overlap: list[list[float]]
    pair_valid: list[list[bool]]
    seg_loss: float
    seconds: float
    maps: torch.Tensor | None = None


def _scalar(sigma: Any) -> float:
    if isinstance(sigma, torch.Tensor):
        return float(sigma.detach().flatten()[0])
    return float(sigma)


def _rows(t: torch.Tensor) -> list[list[float]]:
    return [[float(v) for v in row] for row in t.detach().float().cpu()]


def _pair_valid(valid: torch.Tensor) -> list[list[bool]]:
    """``[B, K]`` concept validity -> per row, per pair of :func:`concept_pairs`: both concepts present."""
    v = valid.cpu()
    pairs = concept_pairs(v.shape[1])
    return [[bool(row[m] and row[n]) for m, n in pairs] for row in v]


def mean_overlap(overlap: list[list[float]], pair_valid: list[list[bool]]) -> float | None:
    """Mean of the valid pair terms over rows and pairs (None when no pair is valid)."""
    vals = [o for row, ok in zip(overlap, pair_valid) for o, good in zip(row, ok) if good]
    return sum(vals) / len(vals) if vals else None


class AStarController:
    """The A-STAR correction of one generation (one sampling run).

    Args:
        capture: an :class:`AttentionCapture` on the UNet the ``denoise_fn`` runs; the controller
            installs it on ``__enter__`` (or :meth:`open`) and removes it on exit / :meth:`close`.
        schedule: the run's :class:`~astar_ext.schedule.Schedule`.
        params: an ``AStarParams`` (weights, mask threshold).
        sigma_space: True for k-diffusion samplers (``x = z sqrt(1 + sigma^2)``), False when the
            sampler's latent is the UNet input itself (DDIM/PLMS, "sigma" = timestep).
        options: :class:`EngineOptions`.
        should_stop: polled before each pass; True stops the correction of this step.
    """

    def __init__(
        self,
        capture: AttentionCapture,
        schedule: Schedule,
        params: Any = DEFAULTS,
        sigma_space: bool = True,
        options: EngineOptions = EngineOptions(),
        should_stop: Callable[[], bool] | None = None,
    ):
        self.capture = capture
        self.schedule = schedule
        self.params = params
        self.sigma_space = sigma_space
        self.options = options
        self.should_stop = should_stop or (lambda: False)
        self.records: list[StepRecord] = []
        self.measures: list[MeasureRecord] = []
        self.labels: tuple[str, ...] = ()
        self._prev_masks: torch.Tensor | None = None
        self._prev_ok: torch.Tensor | None = None
        self._prev_key: tuple | None = None
        self.interrupted = False

    # --- ownership of the hooks ----------------------------------------------------------------
    def open(self) -> AStarController:
        self.capture.install()
        return self

    def close(self) -> None:
        self.capture.remove()

    def __enter__(self) -> AStarController:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the loss pass ---------------------------------------------------------------------------
    def _maps(self, x: torch.Tensor, sigma: Any, layout: ColumnLayout,
              denoise_fn: DenoiseFn) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``denoise_fn`` under recording; return the concept maps ``[I, K, h, w]`` of each image
        and their validity ``[I, K]`` (rows of one image combined, see ``ColumnLayout.image_maps``)."""
        with self.capture.recording(layout.gather, early_exit=self.options.early_exit) as rec:
            denoise_fn(x, sigma)
        if not rec.complete:
            missing = [n for n in self.capture.layers if n not in rec.probs]
            raise RuntimeError(f"the loss pass did not reach the layers {', '.join(missing)}")
        layout = layout.to(x.device)
        maps = concept_maps(rec.probs, layout, rec.hw, smoothing=self.options.smoothing)
        return layout.image_maps(maps)

    def _masks_key(self, layout: ColumnLayout, maps: torch.Tensor, valid: torch.Tensor) -> tuple:
        return (layout.labels, tuple(maps.shape), valid.cpu().numpy().tobytes())

    def step(self, x: torch.Tensor, sigma: Any, step: int, layout: ColumnLayout,
             denoise_fn: DenoiseFn) -> StepRecord | None:
        """Correct the latent ``x`` ``[B, C, H, W]`` in place at sampling step ``step``.

        ``sigma`` is passed through to ``denoise_fn``; its (first) value sets the sigma-space
        factor. Returns ``None`` outside the window; otherwise the step's :class:`StepRecord`
        (also appended to :attr:`records`).
        """
        if not self.schedule.in_window(step):
            return None
        t0 = time.perf_counter()
        s = _scalar(sigma)
        factor = sigma_space_factor(s) if self.sigma_space else 1.0
        record = StepRecord(step=step, sigma=s, step_size=self.schedule.step_size(step), factor=factor)
        self.labels = layout.labels
        p = self.params
        weights_ctx = frozen(self.capture.unet) if self.options.freeze_weights else contextlib.nullcontext()
        with weights_ctx:
            for it in range(self.schedule.iterations):
                if self.should_stop():
                    self.interrupted = True
                    record.skipped.append("interrupted")
                    break
                z = x.detach().clone().requires_grad_(True)
                with torch.enable_grad():
                    maps, valid = self._maps(z, sigma, layout, denoise_fn)
                    key = self._masks_key(layout, maps, valid)
                    use_prev = self._prev_key == key
                    terms = astar_loss(maps, valid,
                                       self._prev_masks if use_prev else None,
                                       self._prev_ok if use_prev else None,
                                       p.seg_weight, p.ret_weight)
                    loss = terms.total.sum()
                    record.passes += 1
                    if it == 0:
                        self._record_first(record, terms, maps, valid, layout, use_prev)
                    if not loss.requires_grad:
                        record.skipped.append("the loss does not depend on the latent")
                        break
                    (grad,) = torch.autograd.grad(loss * self.options.loss_scale, z)
                grad = grad.float() / self.options.loss_scale
                if not torch.isfinite(grad).all():
                    record.skipped.append(f"non-finite gradient at iteration {it}")
                    continue
                record.grad_norm = float(grad.norm())
                with torch.no_grad():
                    delta = grad * (record.step_size * factor)
                    x.copy_((x.float() - delta).to(x.dtype))
                record.updates += 1
        record.seconds = time.perf_counter() - t0
        self.records.append(record)
        return record

    def _record_first(self, record: StepRecord, terms: Any, maps: torch.Tensor, valid: torch.Tensor,
                      layout: ColumnLayout, use_prev: bool) -> None:
        """Fill the step's diagnostics from the first pass and roll the retention masks."""
        record.seg_loss = float(terms.seg.detach().mean())
        record.ret_loss = float(terms.ret.detach().mean())
        record.loss = float(terms.total.detach().mean())
        record.overlap = _rows(terms.pairs)
        record.pair_valid = _pair_valid(valid)
        masks, ok = retention_masks(maps, self.params.mask_threshold, self.options.mask_method)
        ok = ok & valid.to(ok.device)
        ret = terms.retention.detach().float().cpu()
        if use_prev:
            had = (self._prev_ok & valid.to(ok.device)).cpu()
            prev_ok = had & ok.cpu()
            iou = binary_iou(masks, self._prev_masks).cpu()
            record.retention = [[float(ret[r, m]) if bool(had[r, m]) else None
                                 for m in range(ret.shape[1])] for r in range(ret.shape[0])]
            record.retention_iou = [[float(iou[r, m]) if bool(prev_ok[r, m]) else None
                                     for m in range(iou.shape[1])] for r in range(iou.shape[0])]
        else:
            record.retention = [[None] * ret.shape[1] for _ in range(ret.shape[0])]
            record.retention_iou = [[None] * ret.shape[1] for _ in range(ret.shape[0])]
        if self.options.keep_maps:
            record.maps = maps.detach().float().cpu()
        self._prev_masks, self._prev_ok = masks, ok
        self._prev_key = self._masks_key(layout, maps, valid)

    @torch.no_grad()
    def measure(self, x: torch.Tensor, sigma: Any, step: int, layout: ColumnLayout,
                denoise_fn: DenoiseFn) -> MeasureRecord:
        """Measure the concept maps and their overlap at ``x`` without changing anything."""
        t0 = time.perf_counter()
        maps, valid = self._maps(x, sigma, layout, denoise_fn)
        seg, pairs = segregation_loss(maps, valid)
        m = MeasureRecord(step=step, sigma=_scalar(sigma), overlap=_rows(pairs), pair_valid=_pair_valid(valid),
                          seg_loss=float(seg.mean()),
                          seconds=time.perf_counter() - t0,
                          maps=maps.float().cpu() if self.options.keep_maps else None)
        self.measures.append(m)
        return m

    # --- summaries -------------------------------------------------------------------------------
    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(self.labels[m], self.labels[n]) for m, n in concept_pairs(len(self.labels))]

    @property
    def passes(self) -> int:
        return sum(r.passes for r in self.records)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.records) + sum(m.seconds for m in self.measures)
