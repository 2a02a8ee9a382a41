"""Tests of the stand-in WebUI 1.10.1 (``tests/standin/webui``) against the host behaviour documented in
``webui-host.md`` (§1.3 hook order, §1.4/§6 script args, §1.5 infotext, §2 callbacks, §3 denoising loop, §9 hires).

Generations use 64x64 px (8x8 latents) and 2-4 steps to keep the suite fast on a shared CPU.
"""

from __future__ import annotations

import ast
import functools
import os
import sys

import pytest
import torch

SMALL = dict(width=64, height=64)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The tiny UNet is much faster single-threaded on a busy 2-core host."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_script(webui, title="Probe", hooks=True, section=None):
    """An always-on script with an InputAccordion (enable) and a slider; overrides every processing hook."""
    import gradio as gr
    from modules import scripts
    from modules.infotext_utils import PasteField
    from modules.ui_components import InputAccordion

    class Probe(scripts.Script):
        create_group = False

        def title(self):
            return title

        def show(self, is_img2img):
            return scripts.AlwaysVisible

        def ui(self, is_img2img):
            self.ui_calls = getattr(self, "ui_calls", 0) + 1
            with InputAccordion(False, label=title) as enabled:
                strength = gr.Slider(0, 10, value=3, step=1, label="strength")
                mode = gr.Dropdown(["a", "b"], value="a", label="mode")
            self.infotext_fields = [PasteField(enabled, title, api="enabled"),
                                    PasteField(strength, f"{title} strength", api="strength"),
                                    (mode, lambda params: params.get(f"{title} mode"))]
            self.paste_field_names = [title]
            return [enabled, strength, mode]

    Probe.section = section
    if hooks:
        for name in ("setup", "before_process", "process", "before_process_batch", "after_extra_networks_activate",
                     "process_batch", "process_before_every_sampling", "before_hr", "post_sample",
                     "postprocess_batch", "postprocess_batch_list", "postprocess_image", "postprocess_maskoverlay",
                     "postprocess_image_after_composite", "postprocess"):
            setattr(Probe, name, lambda self, p, *args, **kwargs: None)
    return Probe


# --------------------------------------------------------------------------------------------------------------------
# package / fixture


def test_every_standin_module_says_what_it_imitates():
    root = os.path.join(os.path.dirname(__file__), "standin", "webui")
    for folder in ("modules", "modules/api", "modules/processing_scripts", "scripts"):
        for name in os.listdir(os.path.join(root, folder)):
            if not name.endswith(".py") or name == "__init__.py":
                continue
            with open(os.path.join(root, folder, name), encoding="utf8") as f:
                doc = ast.get_docstring(ast.parse(f.read())) or ""
            assert "STAND-IN" in doc, name
            stem = name[:-3]
            assert f"{folder}/{name}" in doc or f"``{stem}" in doc or f"{stem}.py" in doc, name


def test_fixture_installs_and_restores_modules(tiny):
    from tests.standin.webui.harness import STANDIN_ROOT, WebUI

    sentinel = type(sys)("modules")
    sys.modules["modules"] = sentinel
    try:
        handle = WebUI(tiny).install()
        import modules.shared

        assert modules.shared.__file__.startswith(STANDIN_ROOT)
        assert modules.shared.sd_model is handle.sd_model and handle.sd_model.is_sd1
        handle.uninstall()
        assert sys.modules["modules"] is sentinel
        assert not [k for k in sys.modules if k.startswith("modules.")]
        assert STANDIN_ROOT not in sys.path
    finally:
        sys.modules.pop("modules", None)


# --------------------------------------------------------------------------------------------------------------------
# scripts: UI, args, hook order


