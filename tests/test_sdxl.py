"""The engine on a tiny model with the SDXL block layout (``astar_ext.bench.tiny.sdxl_config``), SSD-1B's deleted
blocks, the layer choices, and map sizes that follow the latent (non-square, not multiples of 64 px).

The tiny SDXL model is the ldm ``UNetModel`` with the blocks sgm's SDXL UNet has and ldm's cannot express added
(see ``astar_ext/bench/tiny.py``): attention only at levels 1 and 2, 2 and 3 transformer blocks there (SDXL base:
2 and 10), a context of two text encoders side by side (16 + 32 channels; SDXL: 768 + 1280) and the ``vector`` (ADM)
conditioning. ``python -m astar_ext.bench.layers`` and a check against sgm's own ``UNetModel`` (docs/design.md,
"SDXL layers") give the same layer names on the real SDXL configuration.
"""

from __future__ import annotations

import copy

import k_diffusion as K
import pytest
import torch

from astar_ext import params as P
from astar_ext.bench.tiny import ssd_layout
from astar_ext.capture import AttentionCapture, CaptureError, attention_levels, select_layers
from astar_ext.controller import AStarController, EngineOptions
from astar_ext.losses import segregation_loss
from astar_ext.maps import ColumnLayout, concept_maps, map_size
from astar_ext.schedule import Schedule
from astar_ext.tokens import match_concepts, parse_concepts
from tests.conftest import hook_count, prompt_ids


def blocks(prefix, n):
    return [f"{prefix}.1.transformer_blocks.{i}.attn2" for i in range(n)]


DOWN = blocks("input_blocks.7", 3) + blocks("input_blocks.8", 3)
MID = blocks("middle_block", 3)
UP = blocks("output_blocks.0", 3) + blocks("output_blocks.1", 3) + blocks("output_blocks.2", 3)
LEVEL1 = (blocks("input_blocks.4", 2) + blocks("input_blocks.5", 2) + blocks("output_blocks.3", 2)
          + blocks("output_blocks.4", 2) + blocks("output_blocks.5", 2))


def setup(tiny_xl, clip_wrapper, prompt="a cat and a dog", concepts="cat, dog", size=(32, 32), seed=0):
    ids, chunks = prompt_ids(clip_wrapper, prompt)
    cond = tiny_xl.conditioning(ids, size[0] * 8, size[1] * 8)
    pt = match_concepts(parse_concepts(concepts), chunks, clip_wrapper.tokenize, clip_wrapper.id_end)
    layout = ColumnLayout.build([pt], normalize_eot=True)
    x = torch.randn(1, 4, *size, generator=torch.Generator().manual_seed(seed))
    return cond, layout, x


def test_the_sdxl_layout_has_sgms_layer_names_and_levels(tiny_xl):
    levels = attention_levels(tiny_xl.diffusion_model)
    assert [n for n, lv in levels.items() if lv == 2] == DOWN + MID + UP
    assert sorted(n for n, lv in levels.items() if lv == 1) == sorted(LEVEL1)
    assert set(levels.values()) == {1, 2}  # no attention at level 0, the middle block is at level 2
    assert AttentionCapture(tiny_xl.diffusion_model).layers == DOWN + MID + UP
    assert tiny_xl.diffusion_model.num_classes == "sequential" and tiny_xl.config.context_dim == 16 + 32


def test_layer_choices(tiny_xl):
    unet = tiny_xl.diffusion_model
    assert select_layers(unet, 2, "all") == DOWN + MID + UP
    assert select_layers(unet, 2, "up") == UP
    assert select_layers(unet, 2, "down") == DOWN
    assert select_layers(unet, 2, "down+mid") == DOWN + MID
    assert select_layers(unet, 2, "mid + up") == MID + UP
    assert select_layers(unet, 1, "up") == LEVEL1[4:]
    with pytest.raises(ValueError, match="unknown layer choice"):
        select_layers(unet, 2, "decoder")
    with pytest.raises(ValueError, match="unknown layer choice"):
        select_layers(unet, 2, "")


def test_ssd1b_layout_and_a_choice_that_leaves_no_layer(tiny_xl):
    unet = ssd_layout(copy.deepcopy(tiny_xl.diffusion_model))
    at2 = select_layers(unet, 2, "all")
    assert at2 == (blocks("input_blocks.7", 1) + blocks("input_blocks.8", 1) + blocks("output_blocks.0", 1)
                   + blocks("output_blocks.1", 1) + blocks("output_blocks.2", 3))
    assert len(select_layers(unet, 1, "all")) == 8
    with pytest.raises(CaptureError, match="no cross-attention layer in 'mid'.*parts with layers there: down, up"):
        select_layers(unet, 2, "mid")
    x = torch.randn(1, 4, 16, 16)
    with torch.no_grad(), AttentionCapture(unet) as cap, cap.recording(torch.arange(77)[None]) as rec:
        unet(x, torch.tensor([500]), context=torch.randn(1, 77, 48), y=torch.randn(1, 80))
    assert rec.complete and list(rec.probs) == at2 and rec.hw == (4, 4)


