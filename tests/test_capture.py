"""AttentionCapture on a tiny model built from the real ldm UNetModel."""

from __future__ import annotations

import einops
import pytest
import torch

from astar_ext.capture import (
    AttentionCapture,
    CaptureError,
    attention_levels,
    frozen,
    level_name,
    parse_map_level,
    remove_all,
)
from astar_ext.maps import concept_maps
from tests.conftest import concept_batch, hook_count

SD1_LAYERS = [
    "input_blocks.7.1.transformer_blocks.0.attn2",
    "input_blocks.8.1.transformer_blocks.0.attn2",
    "output_blocks.3.1.transformer_blocks.0.attn2",
    "output_blocks.4.1.transformer_blocks.0.attn2",
    "output_blocks.5.1.transformer_blocks.0.attn2",
]


@pytest.fixture()
def batch(tiny, clip_wrapper):
    ctx, layout = concept_batch(tiny, clip_wrapper)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 32, 32, generator=g)
    t = torch.tensor([500])
    return x, t, ctx, layout


def test_finds_the_sd1_layers_at_image_over_32(tiny):
    levels = attention_levels(tiny.diffusion_model)
    assert len(levels) == 16  # SD 1.x has 16 attn2 layers
    assert [n for n, lv in levels.items() if lv == 2] == SD1_LAYERS
    assert [n for n, lv in levels.items() if lv == 3] == ["middle_block.1.transformer_blocks.0.attn2"]
    cap = AttentionCapture(tiny.diffusion_model)
    assert cap.layers == SD1_LAYERS


def test_explicit_layers_and_errors(tiny):
    cap = AttentionCapture(tiny.diffusion_model, layers=[SD1_LAYERS[3], SD1_LAYERS[0]])
    assert cap.layers == [SD1_LAYERS[0], SD1_LAYERS[3]]  # execution order
    with pytest.raises(CaptureError, match="not cross-attention layers"):
        AttentionCapture(tiny.diffusion_model, layers=["input_blocks.7.1"])
    with pytest.raises(CaptureError, match="different map resolutions"):
        AttentionCapture(tiny.diffusion_model, layers=[SD1_LAYERS[0], "middle_block.1.transformer_blocks.0.attn2"])
    with pytest.raises(CaptureError, match="no cross-attention layer at level 5"):
        AttentionCapture(tiny.diffusion_model, level=5)


def test_map_resolution_names_and_the_image_over_16_layers(tiny, batch):
    """The setting's names: the latent is image/8 and each level halves it (level 2 = image/32, level 1 =
    image/16). At level 1 the tiny SD 1.x layout has the transformers of input_blocks 4-5 and output_blocks 6-8,
    whose maps are 16x16 on the 32x32 latent (twice the side of level 2's 8x8)."""
    assert (level_name(2), level_name(1), level_name(3)) == ("image/32", "image/16", "image/64")
    assert parse_map_level("image/32") == 2 and parse_map_level(" Image/16 ") == 1
    for bad in ("image/8", "", "16", None):
        with pytest.raises(ValueError, match="use image/32 or image/16"):
            parse_map_level(bad)
    x, t, ctx, layout = batch
    cap = AttentionCapture(tiny.diffusion_model, level=1)
    assert cap.layers == [f"input_blocks.{i}.1.transformer_blocks.0.attn2" for i in (4, 5)] + [
        f"output_blocks.{i}.1.transformer_blocks.0.attn2" for i in (6, 7, 8)]
    with cap, torch.no_grad(), cap.recording(layout.gather) as rec:
        tiny.diffusion_model(x, t, context=ctx)
    assert rec.hw == (16, 16) and rec.latent_hw == (32, 32) and rec.complete
    assert all(p.shape[1] == 16 * 16 for p in rec.probs.values())


@torch.no_grad()
def test_output_bitwise_unchanged_when_installed_but_not_recording(tiny, batch):
    x, t, ctx, _ = batch
    unet = tiny.diffusion_model
    before = unet(x, t, context=ctx)
    with AttentionCapture(unet) as cap:
        assert cap.installed and hook_count(unet) == 6
        during = unet(x, t, context=ctx)
    after = unet(x, t, context=ctx)
    assert torch.equal(before, during) and torch.equal(before, after)
    assert hook_count(unet) == 0


@torch.no_grad()
def test_probabilities_equal_an_independent_recomputation(tiny, batch):
    x, t, ctx, _ = batch
    unet = tiny.diffusion_model
    seen = {}

    def spy(name):
        def hook(module, args, kwargs, out):
            seen[name] = (args[0], kwargs["context"])
        return hook

    modules = dict(unet.named_modules())
    handles = [modules[n].register_forward_hook(spy(n), with_kwargs=True) for n in SD1_LAYERS]
    all_columns = torch.arange(77)[None]
    try:
        with AttentionCapture(unet) as cap, cap.recording(all_columns) as rec:
            unet(x, t, context=ctx)
    finally:
        for h in handles:
            h.remove()
    assert list(rec.probs) == SD1_LAYERS and rec.complete
    assert rec.hw == (8, 8) and rec.latent_hw == (32, 32)
    for name in SD1_LAYERS:
        m = modules[name]
        xin, c = seen[name]
        q = einops.rearrange(m.to_q(xin), "b n (h d) -> (b h) n d", h=m.heads)
        k = einops.rearrange(m.to_k(c), "b n (h d) -> (b h) n d", h=m.heads)
        ref = (torch.einsum("bid,bjd->bij", q, k) * m.scale).softmax(-1)
        ref = einops.rearrange(ref, "(b h) i j -> b h i j", h=m.heads).mean(1)
        assert torch.allclose(rec.probs[name], ref, atol=1e-6)
        assert torch.allclose(rec.probs[name].sum(-1), torch.ones(1, 64), atol=1e-5)