def test_ui_layout_and_args_slices(webui):
    Probe = make_script(webui)
    Other = make_script(webui, title="Other", hooks=False, section="accordions")
    runner = webui.start(Probe, Other)

    probe, xyz = webui.script(Probe), webui.script("X/Y/Z plot")
    slots = {s.title(): (s.args_from, s.args_to) for s in runner.scripts}
    # UI categories in order: sampler, accordions (extension scripts before the built-in Refiner), seed, ..., then
    # the scripts area: section-None always-on scripts, the dropdown (inputs[0]), the selectable scripts
    assert slots == {"Sampler": (1, 4), "Other": (4, 7), "Refiner": (7, 10), "Seed": (10, 16), "Probe": (16, 19),
                     "Comments": (19, 19), "X/Y/Z plot": (19, 37)}
    assert [s.title() for s in runner.alwayson_scripts] == ["Probe", "Other", "Comments", "Refiner", "Sampler", "Seed"]
    assert not xyz.alwayson and runner.selectable_scripts == [xyz]
    assert probe.name == "probe" and probe.api_info.args[1].maximum == 10
    assert probe.elem_id("x") == "script_txt2img_probe_x"
    assert runner.paste_field_names == ["Other", "Probe"]
    assert webui.ui_args(runner)[:8] == [0, 20, "DPM++ 2M", "Automatic", False, 3, "a", False]
    # without the built-in scripts the first always-on script starts right after the dropdown slot
    webui.start(Probe, builtin_scripts=False)
    assert (webui.script(Probe).args_from, webui.script(Probe).args_to) == (1, 4)
    # img2img has its own instances and indices
    assert webui.script(Probe, is_img2img=True) is not webui.script(Probe)
    assert webui.script(Probe, is_img2img=True).is_img2img

    # the xyz module is reachable the way extensions look it up
    data = [x for x in webui.scripts.scripts_data if x.script_class.__module__ == "xyz_grid.py"][0]
    assert data.module is webui.xyz and hasattr(data.module, "AxisOption")


def test_txt2img_hook_order_args_and_kwargs(webui):
    Probe = make_script(webui)
    run = webui.run_txt2img(Probe, args=[True, 7], prompt="a cat <lora:thing:0.5>", batch_size=2, n_iter=2, steps=2,
                            **SMALL)
    per_batch = ["before_process_batch", "after_extra_networks_activate", "process_batch",
                 "process_before_every_sampling", "post_sample", "postprocess_batch", "postprocess_batch_list"]
    per_image = ["postprocess_image", "postprocess_maskoverlay", "postprocess_image_after_composite"]
    expected = ["setup", "before_process", "process"] + (per_batch + per_image * 2) * 2 + ["postprocess"]
    assert run.hooks(Probe) == expected
    # built-in scripts are dispatched too, after the extension script (they come later in scripts_data)
    setups = [type(c.script).__name__ for c in run.calls if c.hook == "setup"]
    assert setups == ["Probe", "ScriptRefiner", "ScriptSampler", "ScriptSeed"]
    assert (run.p.steps, run.p.sampler_name, run.p.seed) == (2, "Euler", 1)  # set by the built-in scripts' setup

    mine = [c for c in run.calls if isinstance(c.script, Probe)]
    calls = {c.hook: c for c in mine}
    assert calls["process"].args == (True, 7, "a")
    assert run.script_args[0] == 0 and isinstance(run.p.script_args, tuple)

    before = [c for c in mine if c.hook == "before_process_batch"]
    assert [c.kwargs["batch_number"] for c in before] == [0, 1]
    assert before[0].kwargs["prompts"] == ["a cat <lora:thing:0.5>"] * 2
    assert calls["process_batch"].kwargs["prompts"] == ["a cat "] * 2
    assert calls["process_batch"].kwargs["seeds"] == [3, 4]
    assert set(calls["after_extra_networks_activate"].kwargs) == {"batch_number", "prompts", "seeds", "subseeds",
                                                                   "extra_network_data"}

    sampling = [c for c in mine if c.hook == "process_before_every_sampling"]
    assert set(sampling[0].kwargs) == {"x", "noise", "c", "uc"}
    assert sampling[0].kwargs["x"] is sampling[0].kwargs["noise"] and sampling[0].kwargs["x"].shape == (2, 4, 8, 8)
    images = calls["postprocess_batch"].kwargs["images"]
    assert images.shape == (2, 3, 64, 64) and 0 <= images.min() and images.max() <= 1
    # grid first (2+ images), then one infotext per image
    processed = run.processed
    assert processed.index_of_first_image == 1 and len(processed.images) == 5 == len(processed.infotexts)
    assert processed.images[1].info["parameters"] == processed.infotexts[1]


