"""The A-STAR script in the STAND-IN WebUI with SDXL, SSD-1B and SD 2.x models, any image size, the layer setting
and the refiner.

The stand-in's SDXL model is the tiny SDXL block layout (``astar_ext.bench.tiny.sdxl_config``) behind a conditioner with
two text wrappers (CLIP-L-like, OpenCLIP-bigG-like) and the ``vector`` conditioning; SD 2.x is the tiny SD1 layout with
OpenCLIP's padding and v- or eps-prediction (``tests/standin/webui/model.py``).
"""

from __future__ import annotations

import re

import pytest
import torch

from tests.conftest import SCRIPT, astar_keys, hook_count, on, run


def grad_calls(unet):
    """Records ``(y, x shape)`` of every UNet call made with gradients on (A-STAR's loss passes)."""
    seen = []

    def hook(module, args, kwargs):
        if torch.is_grad_enabled():
            seen.append((kwargs.get("y"), tuple(args[0].shape)))

    return seen, unet.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("variant", ["sdxl", "ssd"])
def test_sdxl_and_ssd1b_run_with_no_extra_setting(webui, variant):
    model = webui.make_model(variant, use=True)
    unet = model.model.diffusion_model
    seen, handle = grad_calls(unet)
    try:
        result = run(webui, on(), width=256, height=192)
    finally:
        handle.remove()
    keys = astar_keys(result.processed)
    assert keys["A-STAR passes"] == "3" and "->" in keys["A-STAR overlap"], keys
    assert not {"A-STAR skipped", "A-STAR warnings", "A-STAR error", "A-STAR notes"} & set(keys), keys
    # the loss passes got the vector conditioning (pooled text + sizes) and the latent of 192x256 px
    assert len(seen) == 3 and all(y is not None and y.shape == (1, 80) for y, _ in seen)
    assert all(shape == (1, 4, 24, 32) for _, shape in seen)
    state = result.p.astar_state
    runs = state.runs
    expected = 18 if variant == "sdxl" else 7  # image/32 layers of the tiny SDXL / SSD-1B layouts
    assert len(runs[0].controller.capture.layers) == expected
    # SDXL's bigG pads with 0 after EOT, so EOT and padding leave the re-normalisation (as for SD 2.x)
    assert runs[0].concepts.normalize_eot
    layout = runs[0].concepts.layout_at(0).layout
    assert layout.keep[0, 0].nonzero().flatten().tolist() == [1, 2, 3, 4, 5]
    assert hook_count(model.model) == 0


def test_the_vector_of_the_loss_pass_is_the_one_of_the_cond_rows(webui, monkeypatch):
    """Batch of two different prompts at 320x192: each loss-pass row carries the vector of its own prompt."""
    model = webui.make_model("sdxl", use=True)
    seen, handle = grad_calls(model.model.diffusion_model)
    try:
        result = run(webui, on(), prompt="a cat and a dog", batch_size=2, width=320, height=192)
    finally:
        handle.remove()
    from modules import prompt_parser

    texts = prompt_parser.SdConditioning(["a cat and a dog"], width=320, height=192)
    want = model.get_learned_conditioning(texts)["vector"][0]
    assert astar_keys(result.processed)["A-STAR passes"] == "3"
    for y, shape in seen:
        assert shape == (2, 4, 24, 40) and torch.allclose(y, want.expand(2, -1), atol=1e-6)


