"""AStarController on the tiny ldm model with the real k-diffusion samplers."""

from __future__ import annotations

import math

import k_diffusion as K
import pytest
import torch
from torch import nn

from astar_ext import params as P
from astar_ext.capture import AttentionCapture
from astar_ext.controller import AStarController, EngineOptions
from astar_ext.maps import ColumnLayout
from astar_ext.schedule import Schedule
from astar_ext.tokens import match_concepts, parse_concepts
from tests.conftest import concept_batch, hook_count, prompt_ids


class CondDenoiser(nn.Module):
    """Conditional-only denoiser module: ``forward(x, sigma)`` -> denoised, like a CFG denoiser
    with guidance 1 (the sampler calls it as ``model(x, sigma, **extra_args)``)."""

    def __init__(self, model, context):
        super().__init__()
        self.inner_model = K.external.CompVisDenoiser(model)
        self.context = context

    def forward(self, x, sigma):
        return self.cond_pass(x, sigma)

    def cond_pass(self, x, sigma):
        """The loss pass: the inner model directly (not ``forward``, which carries the pre-hook)."""
        return self.inner_model(x, sigma, cond={"c_crossattn": [self.context.expand(x.shape[0], -1, -1)]})


@pytest.fixture()
def setup(tiny, clip_wrapper):
    ctx, layout = concept_batch(tiny, clip_wrapper)
    den = CondDenoiser(tiny, ctx)
    sigmas = K.sampling.get_sigmas_karras(8, 0.03, 14.6)
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(3)) * sigmas[0]
    return den, layout, sigmas, x


def make(tiny, steps=8, window=0.5, params=P.DEFAULTS, **kw):
    return AStarController(AttentionCapture(tiny.diffusion_model), Schedule(steps, window, params.scale,
                                                                            params.iterations), params, **kw)


SD1_LAYERS = [  # the tiny SD 1.x UNet's cross-attention layers at image/32 (test_capture checks the names)
    "input_blocks.7.1.transformer_blocks.0.attn2",
    "input_blocks.8.1.transformer_blocks.0.attn2",
    "output_blocks.3.1.transformer_blocks.0.attn2",
    "output_blocks.4.1.transformer_blocks.0.attn2",
    "output_blocks.5.1.transformer_blocks.0.attn2",
]


def reference_segregation(unet, u, t, ctx, cat=2, dog=5):
    """Eq. 2 for "a cat and a dog" re-derived from the papers, sharing no code with the engine.

    Attend-and-Excite's maps: at each image/32 ``attn2`` layer softmax(q k^T * scale) from the layer's own
    projections, averaged over heads and layers; SOT (column 0) and column 76 dropped (SD 1.x rule), x100 softmax over
    the other 75 columns; the concept's column as its map (8x8); the 3x3 Gaussian with 1-D weights
    [e^-1, 1, e^-1] / (1 + 2 e^-1) and reflect padding. A-STAR's Eq. 2: sum min(A, B) / sum (A + B).
    """
    import einops
    import torch.nn.functional as F

    seen = []
    modules = dict(unet.named_modules())

    def spy(module, args, kwargs, out):
        seen.append((module, args[0], kwargs["context"]))

    handles = [modules[n].register_forward_hook(spy, with_kwargs=True) for n in SD1_LAYERS]
    try:
        unet(u, t, context=ctx)
    finally:
        for h in handles:
            h.remove()
    per_layer = []
    for m, xin, c in seen:
        q = einops.rearrange(m.to_q(xin), "b n (h d) -> b h n d", h=m.heads)
        k = einops.rearrange(m.to_k(c), "b n (h d) -> b h n d", h=m.heads)
        per_layer.append((q @ k.transpose(-1, -2) * m.scale).softmax(-1).mean(1))  # [1, 64, 77]
    p = torch.stack(per_layer).mean(0)[0]  # [64, 77]
    p = (100 * p[:, 1:76]).softmax(-1)  # columns 1..75
    e = math.exp(-1.0)
    w = torch.tensor([e, 1.0, e]) / (1 + 2 * e)
    kernel = torch.outer(w, w)[None, None]

    def concept(col):
        m = p[:, col - 1].reshape(1, 1, 8, 8)
        return F.conv2d(F.pad(m, (1, 1, 1, 1), mode="reflect"), kernel)[0, 0]

    a, b = concept(cat), concept(dog)
    return torch.minimum(a, b).sum() / (a + b).sum()