def test_sampler_objects_per_pass(webui):
    seen = []

    Probe = make_script(webui)
    Probe.process_before_every_sampling = lambda self, p, *a, **kw: seen.append(
        (p.is_hr_pass, p.sampler, p.sampler.model_wrap_cfg, kw["x"], kw["noise"]))
    Probe.before_hr = lambda self, p, *a: seen.append("before_hr")

    # txt2img + hires: a new sampler per iteration and per pass; before_hr right before the hires sampling hook
    webui.run_txt2img(Probe, enable_hr=True, hr_scale=2, hr_sampler_name="DDIM", n_iter=2, steps=2, **SMALL)
    assert [s if isinstance(s, str) else s[0] for s in seen] == [False, "before_hr", True, False, "before_hr", True]
    passes = [s for s in seen if not isinstance(s, str)]
    assert passes[1][3].shape == (1, 4, 16, 16) and passes[0][3].shape == (1, 4, 8, 8)
    assert len({id(s[1]) for s in passes}) == 4
    assert type(passes[0][2]).__name__ == "CFGDenoiserKDiffusion"
    assert type(passes[1][2]).__name__ == "CFGDenoiserTimesteps"  # hires sampler DDIM

    # img2img: one sampler for all iterations, x is the init latent, noise is separate
    seen.clear()
    latent = torch.zeros(1, 4, 8, 8)
    run = webui.run_img2img(Probe, init_latent=latent, n_iter=2, steps=4, denoising_strength=0.5, **SMALL)
    assert seen[0][1] is seen[1][1]
    assert seen[0][3] is run.p.init_latent and torch.equal(seen[0][3], latent) and seen[0][4].abs().sum() > 0
    assert "Denoising strength: 0.5" in run.processed.infotexts[1]

    from PIL import Image

    run = webui.run_img2img(Probe, init_images=[Image.new("RGB", (64, 64), (200, 30, 30))], steps=2,
                            denoising_strength=0.5, **SMALL)
    assert run.p.init_latent.shape == (1, 4, 8, 8) and run.processed.images[0].size == (64, 64)


def test_hook_errors_are_swallowed_and_setup_respects_api(webui):
    Probe = make_script(webui)

    def broken(self, p, *args):
        raise RuntimeError("boom")

    Probe.process = broken
    Probe.setup_for_ui_only = True
    run = webui.run_txt2img(Probe, steps=2, api=True, **SMALL)
    assert "setup" not in run.hooks() and "process" in run.hooks() and "postprocess" in run.hooks()
    assert len(run.processed.images) == 1
    assert any(str(e) == "boom" for e in webui.errors.exception_records)
    assert run.p.is_api


# --------------------------------------------------------------------------------------------------------------------
# API arguments


def test_api_default_args_and_alwayson_overwrite(webui):
    from fastapi import HTTPException

    Probe = make_script(webui)
    Other = make_script(webui, title="Other", hooks=False)
    runner = webui.start(Probe, Other)
    probe, other = webui.script(Probe), webui.script(Other)
    ui_calls = probe.ui_calls

    defaults = webui.api_api.init_default_script_args(runner)
    assert probe.ui_calls == ui_calls + 2  # the API calls ui() twice per script
    assert defaults[0] == 0 and len(defaults) == max(s.args_to for s in runner.scripts)
    assert defaults[probe.args_from:probe.args_to] == [False, 3, "a"]

    args = webui.api_args(runner, {"PROBE": {"args": [True]}, "other": {"args": [True, 9, "b", "extra"]}})
    assert args[probe.args_from:probe.args_to] == [True, 3, "a"]  # missing trailing args keep the defaults
    assert args[other.args_from:other.args_to] == [True, 9, "b"]  # extra ones are ignored
    assert webui.api_args(runner, {"other": {}})[other.args_from] is False

    with pytest.raises(HTTPException) as err:
        webui.api_args(runner, {"Prob": {"args": [True]}})
    assert err.value.status_code == 422 and "not found" in err.value.detail
    with pytest.raises(HTTPException) as err:
        webui.api_args(runner, {"X/Y/Z plot": {"args": []}})
    assert err.value.status_code == 422

    # a dict passed as an arg reaches the hook unchanged
    run = webui.run_txt2img((Probe, Other), api=True, alwayson_scripts={"probe": {"args": [{"k": 1}]}}, steps=2,
                            **SMALL)
    process = [c for c in run.calls if c.hook == "process"][0]
    assert process.args == ({"k": 1}, 3, "a") and run.p.is_api