@pytest.mark.parametrize("variant, parameterization", [("sd2", "v"), ("sd2-base", "eps")])
def test_sd2_768v_and_512base(webui, variant, parameterization):
    model = webui.make_model(variant, use=True)
    assert model.parameterization == parameterization
    result = run(webui, on())
    keys = astar_keys(result.processed)
    assert keys["A-STAR passes"] == "3" and "A-STAR skipped" not in keys, keys
    concepts = result.p.astar_state.runs[0].concepts
    tokens = concepts.tokens("a cat and a dog")
    assert [c.columns for c in tokens.concepts] == [(2,), (5,)] and tokens.chunk_lengths == (5,)
    # OpenCLIP pads the encoder input with 0 after EOT; the tokenize_line chunks still carry EOT ids
    chunk = model.cond_stage_model.tokenize_line("a cat and a dog")[0][0]
    assert chunk.tokens[6:9] == [49407, 49407, 49407] and model.cond_stage_model.id_pad == 0
    assert concepts.normalize_eot
    assert concepts.layout_at(0).layout.keep[0, 0].nonzero().flatten().tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("variant, width, height", [
    ("sd1", 264, 200), ("sd1", 200, 72), ("sd1", 520, 136),
    ("sd2", 264, 200), ("sd2-base", 136, 328),
    ("sdxl", 264, 200), ("sdxl", 200, 72), ("sdxl", 520, 136), ("ssd", 328, 136),
])
def test_sizes_that_are_not_multiples_of_64(webui, variant, width, height):
    from astar_ext.maps import map_size

    if variant != "sd1":
        webui.make_model(variant, use=True)
    result = run(webui, on(window=1.0), width=width, height=height, steps=3)
    keys = astar_keys(result.processed)
    assert keys["A-STAR passes"] == "3" and "A-STAR error" not in keys, keys
    ctrl = result.p.astar_state.runs[0].controller
    assert result.processed.images[0].size == (width, height)
    assert ctrl.records[0].grad_norm > 0
    # the retention masks kept from the last corrected step have the size of the maps: ceil(latent / 4) per side
    want = (-(-height // 32), -(-width // 32))
    assert map_size((height // 8, width // 8), 2) == want
    assert tuple(ctrl._prev_masks.shape[-2:]) == want


def test_layer_setting(webui):
    from astar_ext.capture import select_layers

    model = webui.make_model("sdxl", use=True)
    unet = model.model.diffusion_model
    opts = webui.shared.opts
    opts.data["astar_layers"] = "up"
    try:
        result = run(webui, on())
        keys = astar_keys(result.processed)
        assert keys["A-STAR layers"] == "up, 9 of the 18 image/32 layers" and keys["A-STAR passes"] == "3"
        assert result.p.astar_state.runs[0].controller.capture.layers == select_layers(unet, 2, "up")
        opts.data["astar_layers"] = "mid"
        webui.make_model("ssd", use=True)  # SSD-1B's middle block has no transformer
        keys = astar_keys(run(webui, on()).processed)
        assert "no cross-attention layer in 'mid'" in keys["A-STAR skipped"] and "A-STAR passes" not in keys
        opts.data["astar_layers"] = "all"
        keys = astar_keys(run(webui, on()).processed)
        assert "A-STAR layers" not in keys and keys["A-STAR passes"] == "3"
    finally:
        opts.data.pop("astar_layers", None)


def test_encoders_that_split_a_prompt_differently_are_refused(webui, monkeypatch):
    model = webui.make_model("sdxl", use=True)
    clip_g = model.conditioner.embedders[1]
    original = clip_g.tokenize_line

    def shifted(line):
        chunks, count = original(line)
        chunks[0].tokens = chunks[0].tokens[:1] + [320] + chunks[0].tokens[1:-1]
        return chunks, count

    monkeypatch.setattr(clip_g, "tokenize_line", shifted)
    result = run(webui, on())
    keys = astar_keys(result.processed)
    assert "split this prompt differently (token 2: ids [2368, 537, 320] and [320, 2368, 537])" in \
        keys["A-STAR skipped"], keys
    assert len(result.processed.images) == 1


def test_same_tokens():
    from astar_ext.webui.host import same_tokens

    class Chunk:
        def __init__(self, tokens, fixes=()):
            self.tokens, self.fixes = tokens, list(fixes)

    class Emb:
        vectors = 2

    a = [Chunk([1, 2, 3]), Chunk([1, 4, 3])]
    assert same_tokens(a, [Chunk([1, 2, 3]), Chunk([1, 4, 3])]) is None
    assert same_tokens(a, a[:1]) == "2 and 1 chunks of 77 tokens"
    assert same_tokens(a, [Chunk([1, 2, 3]), Chunk([1, 5, 3])]) == "token 78: ids [4, 3] and [5, 3]"
    assert "embeddings of chunk 0" in same_tokens([Chunk([1, 0, 0], [(0, Emb())])], [Chunk([1, 0, 0])])


@pytest.mark.parametrize("variant", ["sd1", "sdxl"])
def test_refiner_inside_the_window(webui, variant):
    """The refiner takes over during A-STAR's window: the note names it and the step, A-STAR corrected the base
    model's steps only, and no hook is left on either model."""
    if variant == "sdxl":
        base = webui.make_model("sdxl", use=True)
        refiner = webui.add_refiner(variant="sdxl")
    else:
        base = webui.shared.sd_model
        refiner = webui.add_refiner()
    result = run(webui, on(), steps=10, refiner_checkpoint=refiner.sd_checkpoint_info.title, refiner_switch_at=0.2)
    keys = astar_keys(result.processed)
    assert webui.shared.sd_model is refiner
    note = re.search(r"first pass: the refiner 'tiny-refiner' took over at step (\d+) of 10, inside A-STAR's window "
                     r"of 5 steps: A-STAR corrected the base model's steps only", keys["A-STAR notes"])
    assert note, keys
    assert 1 <= int(note.group(1)) < 5 and keys["A-STAR passes"] == note.group(1)
    assert hook_count(base.model) == 0 and hook_count(refiner.model) == 0


def test_refiner_after_the_window(webui):
    refiner = webui.add_refiner()
    result = run(webui, on(), steps=10, refiner_checkpoint=refiner.sd_checkpoint_info.title, refiner_switch_at=0.8)
    keys = astar_keys(result.processed)
    assert re.search(r"the refiner 'tiny-refiner' took over at step \d+ of 10, after A-STAR's window of 5 steps: "
                     r"A-STAR ran on the base model only", keys["A-STAR notes"]), keys
    assert keys["A-STAR passes"] == "5"


def test_refiner_weights_loaded_into_the_same_model_object(webui, monkeypatch):
    """The WebUI loads a refiner of the same architecture into the loaded model object when it can; the checkpoint
    then changes and the model object does not."""
    from modules import sd_models

    base = webui.shared.sd_model
    refiner = webui.add_refiner()

    original = sd_models.reload_model_weights

    def load_into_same_object(sd_model=None, info=None, forced_reload=False):
        if info is None or info is base.sd_checkpoint_info:
            return original(sd_model, info, forced_reload)
        base.sd_model_checkpoint = info.filename
        base.sd_checkpoint_info = info
        return base

    monkeypatch.setattr(sd_models, "reload_model_weights", load_into_same_object)
    result = run(webui, on(), steps=10, refiner_checkpoint=refiner.sd_checkpoint_info.title, refiner_switch_at=0.2)
    keys = astar_keys(result.processed)
    assert webui.shared.sd_model is base and "took over at step" in keys["A-STAR notes"], keys
    assert int(keys["A-STAR passes"]) < 5


def test_refiner_in_both_passes_of_hires_fix(webui):
    """The WebUI reloads the base model before the hires pass; the refiner takes over again in it (here at its last
    call): both passes say so, and the hires pass was corrected on the base model."""
    refiner = webui.add_refiner()
    loaded = []
    webui.shared.opts.data["hires_fix_refiner_pass"] = "both passes"
    webui.start(SCRIPT)
    webui.script_callbacks.on_model_loaded(lambda m: loaded.append(m))
    try:
        result = run(webui, on(hires=True), steps=10, refiner_checkpoint=refiner.sd_checkpoint_info.title,
                     refiner_switch_at=0.8, enable_hr=True, hr_scale=1.5, hr_second_pass_steps=4,
                     denoising_strength=0.6)
    finally:
        webui.shared.opts.data.pop("hires_fix_refiner_pass", None)
    keys = astar_keys(result.processed)
    assert loaded == [refiner, webui.sd_model, refiner]
    notes = keys["A-STAR notes"]
    assert re.search(r"first pass: the refiner 'tiny-refiner' took over at step \d+ of 10, after", notes), keys
    assert re.search(r"hires pass: the refiner 'tiny-refiner' took over at step \d+ of \d+", notes), keys
    assert "A-STAR hires overlap" in keys and "A-STAR skipped" not in keys
