"""Sampling the toy model with k-diffusion, classifier-free guidance and (optionally) A-STAR.

The path mirrors the WebUI's: k-diffusion's ``CompVisVDenoiser`` wraps the (v-prediction) model, a CFG denoiser
(:class:`GuidedDenoiser`, the counterpart of the WebUI's ``CFGDenoiser``) receives the sampler's own
latent ``x`` and ``sigma`` at every call, and, at the first call of each step, hands them to the
engine's :class:`~astar_ext.controller.AStarController`, which corrects ``x`` in place with a
conditional-only pass (``GuidedDenoiser.cond_pass``) before the guided prediction is computed from the
corrected latent. Concepts are matched with the engine's :func:`~astar_ext.tokens.match_concepts` on
WebUI-style 77-token chunks.

Every run also *measures* (no gradient, no change to the latent) the concept maps at steps
``0 .. measure_steps - 1`` on the latent the sampler steps from (after any correction): their Eq. 2
overlap and the step-to-step IoU of their binary masks, for plain and A-STAR runs alike.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..capture import AttentionCapture, select_layers
from ..controller import AStarController, EngineOptions
from ..losses import binary_iou, retention_masks
from ..maps import ColumnLayout
from ..schedule import Schedule
from ..tokens import PromptTokens, match_concepts, parse_concepts
from .model import ToyLDM, denoiser

DEFAULT_STEPS = 20
DEFAULT_CFG = 3.0
MEASURE_THRESHOLD = 0.5


class GuidedDenoiser(nn.Module):
    """CFG denoiser ``forward(x, sigma) -> denoised``; calls ``before(x, sigma, step)`` once per step.

    ``x`` ``[B, 4, 32, 32]``, ``sigma`` ``[B]``; ``cond``/``uncond`` ``[B, 77, D]``. The step of a call is
    the index of the nearest sigma of ``sigmas`` (the sampler's schedule), so a second call within a
    step (second-order samplers) is not corrected twice.
    """

    def __init__(self, model: ToyLDM, cond: torch.Tensor, uncond: torch.Tensor, cfg_scale: float,
                 sigmas: torch.Tensor, before: Callable[[torch.Tensor, torch.Tensor, int], None] | None = None):
        super().__init__()
        self.inner_model = denoiser(model)
        self.cond, self.uncond, self.cfg_scale = cond, uncond, cfg_scale
        self.sigmas = sigmas
        self.before = before
        self.seen: set[int] = set()

    def cond_pass(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The conditional-only prediction (A-STAR's loss pass)."""
        return self.inner_model(x, sigma, cond={"c_crossattn": [self.cond]})

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        step = int((self.sigmas - sigma.flatten()[0].to(self.sigmas)).abs().argmin())
        if self.before is not None and step not in self.seen:
            self.seen.add(step)
            self.before(x, sigma, step)
        if self.cfg_scale == 1.0:
            return self.cond_pass(x, sigma)
        both = self.inner_model(torch.cat([x, x]), torch.cat([sigma, sigma]),
                                cond={"c_crossattn": [torch.cat([self.cond, self.uncond])]})
        c, u = both.chunk(2)
        return u + (c - u) * self.cfg_scale


@dataclasses.dataclass
class Run:
    """One batch of generations.

    Attributes:
        images: ``[B, 3, 256, 256]`` in [0, 1] (decoded by the VAE), or with ``decode=False`` the scene grid
            ``[B, 3, 32, 32]`` (:meth:`~astar_ext.toy.model.ToyLDM.to_grid`).
        labels: the concept labels of each row.
        overlap: ``[S, B]`` Eq. 2 (summed over pairs) of the measured maps at steps ``0..S-1``.
        mask_iou: ``[S-1, B]`` mean over concepts of the IoU of each concept's binary mask between
            consecutive measured steps (the retention that Eq. 3 asks for).
        maps: ``[S, B, K, h, w]`` the measured maps (8x8 at the model's capture level 2, 16x16 at level 1).
        latents: ``[B, 4, 32, 32]`` the final (scaled) latents.
        controller: the A-STAR controller (``None`` for a plain run); its ``records`` hold the
            per-step diagnostics of the correction.
        seconds: wall time of the sampling.
    """

    images: torch.Tensor
    labels: list[tuple[str, ...]]
    overlap: torch.Tensor
    mask_iou: torch.Tensor
    maps: torch.Tensor
    controller: AStarController | None
    seconds: float
    latents: torch.Tensor | None = None


def match_rows(model: ToyLDM, prompts: Sequence[str], concepts: Sequence[str]) -> list[PromptTokens]:
    """``concepts[i]`` (e.g. ``"red circle, blue square"``) matched in ``prompts[i]`` by the engine.

    Raises ``ValueError`` when a concept is not in its prompt."""
    tok = model.tokenizer
    rows = []
    for prompt, spec in zip(prompts, concepts):
        found = match_concepts(parse_concepts(spec), tok.tokenize_line(prompt), tok.tokenize, tok.id_end, tok.decode)
        if found.missing:
            raise ValueError(f"concepts {', '.join(found.missing)} are not in {prompt!r}")
        rows.append(found)
    return rows


def initial_noise(seeds: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
    """One standard-normal latent per seed, ``[B, *shape]`` (row ``i`` depends only on ``seeds[i]``)."""
    return torch.cat([torch.randn(1, *shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.no_grad()
def generate(
    model: ToyLDM,
    prompts: Sequence[str],
    seeds: Sequence[int],
    concepts: Sequence[str],
    params: Any | None = None,
    steps: int = DEFAULT_STEPS,
    cfg_scale: float = DEFAULT_CFG,
    measure_steps: int | None = None,
    options: EngineOptions = EngineOptions(),
    decode: bool = True,
    layers: str = "all",
) -> Run:
    """Generate ``prompts[i]`` from ``seeds[i]`` with k-diffusion's Euler sampler, plain (``params=None``)
    or with A-STAR (an ``AStarParams``; its ``enabled`` field is not consulted).

    ``measure_steps`` (default ``steps // 2 + 1``): how many steps, from the first, are measured.
    ``decode=False``: ``images`` is the 32x32 scene grid of the latents (what the detector reads), without
    running the VAE's decoder (:meth:`~astar_ext.toy.model.ToyLDM.to_grid`). ``layers``: which
    cross-attention layers give the maps (the WebUI's ``astar_layers`` setting: ``all``, ``down``, ``up``, ...).
    """
    import k_diffusion as K

    t0 = time.perf_counter()
    device = model.alphas_cumprod.device
    rows = match_rows(model, prompts, concepts)
    layout = ColumnLayout.build(rows).to(device)
    cond = model.encode_prompts(prompts)
    uncond = model.encode_prompts([""] * len(prompts))
    den_sigmas = denoiser(model).get_sigmas(steps).to(device)
    measure_steps = steps // 2 + 1 if measure_steps is None else measure_steps

    schedule = Schedule(steps, params.window, params.scale, params.iterations) if params is not None \
        else Schedule(steps, 0.0)
    run_params = params if params is not None else _plain_params()
    level = model.config.capture_level
    chosen = None if layers == "all" else select_layers(model.diffusion_model, level, layers)
    ctrl = AStarController(AttentionCapture(model.diffusion_model, level=level, layers=chosen), schedule,
                           run_params, options=dataclasses.replace(options, keep_maps=True))
    measured: list[torch.Tensor] = []

    def before(x: torch.Tensor, sigma: torch.Tensor, step: int) -> None:
        if params is not None:
            ctrl.step(x, sigma, step, layout, den.cond_pass)
        if step < measure_steps:
            measured.append(ctrl.measure(x, sigma, step, layout, den.cond_pass).maps)

    den = GuidedDenoiser(model, cond, uncond, cfg_scale, den_sigmas[:-1], before)
    x = initial_noise(seeds, (model.config.latent_channels, model.config.latent_size, model.config.latent_size))
    x = x.to(device) * den_sigmas[0]
    with ctrl:
        x = K.sampling.sample_euler(den, x, den_sigmas, disable=True)
    maps = torch.stack(measured)  # [S, B, K, h, w]
    return Run(
        images=((model.to_image(x) if decode else model.to_grid(x)) + 1) / 2,
        labels=[tuple(c.label for c in row.concepts) for row in rows],
        overlap=torch.stack([torch.tensor(m.overlap).sum(1) for m in ctrl.measures]),
        mask_iou=_mask_iou(maps, layout.valid),
        maps=maps,
        controller=ctrl if params is not None else None,
        seconds=time.perf_counter() - t0,
        latents=x,
    )


def _plain_params() -> Any:
    from ..params import DEFAULTS

    return DEFAULTS


def _mask_iou(maps: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[S-1, B]``: mean over valid concepts of the IoU of consecutive binary masks of ``maps`` ``[S, B, K, h, w]``
    (masks at the engine's default threshold, whatever the run's, so that runs compare)."""
    masks = torch.stack([retention_masks(m, MEASURE_THRESHOLD)[0] for m in maps])
    iou = binary_iou(masks[1:], masks[:-1])  # [S-1, B, K]
    v = valid.to(iou.device).float()
    return (iou * v).sum(-1) / v.sum(-1).clamp_min(1)