@torch.no_grad()
def test_every_block_of_a_deep_transformer_sees_the_context(tiny_xl, clip_wrapper):
    """The probabilities of the third block of a transformer equal a recomputation from its own inputs."""
    cond, _, x = setup(tiny_xl, clip_wrapper)
    unet = tiny_xl.diffusion_model
    name = "output_blocks.1.1.transformer_blocks.2.attn2"
    module = dict(unet.named_modules())[name]
    seen = {}
    handle = module.register_forward_hook(lambda m, a, kw, out: seen.update(x=a[0], c=kw["context"]), with_kwargs=True)
    try:
        with AttentionCapture(unet, layers=[name]) as cap, cap.recording(torch.arange(77)[None]) as rec:
            unet(x, torch.tensor([500]), context=cond["crossattn"], y=cond["vector"])
    finally:
        handle.remove()
    assert seen["c"] is cond["crossattn"]
    q = module.to_q(seen["x"])
    k = module.to_k(seen["c"])
    q = q.reshape(1, q.shape[1], module.heads, -1).transpose(1, 2)
    k = k.reshape(1, k.shape[1], module.heads, -1).transpose(1, 2)
    ref = (q @ k.transpose(-1, -2) * module.scale).softmax(-1).mean(1)
    assert torch.allclose(rec.probs[name], ref, atol=1e-6)


def cond_denoiser(tiny_xl, cond):
    den = K.external.CompVisDenoiser(tiny_xl)

    def denoise(z, sigma):
        return den(z, sigma, cond=cond)

    return den, denoise


@pytest.mark.parametrize("choice", ["all", "up", "down"])
def test_a_corrected_step_passes_the_vector_and_lowers_the_overlap(tiny_xl, clip_wrapper, choice):
    """The loss pass conditions the UNet on ``vector`` (it reaches ``y``), the gradient moves the latent in place,
    and one step at A&E's step size lowers the overlap of the maps it optimised, on each of four seeds."""
    unet = tiny_xl.diffusion_model
    sigmas = K.sampling.get_sigmas_karras(10, 0.03, 14.6)
    ys = []
    handle = unet.register_forward_pre_hook(lambda m, a, kw: ys.append(kw.get("y")), with_kwargs=True)
    try:
        for seed in range(4):
            cond, layout, x = setup(tiny_xl, clip_wrapper, seed=seed)
            x = x * sigmas[0]
            _, denoise = cond_denoiser(tiny_xl, cond)
            layers = select_layers(unet, 2, choice)
            ctrl = AStarController(AttentionCapture(unet, layers=layers), Schedule(10, 0.5, 20.0), P.DEFAULTS)
            with ctrl, torch.no_grad():
                before = x.clone()
                ys.clear()
                rec = ctrl.step(x, sigmas[:1], 0, layout, denoise)
                assert len(ys) == 1 and ys[0] is not None and torch.equal(ys[0], cond["vector"])
                after = ctrl.measure(x, sigmas[:1], 1, layout, denoise)
            assert rec.updates == 1 and not torch.equal(x, before) and rec.grad_norm > 0
            assert after.seg_loss < rec.seg_loss, (seed, rec.seg_loss, after.seg_loss)
            assert list(ctrl.capture.layers) == layers
    finally:
        handle.remove()
    assert hook_count(unet) == 0


@torch.no_grad()
def test_the_vector_changes_the_maps(tiny_xl, clip_wrapper):
    cond, layout, x = setup(tiny_xl, clip_wrapper)
    unet = tiny_xl.diffusion_model
    out = []
    for vector in (cond["vector"], torch.zeros_like(cond["vector"])):
        with AttentionCapture(unet) as cap, cap.recording(layout.gather) as rec:
            unet(x, torch.tensor([800]), context=cond["crossattn"], y=vector)
        out.append(concept_maps(rec.probs, layout, rec.hw))
    assert not torch.allclose(out[0], out[1], atol=1e-4)


def test_early_exit_of_a_down_choice_skips_the_middle_and_decoder(tiny_xl, clip_wrapper):
    cond, layout, x = setup(tiny_xl, clip_wrapper)
    unet = tiny_xl.diffusion_model
    ran = []
    handle = unet.middle_block.register_forward_pre_hook(lambda *a: ran.append(True))
    try:
        with AttentionCapture(unet, layers=select_layers(unet, 2, "down")) as cap, torch.no_grad():
            with cap.recording(layout.gather, early_exit=True) as rec:
                unet(x, torch.tensor([500]), context=cond["crossattn"], y=cond["vector"])
                pytest.fail("the UNet call should have stopped after input_blocks.8")
    finally:
        handle.remove()
    assert rec.complete and not ran


