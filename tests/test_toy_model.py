"""The shipped toy model v2: it loads, it is the WebUI's kind of model (ldm UNet, ldm AutoencoderKL layout, HF
CLIPTextModel names), its VAE reproduces the scenes, it samples what it is asked for; its training is seeded
and resumable."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from astar_ext.capture import AttentionCapture
from astar_ext.toy import data as D
from astar_ext.toy import detect as T
from astar_ext.toy.model import WEIGHTS, ToyConfig, ToyLDM, denoiser, load_model
from astar_ext.toy.sample import generate
from astar_ext.toy.vae import ToyVAE
from tests.conftest import hook_count


@pytest.fixture(scope="module")
def toy():
    torch.set_num_threads(1)
    return load_model()


def test_shipped_weights_are_small_and_record_their_training(toy):
    assert os.path.getsize(WEIGHTS) <= 20e6
    meta = toy.meta
    assert meta["steps"] >= 800 and meta["train_seconds"] > 0
    assert set(meta["train_config"]) >= {"seed", "batch", "lr"}
    assert meta["cache"]["config"]["absent"] > 0  # the captions that name undrawn objects
    assert all(p.dtype == torch.float32 for p in toy.parameters())
    assert 0.1 < toy.config.scale_factor < 10


def test_toy_model_is_built_from_the_webui_modules(toy):
    unet = toy.diffusion_model
    assert type(unet).__module__ == "ldm.modules.diffusionmodules.openaimodel"
    assert toy.config.image_size == 256 and toy.config.latent_size == 32
    cap = AttentionCapture(unet, level=toy.config.capture_level)
    # five cross-attention layers at image/32 (8x8 at 256 px), as SD 1.x has five at 16x16 at 512 px
    blocks = ["input_blocks.5", "input_blocks.6", "output_blocks.2", "output_blocks.3", "output_blocks.4"]
    assert cap.layers == [f"{b}.1.transformer_blocks.0.attn2" for b in blocks]
    ctx = toy.encode_prompts(["a red circle and a blue square"])
    assert ctx.shape == (1, 77, toy.config.context_dim)
    x = torch.randn(1, 4, 32, 32)
    with cap, torch.no_grad(), cap.recording(torch.arange(77)[None]) as rec:
        v = toy.apply_model(x, torch.tensor([500]), {"c_crossattn": [ctx]})
    assert v.shape == x.shape and rec.complete and rec.hw == (8, 8)
    # a v-prediction model, wrapped by k-diffusion as the WebUI wraps SD 2.x's v-models
    assert type(denoiser(toy)).__name__ == "CompVisVDenoiser"
    assert hook_count(toy) == 0
    # the text encoder has HF CLIPTextModel's names and CLIP's whole vocabulary
    names = set(toy.cond_stage_model.state_dict())
    assert {"transformer.text_model.embeddings.token_embedding.weight",
            "transformer.text_model.embeddings.position_embedding.weight",
            "transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
            "transformer.text_model.encoder.layers.1.mlp.fc2.bias",
            "transformer.text_model.final_layer_norm.weight"} <= names
    assert toy.cond_stage_model.transformer.text_model.embeddings.token_embedding.weight.shape == (49408, 64)
    # the VAE has ldm AutoencoderKL's modules
    assert type(toy.first_stage_model.decoder).__module__ == "ldm.modules.diffusionmodules.model"
    assert {"encoder.conv_in.weight", "decoder.conv_out.weight", "quant_conv.weight", "post_quant_conv.weight"} \
        <= set(toy.first_stage_model.state_dict())


def test_text_encoder_is_causal_and_encodes_each_chunk_alone(toy):
    """Changing a later token leaves earlier positions alone (CLIP's causal mask); a two-chunk prompt is the
    two chunks encoded on their own (the WebUI's way)."""
    enc = toy.cond_stage_model
    tok = toy.tokenizer
    a = torch.tensor(tok.ids(["a red circle and a blue square"]))
    b = torch.tensor(tok.ids(["a red circle and a green square"]))
    with torch.no_grad():
        ea, eb = enc(a), enc(b)
        assert torch.equal(ea[0, :6], eb[0, :6]) and not torch.allclose(ea[0, 6], eb[0, 6])
        two = torch.cat([a, b], 1)
        assert torch.allclose(enc(two), torch.cat([ea, eb], 1), atol=1e-6)


def test_vae_encodes_the_block_colours_and_decodes_them_back():
    """Encoder: each latent pixel is ``M`` times the mean colour of its 8x8 block; decoder: each latent pixel back
    to an 8x8 block of ``M^T z``; expected values computed here with plain pooling and upsampling."""
    torch.set_num_threads(1)
    vae = ToyVAE().eval()
    from astar_ext.toy.vae import colour_matrix

    m = colour_matrix()
    assert torch.allclose(m.T @ m, torch.eye(3), atol=1e-6)
    rng = np.random.default_rng(9)
    scenes = [D.random_scene(rng) for _ in range(3)]
    images = torch.from_numpy(np.stack([D.render_scene(s, 8) for s in scenes]).transpose(0, 3, 1, 2) * 2 - 1)
    with torch.no_grad():
        mean, logvar = vae.moments(images)
        pooled = torch.nn.functional.avg_pool2d(images, 8)
        assert (mean - torch.einsum("jc,bchw->bjhw", m, pooled)).abs().max() < 2e-3
        assert torch.all(logvar == -20.0)
        out = vae.decode(mean)
        assert (out - torch.nn.functional.interpolate(pooled, scale_factor=8)).abs().max() < 2e-3
        z = torch.randn(2, 4, 32, 32) * 1.5
        want = torch.nn.functional.interpolate(torch.einsum("jc,bjhw->bchw", m, z), scale_factor=8)
        assert (vae.decode(z) - want).abs().max() < 2e-3
    for s, img in zip(scenes, out):
        dets = T.detect(((img.clamp(-1, 1) + 1) / 2).numpy().transpose(1, 2, 0))
        assert sorted(d.name for d in dets) == sorted(o.name for o in s.objects)


def test_scene_grid_is_the_decoded_image_averaged(toy):
    z = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        full = toy.to_image(z)
    assert full.shape == (2, 3, 256, 256)
    assert (torch.nn.functional.avg_pool2d(full, 8) - toy.to_grid(z)).abs().max() < 2e-3


def _single_objects(toy, decode=True, n=12):
    from astar_ext.toy.bench import benchmark_prompts

    objects = [objs[0] for objs in benchmark_prompts(1, n)]
    prompts = [f"a {c} {s}" for c, s in objects]
    run = generate(toy, prompts, list(range(500, 500 + n)), [f"{c} {s}" for c, s in objects], None, steps=12,
                   decode=decode)
    return objects, run


def test_shipped_model_samples_deterministically_and_the_grid_is_what_the_decoder_draws(toy):
    objects, run = _single_objects(toy, n=2)
    assert run.images.shape == (2, 3, 256, 256) and 0 <= run.images.min() and run.images.max() <= 1
    assert run.images.std() > 0.05  # not blank
    again = _single_objects(toy, decode=False, n=2)[1]
    assert torch.allclose(again.images, torch.nn.functional.avg_pool2d(run.images, 8), atol=2e-3)


def test_shipped_model_draws_the_colours_it_is_asked_for(toy):
    """Single objects, 12 prompts x 1 seed (not the benchmark's seeds), what the shipped weights (step 23500) do,
    with a margin: the requested colour in every image (asserted: >= 9 of 12), nothing else drawn (asserted: at most
    3 stray objects in 12 images), the right shape as well in 12 of 12 (asserted: >= 9; step 21000 drew 11, the
    step-1800 weights 4). On the report seeds the right shape is drawn in 96.3 % of 108 images, issue 12's bar
    being 80 % (docs/faithfulness.md)."""
    objects, run = _single_objects(toy)
    dets = [T.detect(T.to_numpy_image(im)) for im in run.images]
    colour = sum(T.drawn(d, c) for d, (c, _) in zip(dets, objects))
    shape = sum(T.correct(d, c, s) for d, (c, s) in zip(dets, objects))
    others = sum(sum(x.colour != c for x in d) for d, (c, _) in zip(dets, objects))
    print(f"requested colour drawn {colour}/12, colour and shape {shape}/12, other objects {others}")
    assert colour >= 9 and shape >= 9 and others <= 3


def test_training_is_seeded_and_resumes_exactly(tmp_path):
    from astar_ext.toy.train import CacheConfig, TrainConfig, build_cache, train

    torch.set_num_threads(1)
    vae = ToyVAE().eval()
    cache = build_cache(vae, CacheConfig(scenes=6), str(tmp_path / "cache.pt"), chunk=4)
    assert cache["latents"].shape == (6, 4, 32, 32) and len(cache["captions"]) == 6
    assert build_cache(vae, CacheConfig(scenes=6), str(tmp_path / "cache.pt"))["captions"] == cache["captions"]
    cfg = TrainConfig(steps=3, batch=2, warmup=2)
    straight = tmp_path / "a.ckpt"
    train(cfg, str(straight), None, vae, cache, log_every=100)
    resumed = tmp_path / "b.ckpt"
    train(TrainConfig(steps=2, batch=2, warmup=2), str(resumed), None, vae, cache, log_every=100)
    meta = train(cfg, str(resumed), str(tmp_path / "w.pt"), vae, cache, log_every=100)
    assert meta["steps"] == 3
    a = torch.load(straight, weights_only=True)
    b = torch.load(resumed, weights_only=True)
    assert a["step"] == b["step"] == 3
    for key in ("model", "ema"):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), (key, name)
    exported = load_model(str(tmp_path / "w.pt"))
    assert exported.meta["steps"] == 3 and isinstance(exported, ToyLDM)
    assert exported.config == ToyConfig(scale_factor=round(cache["scale_factor"], 5))
    # the export is the EMA, in fp16, with the VAE unchanged
    for name, value in exported.diffusion_model.state_dict().items():
        assert torch.equal(value, b["ema"]["diffusion_model." + name].half().float())
    for name, value in exported.first_stage_model.state_dict().items():
        assert torch.equal(value, vae.state_dict()[name].half().float())


def test_a_run_goes_on_on_new_captions_as_a_new_history_segment(tmp_path):
    """``--cache`` lets a run go on from its checkpoint on a cache of other captions (another ``--absent``), and
    the history records each segment's data: the shipped weights say which steps saw which captions."""
    from astar_ext.toy.train import main

    common = ["--dir", str(tmp_path), "--scenes", "6", "--batch", "2"]
    main(common + ["--steps", "2"])
    with pytest.raises(ValueError, match="remove it"):  # the first cache is not silently rebuilt or reused
        main(common + ["--steps", "3", "--absent", "0.5"])
    new = common + ["--absent", "0.5", "--cache", str(tmp_path / "cache-absent05.pt")]
    meta = main(new + ["--steps", "3"])
    assert [(h["to_step"], h["settings"]["data"]["absent"]) for h in meta["history"]] == [(2, 0.3), (3, 0.5)]
    assert meta["cache"]["config"]["absent"] == 0.5
    meta = main(new + ["--steps", "4", "--export", str(tmp_path / "w.pt")])  # the same data: the segment goes on
    assert [(h["to_step"], h["settings"]["data"]["absent"]) for h in meta["history"]] == [(2, 0.3), (4, 0.5)]
    assert load_model(str(tmp_path / "w.pt")).meta["history"] == meta["history"]


def test_text_encoder_learning_rate_scale_and_one_group_checkpoints(tmp_path):
    """``text_lr_scale`` sets the text encoder's rate apart from the UNet's (0 freezes it: AdamW with lr 0 moves
    nothing, weight decay included), and a checkpoint whose optimiser has one group of every parameter (as
    written before the option) resumes to exactly the run made with two groups."""
    from astar_ext.toy.train import CacheConfig, TrainConfig, build_cache, train

    torch.set_num_threads(1)
    vae = ToyVAE().eval()
    cache = build_cache(vae, CacheConfig(scenes=6), str(tmp_path / "cache.pt"), chunk=4)
    frozen_text = tmp_path / "f.ckpt"
    train(TrainConfig(steps=2, batch=2, warmup=2, text_lr_scale=0.0), str(frozen_text), None, vae, cache,
          log_every=100)
    torch.manual_seed(TrainConfig().seed)
    init = ToyLDM(ToyConfig(scale_factor=round(cache["scale_factor"], 5)))
    state = torch.load(frozen_text, weights_only=True)["model"]
    text = {k: v for k, v in state.items() if k.startswith("cond_stage_model.")}
    unet = {k: v for k, v in state.items() if k.startswith("diffusion_model.")}
    start = init.state_dict()
    assert text and all(torch.equal(v, start[k]) for k, v in text.items())
    assert any(not torch.equal(v, start[k]) for k, v in unet.items())

    cfg = TrainConfig(steps=3, batch=2, warmup=2)
    straight = tmp_path / "a.ckpt"
    train(cfg, str(straight), None, vae, cache, log_every=100)
    old = tmp_path / "b.ckpt"
    train(TrainConfig(steps=2, batch=2, warmup=2), str(old), None, vae, cache, log_every=100)
    saved = torch.load(old, weights_only=True)
    groups = saved["opt"]["param_groups"]
    assert len(groups) == 2
    one = {k: v for k, v in groups[0].items() if k != "lr_scale"}
    one["params"] = groups[0]["params"] + groups[1]["params"]
    saved["opt"]["param_groups"] = [one]  # what the trainer wrote before the groups
    torch.save(saved, old)
    train(cfg, str(old), None, vae, cache, log_every=100)
    a, b = torch.load(straight, weights_only=True), torch.load(old, weights_only=True)
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name


def test_shipped_weights_need_only_what_torch_2_0_weights_only_allows():
    """``torch.load(..., weights_only=True)`` has existed since torch 1.13; in torch 2.0 its unpickler accepts
    (beside plain containers and numbers) only these globals. The shipped file must use nothing else."""
    import io
    import pickletools
    import zipfile

    allowed = {"collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch HalfStorage",
               "torch FloatStorage", "torch LongStorage"}
    with zipfile.ZipFile(WEIGHTS) as z:
        (name,) = [n for n in z.namelist() if n.endswith("/data.pkl")]
        ops = list(pickletools.genops(io.BytesIO(z.read(name))))
    used = set()
    for i, (op, arg, _) in enumerate(ops):
        if op.name == "GLOBAL":
            used.add(arg)
        elif op.name == "STACK_GLOBAL":
            used.add(f"{ops[i - 2][1]} {ops[i - 1][1]}")
    assert "torch._utils _rebuild_tensor_v2" in used and used <= allowed, used