# --------------------------------------------------------------------------------------------------------------------
# infotext and paste


def test_infotext_values_and_paste_roundtrip(webui):
    Probe = make_script(webui)

    def process(self, p, enabled, strength, mode):
        p.extra_generation_params.update({
            "Probe": enabled,
            "Probe strength": strength,
            "Probe mode": "b",
            "Probe info": "tokens=2,5; steps: 25",
            "Probe per image": ["first", "second"],
            "Probe fn": lambda p, index, prompt_text, **kwargs: f"{index}-{prompt_text}",
            "Probe none": None,
        })

    Probe.process = process
    run = webui.run_txt2img(Probe, args=[True, 6], prompt="a cat", batch_size=2, steps=2, **SMALL)
    text = run.processed.infotexts[2]
    assert text.startswith("a cat\nSteps: 2, Sampler: Euler, Schedule type: Automatic, CFG scale: 7.0, Seed: 2,")
    assert 'Probe: True, Probe strength: 6, Probe mode: b, Probe info: "tokens=2,5; steps: 25", ' \
           'Probe per image: second, Probe fn: 1-a cat, Version: v1.10.1' in text
    assert "Probe none" not in text

    params = webui.infotext_utils.parse_generation_parameters(text)
    assert params["Probe info"] == "tokens=2,5; steps: 25" and params["Size-1"] == "64" and params["Seed"] == "2"

    pasted = dict((comp.label, update) for comp, update in webui.paste(text) if hasattr(comp, "label"))
    assert pasted["Probe"] == {"value": True, "__type__": "generic_update"}
    assert pasted["strength"]["value"] == 6.0 and isinstance(pasted["strength"]["value"], float)  # int via float
    assert pasted["mode"] == {"__type__": "generic_update", "value": "b"}


def test_apply_paste_conversions(webui):
    import gradio as gr
    from modules.infotext_utils import PasteField, apply_paste, quote, unquote

    with gr.Blocks():
        check, number, text = gr.Checkbox(True), gr.Slider(0, 10, value=1, step=1), gr.Textbox("x")
    fields = [(check, "A"), (check, "B"), (number, "N"), (number, "Bad"), (text, "Missing"),
              PasteField(text, lambda d: gr.update(visible=False)), (text, lambda d: 1 / 0), (text, "T")]
    params = {"A": "False", "B": "yes", "N": "7", "Bad": "seven", "T": 12}
    assert apply_paste(fields, params) == [
        {"value": False, "__type__": "generic_update"},
        {"value": True, "__type__": "generic_update"},
        {"value": 7.0, "__type__": "generic_update"},
        {"__type__": "generic_update"},
        {"__type__": "generic_update"},
        {"visible": False, "__type__": "generic_update"},
        {"__type__": "generic_update"},
        {"value": "12", "__type__": "generic_update"},
    ]
    assert quote("a, b") == '"a, b"' and quote("ab") == "ab" and quote(3) == 3 and unquote('"a: b"') == "a: b"


def test_infotext_pasted_callback_can_rewrite_params(webui):
    Probe = make_script(webui)
    webui.start(Probe)

    def split(infotext, params):
        if "Compound" in params:
            params["Probe strength"] = params.pop("Compound").split("=")[1]

    webui.script_callbacks.on_infotext_pasted(split)
    pasted = dict((comp.label, u) for comp, u in webui.paste("p\nSteps: 2, Seed: 1, Compound: s=4")
                  if hasattr(comp, "label"))
    assert pasted["strength"]["value"] == 4.0


# --------------------------------------------------------------------------------------------------------------------
# callbacks