def test_only_requested_columns_are_kept(tiny, batch):
    x, t, ctx, layout = batch
    with AttentionCapture(tiny.diffusion_model) as cap, torch.no_grad(), cap.recording(layout.gather) as rec:
        tiny.diffusion_model(x, t, context=ctx)
    assert all(p.shape == (1, 64, 77) for p in rec.probs.values())
    cols = torch.tensor([[2, 5]])
    with AttentionCapture(tiny.diffusion_model) as cap, torch.no_grad(), cap.recording(cols) as rec2:
        tiny.diffusion_model(x, t, context=ctx)
    for name in SD1_LAYERS:
        assert torch.allclose(rec2.probs[name], rec.probs[name][..., [2, 5]])


def test_maps_carry_gradients_to_the_latent(tiny, batch):
    x, t, ctx, layout = batch
    z = x.clone().requires_grad_(True)
    with AttentionCapture(tiny.diffusion_model) as cap, frozen(tiny.diffusion_model):
        with torch.enable_grad(), cap.recording(layout.gather, early_exit=True) as rec:
            tiny.diffusion_model(z, t, context=ctx)
        maps = concept_maps(rec.probs, layout, rec.hw)
        assert maps.shape == (1, 2, 8, 8) and maps.requires_grad
        (g,) = torch.autograd.grad(maps[:, 0].sum() - maps[:, 1].sum(), z)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert all(p.requires_grad for p in tiny.parameters())  # frozen() restored the weights


def test_non_square_latent(tiny, batch):
    _, t, ctx, layout = batch
    x = torch.randn(1, 4, 48, 32)  # 384 px tall, 256 px wide
    with AttentionCapture(tiny.diffusion_model) as cap, torch.no_grad(), cap.recording(layout.gather) as rec:
        tiny.diffusion_model(x, t, context=ctx)
    assert rec.hw == (12, 8)
    assert concept_maps(rec.probs, layout, rec.hw).shape == (1, 2, 12, 8)


def test_early_exit_skips_the_rest_of_the_unet(tiny, batch):
    x, t, ctx, layout = batch
    unet = tiny.diffusion_model
    reached = []
    h = unet.out.register_forward_hook(lambda *a: reached.append(True))
    try:
        with AttentionCapture(unet) as cap, torch.no_grad():
            with cap.recording(layout.gather, early_exit=True) as rec:
                unet(x, t, context=ctx)
                pytest.fail("the UNet call should have been cut short")
            assert rec.complete and not reached
            with cap.recording(layout.gather) as rec:
                unet(x, t, context=ctx)
            assert rec.complete and reached
    finally:
        h.remove()
    assert hook_count(unet) == 0


def test_no_hook_remains_after_an_exception_in_the_loss_pass(tiny, batch):
    x, t, ctx, layout = batch
    unet = tiny.diffusion_model
    with pytest.raises(RuntimeError, match="boom"):
        with AttentionCapture(unet) as cap, torch.enable_grad(), frozen(unet):
            with cap.recording(layout.gather) as rec:
                unet(x.clone().requires_grad_(True), t, context=ctx)
                raise RuntimeError("boom")
    assert hook_count(unet) == 0
    assert cap._active is None and rec.probs
    assert all(p.requires_grad for p in unet.parameters())


def test_install_is_idempotent_and_remove_is_safe(tiny):
    unet = tiny.diffusion_model
    cap = AttentionCapture(unet)
    cap.install()
    cap.install()
    assert hook_count(unet) == 6
    cap.remove()
    cap.remove()
    assert hook_count(unet) == 0
    a, b = AttentionCapture(unet).install(), AttentionCapture(unet).install()
    assert hook_count(unet) == 12
    assert remove_all() >= 2
    assert hook_count(unet) == 0 and not a.installed and not b.installed


def test_recording_needs_installation_and_is_not_reentrant(tiny, batch):
    _, _, _, layout = batch
    cap = AttentionCapture(tiny.diffusion_model)
    with pytest.raises(CaptureError, match="installed"):
        with cap.recording(layout.gather):
            pass
    with cap, cap.recording(layout.gather):
        with pytest.raises(CaptureError, match="re-entrant"):
            with cap.recording(layout.gather):
                pass


def test_a_batch_other_than_the_recorded_rows_is_refused(tiny, batch):
    x, t, ctx, layout = batch
    with AttentionCapture(tiny.diffusion_model) as cap, torch.no_grad():
        with pytest.raises(CaptureError, match="expects 1 rows but the UNet ran 2"):
            with cap.recording(layout.gather):
                tiny.diffusion_model(x.repeat(2, 1, 1, 1), t.repeat(2), context=ctx.repeat(2, 1, 1))


def test_context_transform_is_applied(tiny, batch):
    x, t, ctx, layout = batch
    calls = []

    def transform(c, module):
        calls.append(module)
        return c * 2

    with AttentionCapture(tiny.diffusion_model, context_transform=transform) as cap, torch.no_grad():
        with cap.recording(layout.gather) as rec:
            tiny.diffusion_model(x, t, context=ctx)
    assert len(calls) == 5 and rec.complete
    modules = dict(tiny.diffusion_model.named_modules())
    assert calls == [modules[n] for n in SD1_LAYERS]
