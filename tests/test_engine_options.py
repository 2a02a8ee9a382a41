"""The speed/memory options of the engine give the same result as the unoptimised path.

Each optimisation of :class:`~astar_ext.controller.EngineOptions` (frozen weights, early exit,
columns-only capture, recompute-softmax probabilities, one pass for the batch) must change the
cost only: the corrected latent is compared with the one the unoptimised setting produces, on the
tiny ldm model. The adaptive skip changes the result by design; its tests check which images move.
"""

from __future__ import annotations

import dataclasses

import k_diffusion as K
import pytest
import torch

from astar_ext.capture import AttentionCapture, ColumnProbabilities, head_mean_probabilities
from astar_ext.controller import AStarController, EngineOptions
from astar_ext.maps import ColumnLayout
from astar_ext.params import DEFAULTS
from astar_ext.schedule import Schedule
from astar_ext.tokens import match_concepts, parse_concepts
from tests.conftest import hook_count, prompt_ids

# --- ColumnProbabilities: the hand-written backward against autograd -------------------------------------


def _qk(b=2, n=6, t=5, heads=2, d=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, n, heads * d, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(b, t, heads * d, generator=gen, dtype=torch.float64, requires_grad=True)
    return q, k


@pytest.mark.parametrize("columns", [None, [[1, 3], [0, 4]], [[2, 2, 4], [1, 1, 1]]],
                         ids=["all columns", "two columns", "repeated columns"])
def test_column_probabilities_backward_passes_gradcheck(columns):
    q, k = _qk()
    cols = None if columns is None else torch.tensor(columns)
    assert torch.autograd.gradcheck(lambda a, b: ColumnProbabilities.apply(a, b, 2, 0.7, cols), (q, k))


def test_column_probabilities_equal_the_plain_expression_and_its_autograd():
    q, k = _qk(b=3, n=16, t=9, heads=4, d=5, seed=1)
    cols = torch.tensor([[1, 2], [3, 8], [0, 0]])
    weight = torch.randn(3, 16, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    plain = head_mean_probabilities(q, k, 4, 0.5, cols)
    mine = ColumnProbabilities.apply(q, k, 4, 0.5, cols)
    assert torch.equal(plain, mine)
    g_plain = torch.autograd.grad((plain * weight).sum(), (q, k))
    g_mine = torch.autograd.grad((mine * weight).sum(), (q, k))
    for a, b in zip(g_plain, g_mine):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    # q and k of a lower precision come back in their own dtype
    qh, kh = q.detach().float().requires_grad_(), k.detach().float().requires_grad_()
    dq, dk = torch.autograd.grad(ColumnProbabilities.apply(qh, kh, 4, 0.5, cols).sum(), (qh, kh))
    assert dq.dtype == torch.float32 and dk.dtype == torch.float32


# --- the controller's options on the tiny model -----------------------------------------------------------


@pytest.fixture()
def batch2(tiny, clip_wrapper):
    """Two images of the same prompt with different noise: ``(denoise_fn, layout, sigma, x)``.

    ``denoise_fn(x, sigma, rows=None)`` runs the conditional pass of all rows, or of ``rows`` only
    (what the per-image passes need)."""
    ids, chunks = prompt_ids(clip_wrapper, "a cat and a dog")
    ctx = tiny.encode(ids).expand(2, -1, -1)
    pt = match_concepts(parse_concepts("cat, dog"), chunks, clip_wrapper.tokenize, clip_wrapper.id_end)
    layout = ColumnLayout.build([pt, pt])
    den = K.external.CompVisDenoiser(tiny)
    sigma = torch.tensor([14.6, 14.6])

    def denoise(z, s, rows=None):
        idx = torch.arange(2) if rows is None else torch.tensor(rows)
        return den(z[idx], s[idx], cond={"c_crossattn": [ctx[idx]]})

    x = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(5)) * 14.6
    return denoise, layout, sigma, x


def _step(tiny, denoise, layout, sigma, x, steps=1, **options):
    """``steps`` optimised steps from ``x`` (the same sigma each time); the corrected latent and the records."""
    ctrl = AStarController(AttentionCapture(tiny.diffusion_model), Schedule(8, 0.5, DEFAULTS.scale, 1), DEFAULTS,
                           options=EngineOptions(**options))
    x = x.clone()
    hooks = hook_count(tiny)
    with ctrl:
        for i in range(steps):
            ctrl.step(x, sigma, i, layout, denoise)
    assert hook_count(tiny) == hooks
    return x, ctrl.records


def _flat(rows):
    return [v for row in rows for v in row]


UNOPTIMISED = dict(early_exit=False, freeze_weights=False, all_columns=True, recompute_probs=False, batch_pass=False)


@pytest.mark.parametrize("option", ["early_exit", "freeze_weights", "all_columns", "recompute_probs", "batch_pass",
                                    "checkpoint_blocks"])
def test_each_optimisation_gives_the_unoptimised_update(tiny, batch2, option):
    """Each option flipped from the default: the same corrected latent and the same diagnostics."""
    denoise, layout, sigma, x = batch2
    default = EngineOptions()
    flipped = {option: not getattr(default, option)}
    x_def, rec_def = _step(tiny, denoise, layout, sigma, x)
    x_flip, rec_flip = _step(tiny, denoise, layout, sigma, x, **flipped)
    moved = (x_def - x).abs().max()
    assert moved > 1e-3  # the update is not trivially zero
    assert torch.allclose(x_flip, x_def, rtol=0, atol=1e-4 * float(moved)), float((x_flip - x_def).abs().max())
    a, b = rec_def[0], rec_flip[0]
    assert _flat(a.overlap) == pytest.approx(_flat(b.overlap), rel=1e-5, abs=1e-7)
    assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-4)
    assert b.updates == 1