def test_callbacks_registration_errors_and_removal(webui):
    webui.start()  # load_scripts clears all callbacks: register after start-up (or from a script file)
    sc = webui.script_callbacks
    seen = []

    def first(params):
        seen.append(("first", params.x.shape[0], params.text_cond.shape, params.denoiser.step))

    def broken(params):
        raise ValueError("callback failure")

    sc.on_cfg_denoiser(first)
    sc.on_cfg_denoiser(broken, name="broken")
    sc.on_cfg_after_cfg(lambda params: seen.append(("after", params.x.shape)))
    names = [c.name for c in sc.callback_map["callbacks_cfg_denoiser"]]
    assert names == ["base/test_standin.py/cfg_denoiser", "base/test_standin.py/cfg_denoiser/broken"]
    assert sc.callback_map["callbacks_cfg_denoiser"][0].script == __file__

    order = []
    sc.on_before_ui(lambda: order.append(1))
    sc.on_before_ui(lambda: order.append(2))
    sc.before_ui_callback()
    assert order == [2, 1]  # before_ui and script_unloaded run in reverse

    webui.run_txt2img(None, prompt="a cat AND a dog", batch_size=2, steps=2, **SMALL)
    # x_in: 2 images x 2 AND-parts of cond rows + 2 uncond rows; the denoiser call counter is the prompt step
    assert seen[0] == ("first", 6, torch.Size([4, 77, 32]), 0) and seen[2][3] == 1
    assert seen[1] == ("after", torch.Size([2, 4, 8, 8]))
    assert any(str(e) == "callback failure" for e in webui.errors.exception_records)

    sc.remove_callbacks_for_function(first)
    assert [c.callback for c in sc.callback_map["callbacks_cfg_denoiser"]] == [broken]
    sc.remove_current_script_callbacks()
    left = [c.script for callbacks in sc.callback_map.values() for c in callbacks]
    assert left == [os.path.join(webui.paths.script_path, "modules", "processing_scripts", "comments.py")]


# --------------------------------------------------------------------------------------------------------------------
# prompt parsing and cond batches


class _CountingModel:
    """``get_learned_conditioning`` -> one ``[77 * chunks, 1]`` tensor per text holding the text's id."""

    def __init__(self):
        self.ids, self.calls = {}, []

    def get_learned_conditioning(self, texts):
        self.calls.append(list(texts))
        out = []
        for text in texts:
            value = float(self.ids.setdefault(text, len(self.ids)))
            out.append(torch.full((77 * (2 if "long" in text else 1), 1), value))
        return out if len({t.shape for t in out}) > 1 else torch.stack(out)

    def text(self, value):
        return {v: k for k, v in self.ids.items()}[int(value)]


def test_reconstruct_multicond_batch_rows_and_schedules(webui):
    pp = webui.prompt_parser
    model = _CountingModel()
    prompts = ["a [cat:dog:2] AND b:0.5", "c", "a [cat:dog:2]"]
    cond = pp.get_multicond_learned_conditioning(model, prompts, 4)
    assert model.calls == [["a cat", "a dog"], [" b"], ["c"]]  # one call per distinct (sub-)prompt

    for step, animal in ((0, "cat"), (2, "cat"), (3, "dog"), (4, "dog"), (9, "cat")):
        conds_list, rows = pp.reconstruct_multicond_batch(cond, step)
        assert conds_list == [[(0, 1.0), (1, 0.5)], [(2, 1.0)], [(3, 1.0)]]
        texts = [model.text(r[0, 0]) for r in rows]
        assert texts == [f"a {animal}", " b", "c", f"a {animal}"]

    uncond = pp.get_learned_conditioning(model, ["", "neg", ""], 4)
    batch = pp.reconstruct_cond_batch(uncond, 1)
    assert batch.shape == (3, 77, 1) and [model.text(r[0, 0]) for r in batch] == ["", "neg", ""]

    # prompts with different chunk counts are padded by repeating the last row
    cond = pp.get_multicond_learned_conditioning(model, ["x", "long y"], 4)
    _, rows = pp.reconstruct_multicond_batch(cond, 1)
    assert rows.shape == (2, 154, 1) and torch.equal(rows[0, 77:], rows[0, 76:77].expand(77, 1))


def test_prompt_schedules_subset(webui):
    g = webui.prompt_parser.get_learned_conditioning_prompt_schedules
    assert g(["a [b:c:2] d"], 4) == [[[2, "a b d"], [4, "a c d"]]]
    assert g(["a [b:0.5]"], 4) == [[[2, "a "], [4, "a b"]]]
    assert g(["[x|y] z"], 3) == [[[1, "x z"], [2, "y z"], [3, "x z"]]]
    assert g(["(a:1.2) [b::1]"], 2) == [[[1, "(a:1.2) b"], [2, "(a:1.2) "]]]
    assert g(["a [b:1.5]"], 4, 4) == [[[2, "a "], [4, "a b"]]]  # hires: fractions in 1..2
    assert g(["a [b:0.5]"], 4, None, True) == [[[2, "a "], [4, "a b"]]]
    assert webui.prompt_parser.get_multicond_prompt_list(["a AND b :2"])[0] == [[(0, 1.0), (1, 2.0)]]


