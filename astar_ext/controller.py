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

With a layout (the params' ``layout`` field, :mod:`astar_ext.regions`), each concept that has a region is
held to it: at every corrected step, from the first, its region on the map grid replaces its mask ``B`` in
Eq. 3, and its Eq. 3 term is weighted by ``layout_weight`` instead of ``ret_weight``; the other concepts keep
the rolling automatic masks.

It polls ``should_stop()`` before every pass and records per-step diagnostics
(:class:`StepRecord`). It uses no random numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .capture import AttentionCapture, frozen
from .checkpointing import checkpointed_blocks
from .losses import LossTerms, astar_loss, binary_iou, concept_pairs, retention_masks, segregation_loss
from .maps import ColumnLayout, concept_maps
from .params import DEFAULTS
from .regions import Layout, fit, with_regions
from .schedule import Schedule, sigma_space_factor

DenoiseFn = Callable[[torch.Tensor, Any], Any]


@contextlib.contextmanager
def grad_mode() -> Iterator[None]:
    """Autograd on for the loss pass, also when the host samples under ``torch.inference_mode()``.

    WebUI Forge runs the whole batch loop in inference mode (``modules/processing.py``), where
    ``torch.enable_grad()`` alone records nothing. Inside this block inference mode is off (a no-op
    where it was not on): tensors made here are normal tensors that autograd can save, while the
    inference tensors of the host (the sampler's latent, the conditioning) can still be read. Writing
    into an inference tensor in place is allowed only in inference mode, so the caller updates the
    latent after the block.
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield


LAYOUT_LOSSES = ("share", "eq3")
"""The values of :attr:`EngineOptions.layout_loss`; the first is the default."""


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """Engine settings that are not user fields of the params table.

    Attributes:
        normalize_eot: exclude EOT and padding from the re-normalisation (A&E's SD 2.1 rule).
        smoothing: A&E's Gaussian smoothing of the maps.
        mask_method: ``"threshold"`` (at the params' ``mask_threshold``) or ``"otsu"``.
        layout_loss: the term of a concept held to a layout region: ``"share"`` (the share of its attention
            outside the region, :func:`~astar_ext.losses.region_share_loss`) or ``"eq3"`` (Eq. 3 with the
            region as ``B``).
        loss_scale: the loss is multiplied by this before the backward pass and the gradient
            divided by it, so that an fp16 backward does not underflow.
        early_exit: stop the loss pass right after the last captured layer.
        freeze_weights: set ``requires_grad=False`` on the UNet's weights during the pass.
        keep_maps: keep every step's maps (cpu) in the records, for pictures.
        recompute_probs: the captured probabilities keep only ``q`` and ``k`` for the backward
            pass and recompute the softmax there (:class:`~astar_ext.capture.ColumnProbabilities`),
            instead of keeping an fp32 softmax over all heads and context columns per layer.
        all_columns: capture the probabilities of every context column and pick the concepts'
            columns afterwards (the unoptimised variant; for the benchmark's comparison).
        batch_pass: one loss pass for all images of the batch. False: one pass (and one backward)
            per image, for the benchmark's comparison; it needs a ``denoise_fn(x, sigma, rows)``
            that runs only the given rows of the layout.
        skip_below: adaptive skip, 0 = off. At an optimised step, an image whose concepts'
            overlap (the mean of Eq. 2's pair terms of the step's own maps, before the update) is
            already below this value is not moved; when no image of the batch needs a move, the
            backward pass is not run at all. The forward pass still runs (it measures the overlap
            and rolls the retention masks).
        checkpoint_blocks: run the UNet blocks before the last captured layer that hold no captured
            layer under activation checkpointing during the loss pass
            (:func:`~astar_ext.checkpointing.checkpointed_blocks`): less memory for the backward
            pass, one more forward of those blocks per gradient pass; the same gradient.
        sync_timing: synchronise the device around the timed phases of a pass (forward, loss,
            backward), so that the per-phase seconds of :class:`StepRecord` are exact on a GPU
            (costs a little time; for benchmarks).
    """

    normalize_eot: bool = False
    smoothing: bool = True
    mask_method: str = "threshold"
    layout_loss: str = LAYOUT_LOSSES[0]
    loss_scale: float = 2.0 ** 12
    early_exit: bool = True
    freeze_weights: bool = True
    keep_maps: bool = False
    recompute_probs: bool = False
    all_columns: bool = False
    batch_pass: bool = True
    skip_below: float = 0.0
    checkpoint_blocks: bool = False
    sync_timing: bool = False


@dataclasses.dataclass
class StepRecord:
    """Diagnostics of one optimised step (values of the first iteration, before its update).

    Index ``r`` runs over the images of the pass (the rows of an image are combined first).
    ``overlap[r][p]`` is Eq. 2's term of pair ``p`` (:attr:`pairs`) for image ``r`` (0 where
    ``pair_valid[r][p]`` is False: a concept of the pair is not in that image's prompt);
    ``retention[r][m]`` Eq. 3's term of concept ``m`` (``None`` where skipped);
    ``retention_iou[r][m]`` the IoU of concept ``m``'s binary mask at this step and at the
    previous optimised step (``None`` without a previous mask). ``fit[r][m]``: with a layout, the share
    of concept ``m``'s attention inside its region (``None`` for a concept without a region or not in the
    image; empty without a layout).

    ``passes`` counts loss-pass forwards, ``gradients`` backward passes (fewer with the adaptive
    skip, more with per-image passes), ``updates`` applied updates. ``below[r]`` says that image
    ``r`` was under ``skip_below`` at the first iteration and was not moved (empty when the skip
    is off). ``forward_seconds`` (the UNet pass with the capture), ``loss_seconds`` (maps, losses,
    diagnostics) and ``backward_seconds`` split ``seconds`` (exact on a GPU with ``sync_timing``).
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
    fit: list[list[float | None]] = dataclasses.field(default_factory=list)
    grad_norm: float = math.nan
    passes: int = 0
    gradients: int = 0
    updates: int = 0
    below: list[bool] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    forward_seconds: float = 0.0
    loss_seconds: float = 0.0
    backward_seconds: float = 0.0
    maps: torch.Tensor | None = None


@dataclasses.dataclass
class MeasureRecord:
    """A no-gradient measurement of the concept maps at one step (no update); ``fit`` as in :class:`StepRecord`."""

    step: int
    sigma: float
    overlap: list[list[float]]
    pair_valid: list[list[bool]]
    seg_loss: float
    seconds: float
    maps: torch.Tensor | None = None
    fit: list[list[float | None]] = dataclasses.field(default_factory=list)


def _scalar(sigma: Any) -> float:
    if isinstance(sigma, torch.Tensor):
        return float(sigma.detach().flatten()[0])
    return float(sigma)


def _plain(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t``, or a normal copy of it when it is an inference tensor (call outside inference mode)."""
    return t.clone() if isinstance(t, torch.Tensor) and t.is_inference() else t


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


def _detached(terms: LossTerms) -> LossTerms:
    return LossTerms(*(getattr(terms, f.name).detach() for f in dataclasses.fields(LossTerms)))


def select_rows(layout: ColumnLayout, rows: list[int]) -> ColumnLayout:
    """The layout of ``rows`` only (all of one image: their ``row_image`` becomes 0)."""
    index = torch.tensor(rows, dtype=torch.long)
    row_image = None if layout.row_image is None else torch.zeros(len(rows), dtype=torch.long)
    return dataclasses.replace(layout, gather=layout.gather[index], keep=layout.keep[index],
                               member=layout.member[index], valid=layout.valid[index], row_image=row_image)


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
        layout: the concepts' target regions (:class:`~astar_ext.regions.Layout`); default: decoded from
            ``params.layout`` (none when it is empty). With a layout, the adaptive skip is off (a small
            overlap says nothing about where the concepts are).
    """

    def __init__(
        self,
        capture: AttentionCapture,
        schedule: Schedule,
        params: Any = DEFAULTS,
        sigma_space: bool = True,
        options: EngineOptions = EngineOptions(),
        should_stop: Callable[[], bool] | None = None,
        layout: Layout | None = None,
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
        if layout is None and getattr(params, "layout", ""):
            layout = Layout.parse(params.layout)
        self.layout = layout if layout else None

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
    def _record(self, x: torch.Tensor, sigma: Any, layout: ColumnLayout, denoise_fn: DenoiseFn,
                rows: list[int] | None = None) -> Any:
        """Run ``denoise_fn`` under recording and return the :class:`~astar_ext.capture.Recording`.

        ``rows``: run only these rows of ``layout`` (``denoise_fn(x, sigma, rows)``; ``layout`` is
        then already restricted to them).
        """
        o = self.options
        with self.capture.recording(layout.gather, early_exit=o.early_exit, all_columns=o.all_columns,
                                    recompute=o.recompute_probs) as rec:
            if rows is None:
                denoise_fn(x, sigma)
            else:
                denoise_fn(x, sigma, rows)
        if not rec.complete:
            missing = [n for n in self.capture.layers if n not in rec.probs]
            raise RuntimeError(f"the loss pass did not reach the layers {', '.join(missing)}")
        return rec

    def _rec_maps(self, rec: Any, layout: ColumnLayout, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The concept maps ``[I, K, h, w]`` of each image and their validity ``[I, K]`` (rows of one
        image combined, see ``ColumnLayout.image_maps``)."""
        layout = layout.to(device)
        maps = concept_maps(rec.column_probs(), layout, rec.hw, smoothing=self.options.smoothing)
        return layout.image_maps(maps)

    def _maps(self, x: torch.Tensor, sigma: Any, layout: ColumnLayout,
              denoise_fn: DenoiseFn) -> tuple[torch.Tensor, torch.Tensor]:
        return self._rec_maps(self._record(x, sigma, layout, denoise_fn), layout, x.device)

    def _sync(self, x: torch.Tensor) -> None:
        if self.options.sync_timing and x.is_cuda:
            torch.cuda.synchronize(x.device)

    @staticmethod
    def _masks_key(layout: ColumnLayout, maps: torch.Tensor, valid: torch.Tensor) -> tuple:
        """What the retention masks of a step belong to: the labels, the maps' shape ``[I, K, h, w]``
        and which concepts each image holds (``valid`` ``[I, K]``)."""
        return (layout.labels, tuple(valid.shape) + tuple(maps.shape[-2:]), valid.cpu().numpy().tobytes())

    def _groups(self, layout: ColumnLayout) -> list[tuple[slice, list[int] | None, ColumnLayout]]:
        """The loss passes of one iteration: ``(images, rows, layout)`` each. One pass for the whole
        batch, or with ``batch_pass=False`` one per image (its rows, its own layout)."""
        if self.options.batch_pass:
            return [(slice(None), None, layout)]
        image = layout.row_image.tolist() if layout.row_image is not None else list(range(layout.rows))
        count = max(image) + 1
        if count == 1:
            return [(slice(None), None, layout)]
        groups = []
        for i in range(count):
            rows = [r for r, im in enumerate(image) if im == i]
            groups.append((slice(i, i + 1), rows, select_rows(layout, rows)))
        return groups

    def _below(self, terms: Any, valid: torch.Tensor) -> torch.Tensor | None:
        """``[I]`` bool: images whose mean pair overlap is under ``skip_below`` (None when the skip is off)."""
        k = valid.shape[1]
        if self.options.skip_below <= 0 or k < 2 or self.layout is not None:
            return None
        pairs = concept_pairs(k)
        m_idx = torch.tensor([p[0] for p in pairs], device=valid.device)
        n_idx = torch.tensor([p[1] for p in pairs], device=valid.device)
        pair_ok = (valid[:, m_idx] & valid[:, n_idx]).to(terms.pairs.device)
        count = pair_ok.sum(1)
        mean = (terms.pairs.detach() * pair_ok).sum(1) / count.clamp_min(1)
        return (count > 0) & (mean < self.options.skip_below)

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
        scale = self.options.loss_scale
        with torch.inference_mode(False):
            # what the loss saves for its backward pass must not be an inference tensor (Forge builds the
            # layout and the previous step's masks under inference mode)
            layout = dataclasses.replace(layout, **{f.name: _plain(getattr(layout, f.name))
                                                    for f in dataclasses.fields(layout)
                                                    if isinstance(getattr(layout, f.name), torch.Tensor)})
            self._prev_masks, self._prev_ok = _plain(self._prev_masks), _plain(self._prev_ok)
        groups = self._groups(layout)
        image_valid = layout.image_valid
        with contextlib.ExitStack() as stack:
            if self.options.freeze_weights:
                stack.enter_context(frozen(self.capture.unet))
            if self.options.checkpoint_blocks:
                stack.enter_context(checkpointed_blocks(self.capture.unet, self.capture.layers))
            for it in range(self.schedule.iterations):
                if self.should_stop():
                    self.interrupted = True
                    record.skipped.append("interrupted")
                    break
                grad = None
                constant = False
                firsts: list[tuple[torch.Tensor, torch.Tensor, Any, torch.Tensor | None]] = []
                key = None
                use_prev = False
                with grad_mode():
                    # a normal tensor even when x is an inference tensor (Forge samples in inference mode)
                    z = x.detach().clone().requires_grad_(True)
                    for images, rows, group_layout in groups:
                        tf = time.perf_counter()
                        rec = self._record(z, sigma, group_layout, denoise_fn, rows)
                        self._sync(x)
                        tl = time.perf_counter()
                        record.forward_seconds += tl - tf
                        record.passes += 1
                        maps, valid = self._rec_maps(rec, group_layout, x.device)
                        del rec
                        if key is None:
                            key = self._masks_key(layout, maps, image_valid)
                            use_prev = self._prev_key == key
                        prev_masks = self._prev_masks[images] if use_prev else None
                        prev_ok = self._prev_ok[images] if use_prev else None
                        weights = share = None
                        if self.layout is not None:
                            regions, has = self.layout.grids(layout.labels, maps.shape[-2:], maps.device)
                            prev_masks, prev_ok = with_regions(prev_masks, prev_ok, regions, has, maps.shape)
                            weights = torch.where(has, float(getattr(p, "layout_weight", p.ret_weight)),
                                                  float(p.ret_weight))
                            share = has if self.options.layout_loss == "share" else None
                        terms = astar_loss(maps, valid, prev_masks, prev_ok, p.seg_weight, p.ret_weight, weights,
                                           share)
                        below = self._below(terms, valid)
                        if it == 0:
                            firsts.append((maps.detach(), valid, _detached(terms), below))
                        skip = below is not None and bool(below.all())
                        loss = None
                        if not skip:
                            weights = None if below is None else (~below).to(terms.total)
                            loss = (terms.total if weights is None else terms.total * weights).sum()
                        del maps, terms
                        self._sync(x)
                        record.loss_seconds += time.perf_counter() - tl
                        if loss is None:
                            continue
                        if not loss.requires_grad:
                            constant = True
                            continue
                        tb = time.perf_counter()
                        (g,) = torch.autograd.grad(loss * scale, z)
                        self._sync(x)
                        record.backward_seconds += time.perf_counter() - tb
                        record.gradients += 1
                        grad = g if grad is None else grad + g
                if it == 0:
                    self._record_first(record, firsts, layout, use_prev)
                if grad is None:
                    if constant:
                        record.skipped.append("the loss does not depend on the latent")
                    break  # nothing moves (every image under skip_below, or a constant loss)
                grad = grad.float() / scale
                if not torch.isfinite(grad).all():
                    record.skipped.append(f"non-finite gradient at iteration {it}")
                    continue
                record.grad_norm = float(grad.norm())
                # back in the caller's mode: an inference tensor can be written in place only in inference mode
                with torch.no_grad():
                    delta = grad * (record.step_size * factor)
                    x.copy_((x.float() - delta).to(x.dtype))
                record.updates += 1
        record.seconds = time.perf_counter() - t0
        self.records.append(record)
        return record

    def _record_first(self, record: StepRecord, firsts: list, layout: ColumnLayout, use_prev: bool) -> None:
        """Fill the step's diagnostics from the first iteration's passes and roll the retention masks."""
        if len(firsts) == 1:
            maps, valid, terms, below = firsts[0]
        else:
            maps = torch.cat([f[0] for f in firsts])
            valid = torch.cat([f[1] for f in firsts])
            terms = LossTerms(*(torch.cat([getattr(f[2], fld.name) for f in firsts])
                                for fld in dataclasses.fields(LossTerms)))
            below = None if firsts[0][3] is None else torch.cat([f[3] for f in firsts])
        if below is not None:
            record.below = [bool(b) for b in below.cpu()]
        record.seg_loss = float(terms.seg.detach().mean())
        record.ret_loss = float(terms.ret.detach().mean())
        record.loss = float(terms.total.detach().mean())
        record.overlap = _rows(terms.pairs)
        record.pair_valid = _pair_valid(valid)
        with torch.inference_mode(False):  # normal tensors: the next iteration's or step's loss saves them
            masks, ok = retention_masks(maps, self.params.mask_threshold, self.options.mask_method)
            ok = ok & _plain(valid).to(ok.device)
        ret = terms.retention.detach().float().cpu()
        record.fit = self._fit(layout.labels, maps, valid)
        # where Eq. 3 had a mask: the previous step's automatic one, or (with a layout) the concept's region
        had = (self._prev_ok.cpu() if use_prev else torch.zeros(ret.shape, dtype=torch.bool))
        if self.layout is not None:
            had = had | self.layout.grids(layout.labels, maps.shape[-2:])[1][None]
        had = had & valid.cpu()
        record.retention = [[float(ret[r, m]) if bool(had[r, m]) else None
                             for m in range(ret.shape[1])] for r in range(ret.shape[0])]
        if use_prev:
            prev_ok = (self._prev_ok & valid.to(ok.device)).cpu() & ok.cpu()
            iou = binary_iou(masks, self._prev_masks).cpu()
            record.retention_iou = [[float(iou[r, m]) if bool(prev_ok[r, m]) else None
                                     for m in range(iou.shape[1])] for r in range(iou.shape[0])]
        else:
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
                          maps=maps.float().cpu() if self.options.keep_maps else None,
                          fit=self._fit(layout.labels, maps, valid))
        self.measures.append(m)
        return m

    def _fit(self, labels: tuple[str, ...], maps: torch.Tensor, valid: torch.Tensor) -> list[list[float | None]]:
        """Per image and concept, the share of the concept's attention inside its region (``regions.fit``);
        ``None`` for a concept without a region or not in the image; empty without a layout."""
        if self.layout is None:
            return []
        regions, has = self.layout.grids(labels, maps.shape[-2:], maps.device)
        share = fit(maps, regions).cpu()
        ok = (has[None].cpu() & valid.cpu())
        return [[float(share[r, m]) if bool(ok[r, m]) else None for m in range(share.shape[1])]
                for r in range(share.shape[0])]

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