def test_update_equals_an_independent_derivation(tiny, setup):
    """The first corrected step moves x by A&E's step on the UNet's input u = c_in x: du = -alpha grad_u L, alpha =
    20 * sqrt(1) at step 0, so dx = du / c_in, with c_in from k-diffusion's own scalings and L re-derived above."""
    den, layout, sigmas, x = setup
    ctrl = make(tiny)
    x0 = x.clone()
    with ctrl:
        rec = ctrl.step(x, sigmas[:1], 0, layout, den)
    _, c_in = den.inner_model.get_scalings(sigmas[:1])
    u = (x0 * c_in).requires_grad_(True)
    t = den.inner_model.sigma_to_t(sigmas[:1])
    with torch.enable_grad():
        loss = reference_segregation(tiny.diffusion_model, u, t, den.context)
        (grad_u,) = torch.autograd.grad(loss, u)
    expected = x0 - 20.0 * grad_u / c_in
    assert rec.seg_loss == pytest.approx(loss.item(), rel=1e-4)
    assert rec.step_size == 20.0
    assert torch.allclose(x, expected, rtol=1e-4, atol=1e-6)
    assert (x - x0).abs().max() > 100 * (expected - x).abs().max()  # the update is large against the tolerance
    assert hook_count(tiny) == 0


def test_the_step_size_follows_the_ramp_and_the_sigma(tiny, setup):
    """At step 3 of 8 the step size is 20 * sqrt(1 - 0.5 * 3/7) = 17.728 (worked out by hand) and the factor
    1 + sigma^2 of that step's sigma."""
    den, layout, sigmas, x = setup
    ctrl = make(tiny)
    with ctrl:
        rec = ctrl.step(x, sigmas[3:4], 3, layout, den)
    assert rec.step_size == pytest.approx(17.728, abs=1e-3)
    s = float(sigmas[3])
    assert rec.factor == pytest.approx(1 + s * s)


@pytest.mark.parametrize("tau", [0.7, 0.3])
def test_retention_holds_each_map_to_the_previous_steps_thresholded_mask(tiny, setup, tau):
    """Eq. 3 at step 1 against its definition: B = the step-0 map (before its update), min-max normalised, >= tau;
    term = 1 - sum min(A, B) / sum (A + B) with A the step-1 map. The masks' IoU between the steps likewise."""
    den, layout, sigmas, x = setup
    params = P.replace(P.DEFAULTS, mask_threshold=tau)
    ctrl = make(tiny, params=params, options=EngineOptions(keep_maps=True))
    with ctrl:
        r0 = ctrl.step(x, sigmas[0:1], 0, layout, den)
        r1 = ctrl.step(x, sigmas[1:2], 1, layout, den)
        r2 = ctrl.step(x, sigmas[2:3], 2, layout, den)

    def mask(m):
        return ((m - m.min()) / (m.max() - m.min()) >= tau).float()

    for prev, cur in ((r0, r1), (r1, r2)):
        for k in range(2):
            a, b = cur.maps[0, k], mask(prev.maps[0, k])
            expected = 1 - torch.minimum(a, b).sum() / (a + b).sum()
            assert cur.retention[0][k] == pytest.approx(expected.item(), rel=1e-5)
    b1, b2 = mask(r1.maps[0, 0]).bool(), mask(r2.maps[0, 0]).bool()
    iou = (b1 & b2).sum().item() / (b1 | b2).sum().item()
    assert r2.retention_iou[0][0] == pytest.approx(iou)


def test_in_place_correction_at_step_k_equals_restarting_euler_from_it(tiny, setup):
    den, layout, sigmas, x = setup
    k = 2
    ctrl = make(tiny, window=1.0)
    state = {"call": 0}
    saved = {}

    def pre_hook(module, args, kwargs):
        xk, sigma = args
        if state["call"] == k:
            ctrl.step(xk, sigma, k, layout, den.cond_pass)
            saved["x"] = xk.clone()
        state["call"] += 1

    handle = den.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        with ctrl, torch.no_grad():
            guided = K.sampling.sample_euler(den, x.clone(), sigmas, disable=True)
    finally:
        handle.remove()
    with torch.no_grad():
        restarted = K.sampling.sample_euler(den, saved["x"].clone(), sigmas[k:], disable=True)
        plain = K.sampling.sample_euler(den, x.clone(), sigmas, disable=True)
    assert torch.equal(guided, restarted)
    assert not torch.equal(guided, plain)
    assert len(ctrl.records) == 1 and ctrl.records[0].updates == 1


def test_window_retention_memory_and_diagnostics(tiny, setup):
    den, layout, sigmas, x = setup
    ctrl = make(tiny, steps=8, window=0.5)
    with ctrl, torch.no_grad():
        for i in range(8):
            before = x.clone()
            rec = ctrl.step(x, sigmas[i:i + 1], i, layout, den)
            if i >= 4:
                assert rec is None and torch.equal(x, before)
            x = x + (x - den(x, sigmas[i:i + 1])) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    recs = ctrl.records
    assert [r.step for r in recs] == [0, 1, 2, 3]
    assert recs[0].ret_loss == 0.0 and recs[0].retention == [[None, None]]
    assert recs[0].retention_iou == [[None, None]]
    for r in recs:
        assert len(r.overlap) == 1 and len(r.overlap[0]) == 1 and 0.0 <= r.overlap[0][0] <= 0.5
        assert r.seg_loss == pytest.approx(r.overlap[0][0])
        assert r.passes == 1 and r.updates == 1 and r.seconds > 0 and r.grad_norm > 0
        assert r.step_size == pytest.approx(ctrl.schedule.step_size(r.step))
    for r in recs[1:]:
        assert all(0.5 <= v <= 1.0 for v in r.retention[0])
        assert r.ret_loss == pytest.approx(sum(r.retention[0]))
        assert all(0.0 <= v <= 1.0 for v in r.retention_iou[0])
    assert ctrl.pairs == [("cat", "dog")]
    assert ctrl.passes == 4
    assert hook_count(tiny) == 0