def test_model_conditioning_chunks_and_padding(webui):
    model = webui.sd_model
    long_prompt = "cat, " * 50
    c = model.get_learned_conditioning(["a cat", long_prompt])
    assert c.shape == (2, 154, 32)
    # the shorter prompt is padded with an empty chunk, as TextConditionalModel.forward does
    empty = model.get_learned_conditioning([""])
    assert torch.allclose(c[0, 77:], empty[0], atol=1e-5)
    chunks, count = model.cond_stage_model.tokenize_line(long_prompt)
    assert len(chunks) == 2 and count == 100 and model.cond_stage_model.comma_token == 267
    assert model.cond_stage_model.wrapped.tokenizer.convert_ids_to_tokens([2368]) == ["cat</w>"]


# --------------------------------------------------------------------------------------------------------------------
# denoising loop


def _trace_sampler(webui, sampler_name, steps, edit_at=None, delta=0.25):
    """Runs txt2img recording denoiser calls ("d") and step callbacks ("c"); optionally edits ``x`` in place on the
    first call of step ``edit_at``. Returns the trace, the final latent and the captured state."""
    Probe = make_script(webui, hooks=False)
    state = {"trace": "", "x_k": None}

    def process_before_every_sampling(self, p, *args, **kwargs):
        sampler = p.sampler
        den = sampler.model_wrap_cfg
        state.update(sampler=sampler, den=den)

        original_func = sampler.func

        @functools.wraps(original_func)
        def func(*a, **kw):
            state["schedule"] = kw.get("sigmas", kw.get("timesteps"))
            return original_func(*a, **kw)

        sampler.func = func

        original_callback = sampler.callback_state

        def callback_state(d):
            state["trace"] += "c"
            state["steps_seen"] = d["i"]
            return original_callback(d)

        sampler.callback_state = callback_state

        def pre_hook(module, args, kwargs):
            state["trace"] += "d"
            if module.step == edit_at:  # first-order samplers: call k is the (only) call of step k
                state["x_k"] = args[0].clone()
                args[0].add_(delta)

        den.register_forward_pre_hook(pre_hook, with_kwargs=True)

    def post_sample(self, p, ps, *args):
        state["samples"] = ps.samples.clone()

    Probe.process_before_every_sampling = process_before_every_sampling
    Probe.post_sample = post_sample
    webui.run_txt2img(Probe, prompt="a cat", sampler_name=sampler_name, steps=steps, **SMALL)
    return state


@pytest.mark.parametrize("sampler_name, steps, trace", [
    ("Euler", 3, "dcdcdc"),
    ("DPM++ 2M", 3, "dcdcdc"),
    ("Heun", 3, "dcddcddc"),
    ("DDIM", 4, "dcdcdc"),
    ("PLMS", 3, "ddcdcdc"),
    ("UniPC", 4, "ddcdcdcc"),
    ("LCM", 2, "dcdc"),
])
def test_denoiser_call_pattern(webui, sampler_name, steps, trace):
    state = _trace_sampler(webui, sampler_name, steps)
    assert state["trace"] == trace
    assert state["schedule"] is not None  # a functools.wraps wrapper of p.sampler.func still gets sigmas/timesteps
    assert state["den"].step == trace.count("d")


@pytest.mark.parametrize("sampler_name, steps", [("Euler", 4), ("DDIM", 5)])
def test_inplace_edit_persists_like_a_restart(webui, sampler_name, steps):
    k, delta = 2, 0.25
    state = _trace_sampler(webui, sampler_name, steps, edit_at=k, delta=delta)
    assert state["x_k"] is not None

    sampler, den = state["sampler"], state["den"]
    den._forward_pre_hooks.clear()
    den.step = k
    restart_from = state["x_k"] + delta
    if sampler_name == "Euler":
        import k_diffusion.sampling

        out = k_diffusion.sampling.sample_euler(den, restart_from, state["schedule"][k:],
                                                extra_args=sampler.sampler_extra_args, disable=True)
    else:
        schedule = state["schedule"]
        out = webui.sd_samplers_timesteps_impl.ddim(den, restart_from, schedule[:len(schedule) - k],
                                                    extra_args=sampler.sampler_extra_args, disable=True)
    assert torch.equal(out, state["samples"])