def test_all_optimisations_off_against_all_on_over_two_steps(tiny, batch2):
    """Every optimisation off at once, two steps (retention masks rolled over): the same latents."""
    denoise, layout, sigma, x = batch2
    x_on, rec_on = _step(tiny, denoise, layout, sigma, x, steps=2, recompute_probs=True)
    x_off, rec_off = _step(tiny, denoise, layout, sigma, x, steps=2, **UNOPTIMISED)
    moved = (x_on - x).abs().max()
    assert torch.allclose(x_on, x_off, rtol=0, atol=1e-4 * float(moved))
    assert rec_on[1].retention[0][0] is not None
    assert _flat(rec_on[1].retention) == pytest.approx(_flat(rec_off[1].retention), rel=1e-5)
    assert [r.passes for r in rec_on] == [1, 1] and [r.passes for r in rec_off] == [2, 2]
    assert [r.gradients for r in rec_on] == [1, 1] and [r.gradients for r in rec_off] == [2, 2]


def test_early_exit_stops_the_pass_before_the_output(tiny, batch2):
    """With the early exit the UNet's output layer does not run in the loss pass; without it, it does."""
    denoise, layout, sigma, x = batch2
    calls = []
    handle = tiny.diffusion_model.out.register_forward_hook(lambda *a: calls.append(1))
    try:
        _step(tiny, denoise, layout, sigma, x)
        assert calls == []
        _step(tiny, denoise, layout, sigma, x, early_exit=False)
        assert calls == [1]
    finally:
        handle.remove()


def test_frozen_weights_get_no_gradient_and_are_restored(tiny, batch2):
    denoise, layout, sigma, x = batch2
    seen = []
    handle = tiny.diffusion_model.register_forward_pre_hook(
        lambda m, a: seen.append(any(p.requires_grad for p in m.parameters())))
    try:
        _step(tiny, denoise, layout, sigma, x)
        _step(tiny, denoise, layout, sigma, x, freeze_weights=False)
    finally:
        handle.remove()
    assert seen == [False, True]
    assert all(p.requires_grad for p in tiny.parameters())
    assert all(p.grad is None for p in tiny.parameters())