@pytest.mark.parametrize("model, latent", [
    ("sd1", (24, 40)),   # 192x320 px: non-square, multiples of 64
    ("sd1", (65, 33)),   # 520x264 px: not multiples of 64
    ("sdxl", (40, 24)),
    ("sdxl", (65, 65)),  # 520x520 px
    ("sdxl", (9, 17)),   # 72x136 px: small
    ("sdxl", (96, 72)),  # 768x576 px: large
])
def test_the_map_size_follows_the_latent(tiny, tiny_xl, clip_wrapper, unet_resizes_skips, model, latent):
    """Maps are ceil(h/4) x ceil(w/4) of the latent (h rows, w columns), on both layouts, at every size; the
    correction runs and lowers the overlap."""
    m = tiny_xl if model == "sdxl" else tiny
    ids, chunks = prompt_ids(clip_wrapper, "a cat and a dog")
    cond = m.conditioning(ids, latent[0] * 8, latent[1] * 8)
    pt = match_concepts(parse_concepts("cat, dog"), chunks, clip_wrapper.tokenize, clip_wrapper.id_end)
    layout = ColumnLayout.build([pt], normalize_eot=model == "sdxl")
    sigmas = K.sampling.get_sigmas_karras(10, 0.03, 14.6)
    x = torch.randn(1, 4, *latent, generator=torch.Generator().manual_seed(1)) * sigmas[0]
    den = K.external.CompVisDenoiser(m)
    ctrl = AStarController(AttentionCapture(m.diffusion_model), Schedule(10, 0.5, 20.0), P.DEFAULTS,
                           options=EngineOptions(keep_maps=True))
    with ctrl, torch.no_grad():
        rec = ctrl.step(x, sigmas[:1], 0, layout, lambda z, s: den(z, s, cond=cond))
        after = ctrl.measure(x, sigmas[:1], 1, layout, lambda z, s: den(z, s, cond=cond))
    h, w = map_size(latent, 2)
    assert (h, w) == (-(-latent[0] // 4), -(-latent[1] // 4))
    assert rec.maps.shape == (1, 2, h, w) and rec.updates == 1
    assert after.seg_loss < rec.seg_loss
    seg, _ = segregation_loss(rec.maps, layout.valid)
    assert abs(float(seg) - rec.seg_loss) < 1e-5


def test_sd2_v_prediction_with_eot_and_padding_excluded(tiny, clip_wrapper):
    """SD 2.x 768-v: k-diffusion's v-denoiser around the tiny SD layout, A&E's SD 2.1 rule (only the prompt's tokens
    take part in the x100 re-normalisation); one corrected step lowers the overlap on each of four seeds, and the
    maps differ from those of the SD 1.x rule."""
    ids, chunks = prompt_ids(clip_wrapper, "a cat and a dog")
    cond = tiny.conditioning(ids)
    pt = match_concepts(parse_concepts("cat, dog"), chunks, clip_wrapper.tokenize, clip_wrapper.id_end)
    sd2 = ColumnLayout.build([pt], normalize_eot=True)
    sd1 = ColumnLayout.build([pt], normalize_eot=False)
    assert sd2.keep[0, 0].nonzero().flatten().tolist() == [1, 2, 3, 4, 5]
    assert sd1.keep[0, 0].nonzero().flatten().tolist() == list(range(1, 76))
    den = K.external.CompVisVDenoiser(tiny)
    sigmas = K.sampling.get_sigmas_karras(10, 0.03, 14.6)
    for seed in range(4):
        x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(seed)) * sigmas[0]
        maps = {}
        for name, layout in (("sd1", sd1), ("sd2", sd2)):
            ctrl = AStarController(AttentionCapture(tiny.diffusion_model), Schedule(10, 0.5, 20.0), P.DEFAULTS,
                                   options=EngineOptions(keep_maps=True, normalize_eot=name == "sd2"))
            z = x.clone()
            with ctrl, torch.no_grad():
                rec = ctrl.step(z, sigmas[:1], 0, layout, lambda v, s: den(v, s, cond=cond))
                after = ctrl.measure(z, sigmas[:1], 1, layout, lambda v, s: den(v, s, cond=cond))
            maps[name] = rec.maps
            if name == "sd2":
                assert rec.updates == 1 and after.seg_loss < rec.seg_loss, (seed, rec.seg_loss, after.seg_loss)
        assert not torch.allclose(maps["sd1"], maps["sd2"], atol=1e-4)
