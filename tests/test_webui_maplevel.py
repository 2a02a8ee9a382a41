"""The ``astar_map_level`` setting (image/32, the paper's and the default; image/16) through the A-STAR script in the
STAND-INs of WebUI 1.10.1, Forge main and Forge Classic: which layers are captured, the map size, the infotext and
its paste, ``override_settings``, the layer setting at image/16, layouts and heatmaps, and the reasons given when the
level cannot be used.

The expected layers and sizes are read off the tiny models' architecture by hand (``astar_ext/bench/tiny.py``):
SD 1.x layout, ``channel_mult (1, 2, 2, 2)``, two res-blocks per level, spatial transformers at ``ds`` 1, 2, 4.
``input_blocks`` 1-2 / 4-5 / 7-8 hold the transformers of levels 0 / 1 / 2 (0, 3, 6, 9 are the input convolution
and the downsamplers); ``output_blocks`` 3-5 / 6-8 / 9-11 those of levels 2 / 1 / 0 (0-2: level 3, none); the
middle block is at level 3. A 256 px image is a 32x32 latent: 8x8 maps at level 2, 16x16 at level 1. The tiny SDXL
layout has transformers of depth 2 at level 1 (``input_blocks`` 4-5, ``output_blocks`` 3-5: 10 layers, 6 of them
in the decoder).
"""

from __future__ import annotations

import numpy as np

from tests.conftest import SCRIPT, astar_keys, hook_count, on, run
from tests.test_forge_script import line  # noqa: F401  (fixture: the stand-ins of Forge main and Forge Classic)

ATTN = ".1.transformer_blocks.0.attn2"
LEVEL2 = [f"input_blocks.{i}{ATTN}" for i in (7, 8)] + [f"output_blocks.{i}{ATTN}" for i in (3, 4, 5)]
LEVEL1 = [f"input_blocks.{i}{ATTN}" for i in (4, 5)] + [f"output_blocks.{i}{ATTN}" for i in (6, 7, 8)]
FINE = {"astar_map_level": "image/16"}


def first_run(result):
    return result.p.astar_state.runs[0]


def map_side(result) -> tuple[int, int]:
    """The side of the maps of the first corrected step (heatmap data: the maps the controller computed)."""
    data = first_run(result).heatmap_data(0)
    return tuple(data["maps"]["cat"]["first step"].shape)


def test_the_setting_is_registered_next_to_the_layer_setting(webui):
    webui.start(SCRIPT)
    labels = webui.shared.opts.data_labels
    info = labels["astar_map_level"]
    assert info.default == "image/32" and info.component_args == {"choices": ["image/32", "image/16"]}
    assert info.infotext == "A-STAR maps" and info.section == ("astar", "A-STAR")
    keys = list(labels)
    assert keys.index("astar_layers") == keys.index("astar_map_level") + 1


def test_default_is_the_papers_level_and_unchanged(webui):
    default = run(webui, on(heatmaps=True), seed=3)
    assert first_run(default).controller.capture.layers == LEVEL2
    assert map_side(default) == (8, 8)
    keys = astar_keys(default.processed)
    assert "A-STAR maps" not in keys and keys["A-STAR passes"] == "3"
    explicit = run(webui, on(heatmaps=True), seed=3, override_settings={"astar_map_level": "image/32"})
    assert "A-STAR maps" not in astar_keys(explicit.processed)
    assert explicit.processed.images[0].tobytes() == default.processed.images[0].tobytes()


def test_image16_through_override_settings_captures_the_level_1_layers(webui):
    coarse = run(webui, on(heatmaps=True), api=True, seed=3)
    fine = run(webui, on(heatmaps=True), api=True, seed=3, override_settings=dict(FINE))
    assert first_run(fine).controller.capture.layers == LEVEL1
    assert map_side(fine) == (16, 16)  # twice the side of image/32's 8x8
    keys = astar_keys(fine.processed)
    assert keys["A-STAR maps"] == "image/16" and keys["A-STAR passes"] == "3"
    assert not {"A-STAR skipped", "A-STAR error", "A-STAR layers"} & set(keys), keys
    assert fine.processed.images[0].tobytes() != coarse.processed.images[0].tobytes()
    assert webui.shared.opts.astar_map_level == "image/32"  # restored after the job
    assert hook_count(webui.shared.sd_model.model) == 0


def test_the_infotext_pastes_back_as_an_override_setting(webui):
    """The WebUI restores a setting from an infotext through the option's ``infotext`` name (Override settings);
    generating with what the paste gives makes the same image."""
    from modules import infotext_utils

    fine = run(webui, on(), seed=4, override_settings=dict(FINE)).processed
    params = infotext_utils.parse_generation_parameters(fine.infotexts[0])
    assert infotext_utils.get_override_settings(params) == [("A-STAR maps", "astar_map_level", "image/16")]
    override = infotext_utils.create_override_settings_dict(["A-STAR maps: image/16"])
    assert override == FINE
    again = run(webui, on(), seed=4, override_settings=override).processed
    assert again.images[0].tobytes() == fine.images[0].tobytes()
    plain = run(webui, on(), seed=4).processed
    params = infotext_utils.parse_generation_parameters(plain.infotexts[0])
    assert not [s for _, s, _ in infotext_utils.get_override_settings(params) if s.startswith("astar")]