def test_iterations_and_interruption(tiny, setup):
    den, layout, sigmas, x = setup
    params = P.replace(P.DEFAULTS, iterations=3)
    ctrl = make(tiny, params=params)
    with ctrl:
        rec = ctrl.step(x, sigmas[:1], 0, layout, den)
    assert rec.passes == 3 and rec.updates == 3
    polls = []

    def stop():
        polls.append(True)
        return len(polls) > 1  # stop before the second iteration

    ctrl = make(tiny, params=params, should_stop=stop)
    x2 = x.clone()
    with ctrl:
        rec = ctrl.step(x2, sigmas[:1], 0, layout, den)
    assert rec.passes == 1 and rec.updates == 1 and "interrupted" in rec.skipped
    assert ctrl.interrupted


def test_non_finite_gradient_skips_the_update(tiny, setup):
    den, layout, sigmas, x = setup
    ctrl = make(tiny)
    before = x.clone()

    def poisoned(z, sigma):
        return den(z * float("nan"), sigma)

    with ctrl:
        rec = ctrl.step(x, sigmas[:1], 0, layout, poisoned)
    assert torch.equal(x, before)
    assert rec.updates == 0 and rec.passes == 1
    assert rec.skipped == ["non-finite gradient at iteration 0"]


def test_fp16_pass_with_loss_scaling(tiny, setup):
    """The UNet under fp16 autocast (as in the WebUI): maps are fp32, the update is finite; an
    overflowing loss scale is detected and the update skipped."""
    den, layout, sigmas, x = setup
    ctrl = make(tiny)

    def fp16(z, sigma):
        with torch.autocast("cpu", dtype=torch.float16):
            return den(z, sigma)

    before = x.clone()
    with ctrl:
        rec = ctrl.step(x, sigmas[:1], 0, layout, fp16)
    assert rec.updates == 1 and torch.isfinite(x).all() and not torch.equal(x, before)
    ctrl = make(tiny, options=EngineOptions(loss_scale=2.0 ** 100))
    before = x.clone()
    with ctrl:
        rec = ctrl.step(x, sigmas[:1], 0, layout, fp16)
    assert rec.updates == 0 and rec.skipped and torch.equal(x, before)


def test_timestep_space_uses_factor_one(tiny, setup):
    den, layout, sigmas, x = setup
    ctrl = make(tiny, sigma_space=False)
    with ctrl:
        rec = ctrl.step(x, sigmas[:1], 0, layout, den)
    assert rec.factor == 1.0


def test_measure_changes_nothing(tiny, setup):
    den, layout, sigmas, x = setup
    ctrl = make(tiny)
    before = x.clone()
    with ctrl:
        m = ctrl.measure(x, sigmas[:1], 0, layout, den)
    assert torch.equal(x, before) and 0 <= m.seg_loss <= 0.5 and m.overlap[0][0] == pytest.approx(m.seg_loss)


def test_rows_without_concepts_are_left_alone(tiny, clip_wrapper):
    """A batch of two prompts: the image whose prompt lacks the concepts is not moved."""
    ids_a, chunks_a = prompt_ids(clip_wrapper, "a cat and a dog")
    ids_b, chunks_b = prompt_ids(clip_wrapper, "a house by the sea")
    ctx = tiny.encode(torch.cat([ids_a, ids_b]))
    items = parse_concepts("cat, dog")
    rows = [match_concepts(items, c, clip_wrapper.tokenize, clip_wrapper.id_end) for c in (chunks_a, chunks_b)]
    layout = ColumnLayout.build(rows)
    den = K.external.CompVisDenoiser(tiny)
    x = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(0)) * 14.6
    before = x.clone()
    ctrl = make(tiny)
    with ctrl:
        rec = ctrl.step(x, torch.tensor([14.6, 14.6]), 0, layout,
                        lambda z, s: den(z, s, cond={"c_crossattn": [ctx]}))
    assert not torch.equal(x[0], before[0])
    assert torch.equal(x[1], before[1])
    assert rec.overlap[1] == [0.0]


def test_hooks_are_removed_when_the_denoiser_raises(tiny, setup):
    den, layout, sigmas, x = setup

    def broken(z, sigma):
        den(z, sigma)
        raise RuntimeError("denoiser failed")

    ctrl = make(tiny, options=EngineOptions(early_exit=False))
    with pytest.raises(RuntimeError, match="denoiser failed"), ctrl:
        ctrl.step(x, sigmas[:1], 0, layout, broken)
    assert hook_count(tiny) == 0
    assert all(p.requires_grad for p in tiny.parameters())
    assert ctrl.records == []  # the failed step left no record
