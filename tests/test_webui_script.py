"""The A-STAR script inside the STAND-IN of WebUI 1.10.1 (tests/standin/webui), driven in the WebUI's call order.

The stand-in runs the real k-diffusion samplers through a CFG denoiser around the tiny ldm model, with
``tokenize_line``-style chunks from the real CLIP vocabulary. ``scripts/astar.py`` is loaded as the WebUI
loads extension scripts, so its callback registration is exercised too.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import SCRIPT, astar_keys, hook_count, on, run, sampler_local_x_is

FIRST_ORDER = ["Euler", "Euler a", "LMS", "DPM++ 2M", "DPM++ 2M SDE", "DPM++ 3M SDE", "LCM", "DDIM", "DDIM CFG++"]
SECOND_ORDER = ["Heun", "DPM2", "DPM2 a", "DPM++ SDE", "DPM++ 2S a"]
REFUSED = ["UniPC", "Restart", "DPM fast", "DPM adaptive"]



def no_hooks_left(webui) -> bool:
    return hook_count(webui.shared.sd_model.model) == 0


def test_ui_fields_follow_the_params_table(webui):
    from astar_ext import params as P

    webui.start(SCRIPT)
    for is_img2img in (False, True):
        script = webui.script("A-STAR", is_img2img)
        assert script.title() == "A-STAR"
        runner = webui.scripts.scripts_img2img if is_img2img else webui.scripts.scripts_txt2img
        comps = runner.inputs[script.args_from:script.args_to]
        assert len(comps) == len(P.FIELDS)
        assert comps[0].value is False  # closed and off by default
        assert [c.label for c in comps[1:]] == [f.label for f in P.FIELDS[1:]]
        plain = [i for i, f in enumerate(P.FIELDS) if f.name not in ("enabled", "layout", "layout_weight")]
        assert [script.infotext_fields[i][1] for i in plain] == [P.FIELDS[i].infotext for i in plain]
        assert script.paste_field_names == [f.infotext for f in P.FIELDS]


def test_off_by_default_and_bit_identical_to_no_extension(webui):
    plain, _ = webui.run_txt2img([], None, prompt="a cat and a dog", steps=6)
    default, _ = run(webui)
    assert astar_keys(default) == {}
    astar, _ = run(webui, on())
    assert astar_keys(astar)["A-STAR passes"] == "3"
    again, _ = run(webui, [False, "cat, dog"])
    for img in (default.images[0], again.images[0]):
        assert img.tobytes() == plain.images[0].tobytes()
    assert astar.images[0].tobytes() != plain.images[0].tobytes()
    assert no_hooks_left(webui)


def test_positional_list_dict_and_words_or_positions(webui):
    processed, calls = run(webui, [True, "cat, dog", 20.0, 0.5])
    keys = astar_keys(processed)
    assert keys["A-STAR concepts"] == "cat, dog" and keys["A-STAR passes"] == "3"
    before, after = (float(v) for v in keys["A-STAR overlap"].split("->"))
    assert 0 <= before <= 0.5 and 0 <= after <= 0.5
    processed, _ = run(webui, [{"concepts": ["cat", 5], "iterations": 2}], api=True)
    keys = astar_keys(processed)
    assert keys["A-STAR concepts"] == "cat, #5" and keys["A-STAR passes"] == "6"
    assert no_hooks_left(webui)


@pytest.mark.parametrize("args, field", [
    ([{"enabled": True, "concepts": "cat, dog", "scale": "big"}], "scale"),
    ([{"enable": True}], "enable"),
    ([True, "cat, dog", 20.0, 7.0], "window"),
    ([True, "cat, #x"], "concepts"),
])
def test_bad_arguments_turn_astar_off_and_the_image_is_still_made(webui, args, field):
    processed, _ = run(webui, args, api=True)
    assert len(processed.images) == 1
    keys = astar_keys(processed)
    assert field in keys["A-STAR error"] and "A-STAR passes" not in keys


@pytest.mark.parametrize("sampler", FIRST_ORDER + SECOND_ORDER + ["PLMS"])
def test_the_correction_is_made_on_the_samplers_own_latent(webui, monkeypatch, sampler):
    """The tensor A-STAR corrects in place is the sampler function's own ``x`` at that moment, at every
    corrected step, so the sampler steps from the corrected latent (the correction persists)."""
    from astar_ext.controller import AStarController
    from astar_ext.samplers import plan_for

    seen = []
    original = AStarController.step

    def spy(self, x, sigma, step, layout, denoise_fn):
        before = x.clone()
        record = original(self, x, sigma, step, layout, denoise_fn)
        func = webui.sd_samplers.find_sampler_config(sampler).constructor(webui.shared.sd_model).funcname
        # the sampler function's frame (the stand-in's DDIM runs its loop in a helper, _ddim_loop)
        names = {func if isinstance(func, str) else func.__name__, "_ddim_loop"}
        seen.append((step, sampler_local_x_is(x, names), not torch.equal(before, x)))
        return record

    monkeypatch.setattr(AStarController, "step", spy)
    processed, _ = run(webui, on(window=1.0), sampler_name=sampler, steps=5)
    keys = astar_keys(processed)
    assert "A-STAR skipped" not in keys and "A-STAR notes" not in keys, keys
    plan = plan_for(webui.sd_samplers.find_sampler_config(sampler).constructor(webui.shared.sd_model).func)
    assert [s for s, _, _ in seen] == list(range(len(seen))) and len(seen) >= 4
    assert all(own for _, own, _ in seen), seen
    assert all(moved for _, _, moved in seen), seen
    assert not isinstance(plan, str)
    assert no_hooks_left(webui)


@pytest.mark.parametrize("sampler", ["Euler", "DDIM"])
def test_in_place_correction_equals_restarting_from_the_corrected_latent(webui, monkeypatch, sampler):
    """First-order samplers without history: correcting at step k in place gives exactly the result of
    running the sampler from the corrected latent from step k on."""
    from astar_ext.controller import AStarController

    saved = {}
    original = AStarController.step

    def once(self, x, sigma, step, layout, denoise_fn):
        if step != 1:
            return None
        record = original(self, x, sigma, step, layout, denoise_fn)
        saved["x"] = x.clone()
        return record

    monkeypatch.setattr(AStarController, "step", once)
    guided, _ = run(webui, on(window=1.0), sampler_name=sampler, steps=5)
    assert "x" in saved
    # restart: a plain run whose denoiser, at step 1, is handed the saved latent instead
    cfg = {}

    def swap(module, args, kwargs):
        if module.step == 1 and "done" not in cfg:
            args[0].copy_(saved["x"])
            cfg["done"] = True

    monkeypatch.setattr(AStarController, "step", original)
    from modules import sd_samplers

    made = sd_samplers.create_sampler

    def create(name, model):
        s = made(name, model)
        s.model_wrap_cfg.register_forward_pre_hook(swap, with_kwargs=True)
        return s

    monkeypatch.setattr(sd_samplers, "create_sampler", create)
    restarted, _ = webui.run_txt2img([], None, prompt="a cat and a dog", sampler_name=sampler, steps=5)
    assert guided.images[0].tobytes() == restarted.images[0].tobytes()


@pytest.mark.parametrize("sampler", REFUSED)
def test_refused_samplers_say_why_and_the_image_is_made(webui, sampler):
    processed, _ = run(webui, on(), sampler_name=sampler, steps=5)
    keys = astar_keys(processed)
    assert "not supported" in keys["A-STAR skipped"]
    assert len(processed.images) == 1 and no_hooks_left(webui)


def test_every_schedule_type(webui):
    from astar_ext.schedule import Schedule

    schedulers = [s.label for s in webui.sd_schedulers.schedulers if s.label != "Automatic"]
    assert len(schedulers) >= 4
    for label in schedulers:
        result = run(webui, on(), scheduler=label, steps=6)
        keys = astar_keys(result.processed)
        steps = result.p.astar_state.runs[0].schedule.steps  # some schedule types add a step (DDIM: 7)
        assert steps in (6, 7)
        assert keys.get("A-STAR passes") == str(Schedule(steps).optimised_steps), (label, keys)


def test_sd2_v_prediction_and_sdxl(webui):
    webui.make_model("sd2", use=True)
    keys = astar_keys(run(webui, on()).processed)
    assert keys["A-STAR passes"] == "3"
    webui.make_model("sdxl", use=True)
    keys = astar_keys(run(webui, on()).processed)
    assert keys["A-STAR passes"] == "3" and "A-STAR skipped" not in keys  # more in test_webui_sdxl.py
    webui.make_model("sd1", name="again.safetensors", use=True)
    assert astar_keys(run(webui, on()).processed)["A-STAR passes"] == "3"


@pytest.mark.parametrize("prompt", [
    "a (cat:1.3) and a [dog]",
    "a cat AND a dog",
    "a cat BREAK a dog",
    "a cat, " + ", ".join(["tall green grass field"] * 20) + ", a dog",
    "a cat and a dog <lora:nothing:0.8>",
    "[a cat and a dog:a house:5]",
])
def test_token_mapping(webui, prompt):
    keys = astar_keys(run(webui, on(), prompt=prompt, steps=8).processed)
    assert "A-STAR skipped" not in keys and "A-STAR warnings" not in keys, keys
    assert keys["A-STAR passes"] == "4"
    assert "->" in keys["A-STAR overlap"]  # both concepts were present in one image


def test_prompt_editing_uses_the_text_of_each_step(webui, monkeypatch):
    from astar_ext.controller import AStarController

    labels_valid = []
    original = AStarController.step

    def spy(self, x, sigma, step, layout, denoise_fn):
        labels_valid.append(layout.image_valid.tolist())
        return original(self, x, sigma, step, layout, denoise_fn)

    monkeypatch.setattr(AStarController, "step", spy)
    keys = astar_keys(run(webui, on(window=1.0), prompt="a [cat:bird:3] and a dog", steps=6).processed)
    assert labels_valid[:4] == [[[True, True]]] * 4  # steps 0..3 ("until step 3"): "a cat and a dog"
    assert labels_valid[4:] == [[[False, True]]] * 2  # then "a bird and a dog"
    assert "'cat' is not in the prompt" in keys["A-STAR warnings"]


def test_embeddings_missing_words_and_batches_of_different_prompts(webui):
    from tests.standin.prompt import Embedding

    webui.make_model("sd1", name="emb.safetensors", embeddings=[Embedding("mystyle", 2)], use=True)
    keys = astar_keys(run(webui, on("mystyle, dog"), prompt="a cat in mystyle and a dog").processed)
    assert keys["A-STAR passes"] == "3" and "A-STAR warnings" not in keys
    keys = astar_keys(run(webui, on("cat, horse")).processed)
    assert "'horse' is not in the prompt" in keys["A-STAR warnings"]
    prompts = ["a cat and a dog", "a cat and a bird"] * 2
    processed, _ = run(webui, on(), prompt=prompts, batch_size=2, n_iter=2)
    first = processed.index_of_first_image
    assert len(processed.images) == first + 4
    for i in range(4):
        keys = astar_keys(processed, first + i)
        assert "'dog' is not in the prompt of image 2 of the batch" in keys["A-STAR warnings"]
        assert keys["A-STAR passes"] == "3"


def test_infotext_pastes_back_every_field(webui):
    from astar_ext import params as P

    processed, _ = run(webui, on(scale=12.5, window=0.3, seg_weight=2.0, ret_weight=0.5, iterations=2,
                                 mask_threshold=0.4, hires=True))
    text = processed.infotexts[0]
    updates = dict(webui.paste(text))
    script = webui.script("A-STAR")
    comps = webui.scripts.scripts_txt2img.inputs[script.args_from:script.args_to]
    values = [updates[c]["value"] for c in comps]
    assert P.from_args(values) == P.AStarParams(True, "cat, dog", 12.5, 0.3, 2.0, 0.5, 2, 0.4, True)
    plain, _ = run(webui)
    updates = dict(webui.paste(plain.infotexts[0]))
    assert updates[comps[0]]["value"] is False  # pasting a plain image's parameters turns A-STAR off


def test_hires_fix_first_pass_only_by_default(webui):
    extra = dict(enable_hr=True, hr_scale=1.5, hr_second_pass_steps=4, denoising_strength=0.6)
    keys = astar_keys(run(webui, on(), **extra).processed)
    assert "A-STAR overlap" in keys and "A-STAR hires overlap" not in keys
    keys = astar_keys(run(webui, on(hires=True), **extra).processed)
    assert "A-STAR hires overlap" in keys
    assert int(keys["A-STAR passes"]) == 3 + 2
    assert no_hooks_left(webui)


def test_img2img_window_starts_where_denoising_starts(webui):
    latent = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    processed, _ = webui.run_img2img(SCRIPT, on(), prompt="a cat and a dog", steps=10, denoising_strength=0.6,
                                     init_latent=latent)
    assert astar_keys(processed)["A-STAR passes"] == "4"  # t_enc + 1 = 7 steps run; half of them


def test_an_error_in_the_loss_pass_leaves_the_image_and_no_hook(webui, monkeypatch):
    from astar_ext.controller import AStarController

    def boom(self, *a, **k):
        raise RuntimeError("synthetic failure")

    monkeypatch.setattr(AStarController, "step", boom)
    processed, _ = run(webui, on())
    keys = astar_keys(processed)
    assert "synthetic failure" in keys["A-STAR error"] and len(processed.images) == 1
    assert no_hooks_left(webui)


def test_interrupt_during_the_correction_stops_promptly(webui, monkeypatch):
    from astar_ext.controller import AStarController

    passes = []
    original = AStarController.step

    def interrupting(self, x, sigma, step, layout, denoise_fn):
        record = original(self, x, sigma, step, layout, denoise_fn)
        passes.append(record.passes)
        webui.shared.state.interrupted = True
        return record

    monkeypatch.setattr(AStarController, "step", interrupting)
    processed, _ = run(webui, on(iterations=5, window=1.0), steps=10)
    assert passes == [5]  # the pass in flight finished; no later step ran
    assert len(processed.images) == 1 and no_hooks_left(webui)


def test_unsupported_hosts_and_modes_are_refused(webui):
    shared = webui.shared
    shared.cmd_opts.lowvram = True
    try:
        assert "--lowvram" in astar_keys(run(webui, on()).processed)["A-STAR skipped"]
    finally:
        shared.cmd_opts.lowvram = False
    from modules import sd_unet

    sd_unet.current_unet = object()
    try:
        assert "replaced UNet" in astar_keys(run(webui, on()).processed)["A-STAR skipped"]
    finally:
        sd_unet.current_unet = None
    import sys
    import types

    sys.modules["modules_forge"] = types.ModuleType("modules_forge")  # what Forge's WebUI has
    try:
        assert "Forge" in astar_keys(run(webui, on()).processed)["A-STAR skipped"]
    finally:
        del sys.modules["modules_forge"]
    shared.native = True  # SD.Next's flag for its diffusers backend
    try:
        assert "SD.Next" in astar_keys(run(webui, on()).processed)["A-STAR skipped"]
    finally:
        del shared.native
    shared.sd_model.is_sd3 = True
    try:
        assert "SD3" in astar_keys(run(webui, on()).processed)["A-STAR skipped"]
    finally:
        shared.sd_model.is_sd3 = False
    assert astar_keys(run(webui, on()).processed)["A-STAR passes"] == "3"


def test_medvram_keeps_working(webui):
    webui.shared.cmd_opts.medvram = True
    try:
        webui.make_model("sd1", name="medvram.safetensors", use=True)
        assert astar_keys(run(webui, on()).processed)["A-STAR passes"] == "3"
    finally:
        webui.shared.cmd_opts.medvram = False


def test_xyz_axes_and_settings(webui):
    webui.start(SCRIPT)
    labels = [o.label for o in webui.xyz.axis_options]
    assert "[A-STAR] Step size" in labels and "[A-STAR] Concepts" in labels
    assert "[A-STAR] Enable A-STAR" not in labels
    processed, _ = webui.run_xyz(SCRIPT, x=("[A-STAR] Step size", "0, 30"), prompt="a cat and a dog", steps=4)
    cells = [result for _, result in processed.xyz_cells]
    scales = sorted(astar_keys(c)["A-STAR scale"] for c in cells)
    assert scales == ["0.0", "30.0"]
    options = webui.shared.opts.data_labels
    assert "astar_default_scale" in options and "astar_mask_method" in options
    webui.shared.opts.data["astar_default_scale"] = 7.5
    webui.start(SCRIPT)
    script = webui.script("A-STAR")
    comps = webui.scripts.scripts_txt2img.inputs[script.args_from:script.args_to]
    assert comps[2].value == 7.5


def test_reloading_does_not_duplicate_callbacks(webui):
    webui.start(SCRIPT)
    cb = webui.script_callbacks
    count = sum(len(v) for v in cb.callback_map.values())
    webui.load_script(SCRIPT)  # "Reload custom script bodies": re-executes without clearing callbacks
    webui.load_script(SCRIPT)
    assert sum(len(v) for v in cb.callback_map.values()) == count
    webui.start(SCRIPT)  # "Reload UI": callbacks cleared and registered again
    assert sum(len(v) for v in cb.callback_map.values()) == count
    cb.script_unloaded_callback()
    assert no_hooks_left(webui)


def test_heatmaps_follow_the_outputs_with_their_own_infotexts(webui):
    processed, _ = run(webui, on(heatmaps=True), batch_size=2, seed=5)
    first = processed.index_of_first_image
    outputs = processed.images[first:first + 2]
    extra = processed.images[first + 2:]
    assert len(extra) == 2
    assert len(processed.infotexts) == len(processed.images)
    for i, pic in enumerate(extra):
        assert pic.width > outputs[i].width  # three tiles and a colour scale
        text = processed.infotexts[first + 2 + i]
        assert text.startswith(processed.infotexts[first + i]) and "A-STAR heatmap" in text
        assert pic.info["parameters"] == text  # what the API's PNG and PNG Info show
    no_maps, _ = run(webui, on(), batch_size=2, seed=5)
    assert len(no_maps.images) == len(processed.images) - 2
    assert [im.tobytes() for im in no_maps.images[first:first + 2]] == [im.tobytes() for im in outputs]


def test_diagnostics_per_pair_and_retention(webui):
    keys = astar_keys(run(webui, on("cat, dog, bird"), prompt="a cat and a dog and a bird").processed)
    pairs = keys["A-STAR pairs"].split("; ")
    assert [p.split(" ")[0] for p in pairs] == ["cat/dog", "cat/bird", "dog/bird"]
    for p in pairs:
        before, after = p.split(" ", 1)[1].split(" -> ")
        assert 0 <= float(before) <= 0.5 and 0 <= float(after) <= 0.5
    ious = dict(x.split(" ") for x in keys["A-STAR retention IoU"].split(", "))
    assert set(ious) == {"cat", "dog", "bird"} and all(0 <= float(v) <= 1 for v in ious.values())
    assert float(keys["A-STAR time"].split(" ")[0]) > 0