def test_a_layout_at_image16_gets_the_finer_region_grid(webui):
    """The cat's box is the left half, the dog's the right: on the 16x16 grid 8 columns each, on 8x8 4 each."""
    layout = "cat 0 0 0.5 1; dog 0.5 0 1 1"
    for settings, side in (({}, 8), (dict(FINE), 16)):
        result = run(webui, on(layout=layout, heatmaps=True), seed=5, override_settings=settings)
        data = first_run(result).heatmap_data(0)
        want_cat = np.zeros((side, side), bool)
        want_cat[:, : side // 2] = True
        assert np.array_equal(data["regions"]["cat"], want_cat)
        assert np.array_equal(data["regions"]["dog"], ~want_cat)
        assert data["maps"]["dog"]["end of window"].shape == (side, side)
        keys = astar_keys(result.processed)
        assert set(keys["A-STAR layout fit"].replace(",", "").split()[::2]) == {"cat", "dog"}
        processed = result.processed
        assert len(processed.images) == processed.index_of_first_image + 2  # the image and its heatmap picture


def test_layer_setting_at_image16(webui):
    opts = webui.shared.opts
    opts.data["astar_layers"] = "up"
    try:
        webui.make_model("sdxl", use=True)
        result = run(webui, on(), override_settings=dict(FINE))
        keys = astar_keys(result.processed)
        assert keys["A-STAR layers"] == "up, 6 of the 10 image/16 layers" and keys["A-STAR passes"] == "3", keys
        layers = first_run(result).controller.capture.layers
        assert layers == [f"output_blocks.{i}.1.transformer_blocks.{d}.attn2" for i in (3, 4, 5) for d in (0, 1)]
        webui.make_model("sd1", name="sd1-again.safetensors", use=True)
        opts.data["astar_layers"] = "mid"  # SD 1.x's middle block is at image/64
        result = run(webui, on(), override_settings=dict(FINE))
        keys = astar_keys(result.processed)
        assert ("no cross-attention layer in 'mid' at level 1 (image/16; parts with layers there: down, up)"
                in keys["A-STAR skipped"]) and "A-STAR passes" not in keys
        assert len(result.processed.images) == 1 and hook_count(webui.shared.sd_model.model) == 0
    finally:
        opts.data.pop("astar_layers", None)


def test_a_model_without_attention_at_image16_is_skipped_with_the_reason(webui):
    from astar_ext.bench.tiny import TinyConfig, TinyLDM

    webui.make_model("sd1", name="coarse-only.safetensors", tiny=TinyLDM(TinyConfig(attention_resolutions=(4,))),
                     use=True)
    result = run(webui, on(), override_settings=dict(FINE))
    keys = astar_keys(result.processed)
    assert "first pass: this UNet has no cross-attention layer in 'all' at level 1 (image/16; parts with layers " \
           "there: none)" in keys["A-STAR skipped"], keys
    assert keys["A-STAR maps"] == "image/16" and len(result.processed.images) == 1
    assert astar_keys(run(webui, on()).processed)["A-STAR passes"] == "3"  # image/32 works on it


def test_an_unknown_value_turns_astar_off_with_a_message_and_the_image_is_made(webui):
    plain = webui.run_txt2img([], None, prompt="a cat and a dog", steps=6, seed=2).processed
    result = run(webui, on(), api=True, seed=2, override_settings={"astar_map_level": "image/8"})
    keys = astar_keys(result.processed)
    assert keys["A-STAR skipped"] == "setting astar_map_level: unknown map resolution 'image/8': use image/32 or " \
                                     "image/16", keys
    assert "A-STAR passes" not in keys
    assert result.processed.images[0].tobytes() == plain.images[0].tobytes()


def test_image16_on_both_forge_lines(line):  # noqa: F811
    unet = line.shared.sd_model.forge_objects.unet.model.diffusion_model
    coarse = run(line, on(heatmaps=True), seed=3)
    fine = run(line, on(heatmaps=True), seed=3, override_settings=dict(FINE))
    assert first_run(coarse).controller.capture.layers == LEVEL2 and map_side(coarse) == (8, 8)
    assert first_run(fine).controller.capture.layers == LEVEL1 and map_side(fine) == (16, 16)
    keys = astar_keys(fine.processed)
    assert keys["A-STAR maps"] == "image/16" and keys["A-STAR passes"] == "3"
    assert not {"A-STAR skipped", "A-STAR error"} & set(keys), keys
    assert "A-STAR maps" not in astar_keys(coarse.processed)
    assert hook_count(unet) == 0


def test_the_hires_pass_uses_the_same_level(webui):
    """Hires fix at 1.5x: the second pass's latent is 48x48, so its image/16 maps are 24x24 (image/32: 12x12)."""
    extra = dict(enable_hr=True, hr_scale=1.5, hr_second_pass_steps=4, denoising_strength=0.6)
    result = run(webui, on(hires=True, heatmaps=True), override_settings=dict(FINE), **extra)
    first, hires = result.p.astar_state.runs
    assert hires.label == "hires pass" and hires.controller.capture.layers == LEVEL1
    assert tuple(first.heatmap_data(0)["maps"]["cat"]["first step"].shape) == (16, 16)
    assert tuple(hires.heatmap_data(0)["maps"]["cat"]["first step"].shape) == (24, 24)
    assert "A-STAR hires overlap" in astar_keys(result.processed)