def test_cond_uncond_batching(webui):
    calls = []
    Probe = make_script(webui, hooks=False)

    def process_before_every_sampling(self, p, *args, **kwargs):
        inner = p.sampler.model_wrap_cfg.inner_model
        inner.register_forward_pre_hook(lambda m, a, kw: calls.append((a[0].shape[0], kw["cond"]["c_crossattn"][0]
                                                                       .shape[1])), with_kwargs=True)

    Probe.process_before_every_sampling = process_before_every_sampling
    webui.run_txt2img(Probe, prompt="a cat", steps=1, **SMALL)
    assert calls == [(2, 77)]  # one batched call [cond, uncond]

    calls.clear()
    webui.run_txt2img(Probe, prompt="a cat BREAK a dog", steps=1, **SMALL)
    assert calls == [(1, 154), (1, 77)]  # different token lengths: cond, then uncond

    calls.clear()
    webui.shared.opts.skip_early_cond = 0.25
    webui.run_txt2img(Probe, prompt="a cat", steps=2, **SMALL)
    assert calls == [(1, 77), (2, 77)]  # the uncond row is skipped on the early steps


def test_interrupt_returns_last_latent_and_stops_the_batch_loop(webui):
    Probe = make_script(webui)

    def process_before_every_sampling(self, p, *args, **kwargs):
        den = p.sampler.model_wrap_cfg

        def stop(module, args, kwargs):
            if module.step == 1:
                webui.shared.state.interrupt()

        den.register_forward_pre_hook(stop, with_kwargs=True)

    Probe.process_before_every_sampling = process_before_every_sampling
    run = webui.run_txt2img(Probe, n_iter=2, steps=3, **SMALL)
    assert run.hooks().count("process_before_every_sampling") == 1
    assert len(run.processed.images) == 1


def test_refiner_switch_reloads_model_and_conds(webui):
    refiner = webui.add_refiner()
    loaded = []
    webui.start()
    webui.script_callbacks.on_model_loaded(lambda m: loaded.append(m))
    run = webui.run_txt2img(None, prompt="a cat", steps=4, refiner_checkpoint=refiner.sd_checkpoint_info.title,
                            refiner_switch_at=0.5, **SMALL)
    assert loaded == [refiner] and webui.shared.sd_model is refiner
    assert f"Refiner: {refiner.sd_checkpoint_info.short_title}, Refiner switch at: 0.5" in run.processed.infotexts[0]

    webui.run_txt2img(None, prompt="a cat", steps=1, **SMALL)  # the next generation reloads the main model
    assert webui.shared.sd_model is webui.sd_model and loaded[-1] is webui.sd_model


@pytest.mark.parametrize("variant, denoiser", [("sd2", "CompVisVDenoiser"), ("sd2-base", "CompVisDenoiser"),
                                              ("sdxl", "CompVisDenoiser"), ("ssd", "CompVisDenoiser")])