def test_checkpointed_blocks_are_the_uncaptured_ones_and_are_restored(tiny, batch2):
    from astar_ext.checkpointing import blocks_without, checkpointed_blocks

    unet = tiny.diffusion_model
    layers = AttentionCapture(unet).layers  # input_blocks.7/8, output_blocks.3/4/5 (level 2)
    names = [n for n, _ in blocks_without(unet, layers)]
    assert names == [f"input_blocks.{i}" for i in (0, 1, 2, 3, 4, 5, 6, 9, 10, 11)] + [
        "middle_block", "output_blocks.0", "output_blocks.1", "output_blocks.2"]
    runs = []
    block = unet.input_blocks[1]
    handle = block[0].register_forward_hook(lambda *a: runs.append(torch.is_grad_enabled()))
    try:
        denoise, layout, sigma, x = batch2
        _step(tiny, denoise, layout, sigma, x, checkpoint_blocks=True)
        # the block ran in the forward and again (recomputed) in the backward pass
        assert len(runs) == 2
        runs.clear()
        _step(tiny, denoise, layout, sigma, x)
        assert len(runs) == 1
        with pytest.raises(RuntimeError, match="inside"), checkpointed_blocks(unet, layers) as n:
            assert n == len(names) and "forward" in block.__dict__
            raise RuntimeError("inside")
    finally:
        handle.remove()
    assert all("forward" not in b.__dict__ for _, b in blocks_without(unet, layers))


def _overlaps(tiny, batch2):
    denoise, layout, sigma, x = batch2
    _, recs = _step(tiny, denoise, layout, sigma, x)
    return [row[0] for row in recs[0].overlap]


def test_adaptive_skip_above_every_overlap_moves_nothing_and_runs_no_backward(tiny, batch2):
    denoise, layout, sigma, x = batch2
    x_skip, recs = _step(tiny, denoise, layout, sigma, x, steps=2, skip_below=1.0)
    assert torch.equal(x_skip, x)
    assert [r.passes for r in recs] == [1, 1]
    assert [r.gradients for r in recs] == [0, 0] and [r.updates for r in recs] == [0, 0]
    assert recs[0].below == [True, True]
    # the forward pass still rolls the retention masks: the second step compares with the first
    assert all(v is not None for v in recs[1].retention_iou[0])


def test_adaptive_skip_between_the_images_moves_only_the_one_above(tiny, batch2):
    denoise, layout, sigma, x = batch2
    ov = _overlaps(tiny, batch2)
    assert ov[0] != ov[1]
    low, high = (0, 1) if ov[0] < ov[1] else (1, 0)
    threshold = (ov[0] + ov[1]) / 2
    x_all, _ = _step(tiny, denoise, layout, sigma, x)
    x_skip, recs = _step(tiny, denoise, layout, sigma, x, skip_below=threshold)
    assert recs[0].below == [i == low for i in range(2)]
    assert recs[0].gradients == 1 and recs[0].updates == 1
    assert torch.equal(x_skip[low], x[low])
    moved = (x_all[high] - x[high]).abs().max()
    assert torch.allclose(x_skip[high], x_all[high], rtol=0, atol=1e-4 * float(moved))
    # the same with one pass per image: the skipped image's backward is not run at all
    x_pi, recs_pi = _step(tiny, denoise, layout, sigma, x, skip_below=threshold, batch_pass=False)
    assert recs_pi[0].passes == 2 and recs_pi[0].gradients == 1
    assert torch.allclose(x_pi, x_skip, rtol=0, atol=1e-4 * float(moved))


def test_adaptive_skip_at_zero_is_off(tiny, batch2):
    denoise, layout, sigma, x = batch2
    x_a, rec_a = _step(tiny, denoise, layout, sigma, x)
    x_b, rec_b = _step(tiny, denoise, layout, sigma, x, skip_below=0.0)
    assert torch.equal(x_a, x_b) and rec_b[0].below == []


def test_phase_seconds_split_the_step(tiny, batch2):
    denoise, layout, sigma, x = batch2
    _, recs = _step(tiny, denoise, layout, sigma, x)
    r = recs[0]
    assert r.forward_seconds > 0 and r.loss_seconds > 0 and r.backward_seconds > 0
    assert r.forward_seconds + r.loss_seconds + r.backward_seconds <= r.seconds


def test_options_are_a_frozen_dataclass():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EngineOptions().early_exit = False  # type: ignore[misc]