def test_model_variants(webui, variant, denoiser):
    model = webui.make_model(variant)
    webui.use_model(model)
    seen = {}
    Probe = make_script(webui, hooks=False)
    Probe.process_before_every_sampling = lambda self, p, *a, **kw: seen.update(
        inner=type(p.sampler.model_wrap_cfg.inner_model).__name__, c=kw["c"])
    ys = []
    unet = model.model.diffusion_model
    handle = unet.register_forward_pre_hook(lambda m, a, kw: ys.append(kw.get("y")), with_kwargs=True)
    try:
        run = webui.run_txt2img(Probe, prompt="a cat", steps=1, width=256, height=192)
    finally:
        handle.remove()
    assert seen["inner"] == denoiser and len(run.processed.images) == 1
    cond = seen["c"].batch[0][0].schedules[0].cond
    if variant in ("sdxl", "ssd"):
        assert model.is_sdxl and model.is_ssd == (variant == "ssd") and set(cond) == {"crossattn", "vector"}
        assert not hasattr(model.conditioner, "tokenize_line")
        clip_l, clip_g = model.conditioner.embedders
        assert clip_g.tokenize_line("a cat")[0][0].tokens[:4] == [49406, 320, 2368, 49407]
        assert clip_l.id_pad == clip_l.id_end and clip_g.id_pad == 0
        assert cond["crossattn"].shape == (77, 48) and cond["vector"].shape == (80,)
        # the vector carries the image size (height, width) and reaches the UNet as y
        other = model.get_learned_conditioning(webui.prompt_parser.SdConditioning(["a cat"], width=512, height=512))
        assert torch.equal(other["crossattn"][0], cond["crossattn"])
        assert not torch.equal(other["vector"][0], cond["vector"])
        assert ys and all(y is not None and y.shape[1] == 80 for y in ys)
        names = [n for n, _ in unet.named_modules() if n.endswith("attn2")]
        assert ("middle_block.1.transformer_blocks.0.attn2" in names) == (variant == "sdxl")
    else:
        assert model.is_sd2 and cond.shape == (77, 32) and ys == [None] * len(ys)
        assert model.parameterization == ("v" if variant == "sd2" else "eps")


@pytest.mark.parametrize("width, height", [(256, 256), (264, 200), (72, 520)])
def test_sizes_that_are_not_multiples_of_64(webui, width, height):
    """The stand-in, like the WebUI (``sd_hijack_unet``), resizes the decoder's features to the skip connection's
    size, so the UNet runs on any latent size; without it ldm's UNet fails on these."""
    from ldm.modules.diffusionmodules import openaimodel

    run = webui.run_txt2img(None, prompt="a cat", steps=1, width=width, height=height)
    assert run.processed.images[0].size == (width, height)
    if width % 64 or height % 64:
        hijack = openaimodel.th
        openaimodel.th = torch
        try:
            with pytest.raises(RuntimeError):
                webui.run_txt2img(None, prompt="a cat", steps=1, width=width, height=height)
        finally:
            openaimodel.th = hijack


def test_the_unet_hijack_is_installed_and_removed_with_the_standin(tiny):
    from ldm.modules.diffusionmodules import openaimodel

    from tests.standin.webui.harness import WebUI

    before = openaimodel.th
    handle = WebUI(tiny).install()
    try:
        assert openaimodel.th is handle.sd_hijack_unet.th and openaimodel.th.cat is not torch.cat
    finally:
        handle.uninstall()
    assert openaimodel.th is before is torch


# --------------------------------------------------------------------------------------------------------------------
# X/Y/Z plot


def test_xyz_axis_option_from_an_extension_file(webui, tmp_path):
    Probe = make_script(webui)
    seen = []
    Probe.process = lambda self, p, *args: seen.append((getattr(p, "probe_axis", None), p.steps))

    script_file = tmp_path / "probe-ext" / "scripts" / "probe_axis.py"
    script_file.parent.mkdir(parents=True)
    script_file.write_text(
        "from modules import script_callbacks, scripts\n"
        "BASEDIR = scripts.basedir()\n"
        "def add_axis():\n"
        "    xyz = [x for x in scripts.scripts_data if x.script_class.__module__ == 'xyz_grid.py'][0].module\n"
        "    xyz.axis_options.append(xyz.AxisOption('Probe axis', float, xyz.apply_field('probe_axis')))\n"
        "script_callbacks.on_before_ui(add_axis)\n")

    run = webui.run_xyz((Probe, str(script_file)), x=("Probe axis", "0.5, 1.5"), y=("Steps", "1-2"), **SMALL)
    assert [c.name for c in webui.script_callbacks.callback_map["callbacks_before_ui"]] == \
        ["probe-ext/probe_axis.py/before_ui"]
    assert seen == [(0.5, 1), (1.5, 1), (0.5, 2), (1.5, 2)]
    assert [combo for combo, _ in run.processed.xyz_cells] == [(0.5, 1, 0), (1.5, 1, 0), (0.5, 2, 0), (1.5, 2, 0)]
    assert len(run.processed.images) == 1 + 4
    assert run.p.steps == 4 and not hasattr(run.p, "probe_axis")  # cells work on copies of p
    assert run.hooks().count("before_process") == 4
