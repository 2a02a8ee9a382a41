"""The A-STAR script inside the STAND-IN of WebUI Forge (tests/standin/forge), driven in Forge's call order.

The stand-in samples under ``torch.inference_mode()`` with a UNet whose weights are inference tensors, Forge's
in-place residual adds and its CPU attention kernel (which autograd refuses), and runs the UNet through Forge's
``sampling_function``/``KModel.apply_model`` path; ``scripts/astar.py`` is loaded as Forge loads extension scripts,
so the choice of the Forge host at start-up is exercised too.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from tests.conftest import SCRIPT, astar_keys, hook_count, on

FIRST_ORDER = ["Euler", "Euler a", "LMS", "DPM++ 2M", "DPM++ 2M SDE", "DPM++ 3M SDE", "LCM", "DDIM", "DDIM CFG++"]
SECOND_ORDER = ["Heun", "DPM2", "DPM2 a", "DPM++ SDE", "DPM++ 2S a"]
REFUSED = ["UniPC", "Restart", "DPM fast", "DPM adaptive"]


def run(forge, args=None, **kwargs):
    kwargs.setdefault("prompt", "a cat and a dog")
    kwargs.setdefault("steps", 6)
    return forge.run_txt2img(SCRIPT, args, **kwargs)


def unet(forge):
    return forge.shared.sd_model.forge_objects.unet.model.diffusion_model


def no_hooks_left(forge) -> bool:
    return hook_count(unet(forge)) == 0


def test_the_stand_in_samples_in_inference_mode_with_inference_weights(forge):
    """What makes Forge different for A-STAR, reproduced by the stand-in (Forge's modules/processing.py and
    backend/loader.py): inference mode during sampling, inference-tensor weights, no ``model`` attribute."""
    seen = {}
    net = unet(forge)
    assert all(p.is_inference() for p in net.parameters())
    assert not hasattr(forge.shared.sd_model, "model") and forge.shared.sd_model.cond_stage_model is None

    def probe(module, args):
        seen["inference"] = torch.is_inference_mode_enabled()
        seen["x"] = args[0].is_inference()

    handle = net.register_forward_pre_hook(probe)
    try:
        forge.run_txt2img([], None, prompt="a cat", steps=2)
    finally:
        handle.remove()
    assert seen == {"inference": True, "x": True}


def test_the_script_picks_the_forge_host(forge):
    run(forge, on(), steps=2)
    from astar_ext.webui.hosting import current_host

    assert current_host().name == "WebUI Forge"


def test_off_by_default_and_bit_identical_to_no_extension(forge):
    plain, _ = forge.run_txt2img([], None, prompt="a cat and a dog", steps=6)
    default, _ = run(forge)
    assert astar_keys(default) == {}
    astar, _ = run(forge, on())
    keys = astar_keys(astar)
    assert keys["A-STAR passes"] == "3" and "A-STAR error" not in keys, keys
    again, _ = run(forge, [False, "cat, dog"])
    for img in (default.images[0], again.images[0]):
        assert img.tobytes() == plain.images[0].tobytes()
    assert astar.images[0].tobytes() != plain.images[0].tobytes()
    assert no_hooks_left(forge)


def test_positional_list_and_dict(forge):
    keys = astar_keys(run(forge, [True, "cat, dog", 20.0, 0.5]).processed)
    assert keys["A-STAR concepts"] == "cat, dog" and keys["A-STAR passes"] == "3"
    before, after = (float(v) for v in keys["A-STAR overlap"].split("->"))
    assert 0 <= before <= 0.5 and 0 <= after <= 0.5
    keys = astar_keys(run(forge, [{"concepts": ["cat", 5], "iterations": 2}], api=True).processed)
    assert keys["A-STAR concepts"] == "cat, #5" and keys["A-STAR passes"] == "6"


@pytest.mark.parametrize("args, field", [
    ([{"enabled": True, "concepts": "cat, dog", "scale": "big"}], "scale"),
    ([True, "cat, dog", 20.0, 7.0], "window"),
])
def test_bad_arguments_give_a_message_and_the_image(forge, args, field):
    processed, _ = run(forge, args, api=True)
    assert len(processed.images) == 1
    keys = astar_keys(processed)
    assert field in keys["A-STAR error"] and "A-STAR passes" not in keys


def _frame_local_is(x, names) -> bool:
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name in names:
            return frame.f_locals.get("x") is x
        frame = frame.f_back
    raise AssertionError(f"no sampler frame among {names}")


@pytest.mark.parametrize("sampler", FIRST_ORDER + SECOND_ORDER + ["PLMS"])
def test_the_correction_is_made_on_the_samplers_own_latent(forge, monkeypatch, sampler):
    """On Forge too, the tensor A-STAR corrects in place (an inference tensor) is the sampler function's own
    ``x`` at every corrected step, and it changes: the sampler steps from the corrected latent."""
    from astar_ext.controller import AStarController

    seen = []
    original = AStarController.step

    def spy(self, x, sigma, step, layout, denoise_fn):
        before = x.clone()
        record = original(self, x, sigma, step, layout, denoise_fn)
        func = forge.sd_samplers.find_sampler_config(sampler).constructor(forge.shared.sd_model).funcname
        names = {func if isinstance(func, str) else func.__name__, "_ddim_loop"}
        seen.append((step, x.is_inference(), _frame_local_is(x, names), not torch.equal(before, x)))
        return record

    monkeypatch.setattr(AStarController, "step", spy)
    processed, _ = run(forge, on(window=1.0), sampler_name=sampler, steps=5)
    keys = astar_keys(processed)
    assert not {"A-STAR skipped", "A-STAR notes", "A-STAR error"} & set(keys), keys
    assert [s for s, _, _, _ in seen] == list(range(len(seen))) and len(seen) >= 4
    assert all(inference and own and moved for _, inference, own, moved in seen), seen
    assert no_hooks_left(forge)


@pytest.mark.parametrize("sampler", ["Euler", "DDIM"])
def test_in_place_correction_equals_restarting_from_the_corrected_latent(forge, monkeypatch, sampler):
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
    guided, _ = run(forge, on(window=1.0), sampler_name=sampler, steps=5)
    assert "x" in saved
    monkeypatch.setattr(AStarController, "step", original)
    done = {}

    def swap(module, args, kwargs):
        if module.step == 1 and not done:
            args[0].copy_(saved["x"])
            done["yes"] = True

    made = forge.sd_samplers.create_sampler

    def create(name, model):
        s = made(name, model)
        s.model_wrap_cfg.register_forward_pre_hook(swap, with_kwargs=True)
        return s

    monkeypatch.setattr(forge.sd_samplers, "create_sampler", create)
    restarted, _ = forge.run_txt2img([], None, prompt="a cat and a dog", sampler_name=sampler, steps=5)
    assert guided.images[0].tobytes() == restarted.images[0].tobytes()


@pytest.mark.parametrize("sampler", REFUSED)
def test_refused_samplers_say_why_and_the_image_is_made(forge, sampler):
    processed, _ = run(forge, on(), sampler_name=sampler, steps=5)
    assert "not supported" in astar_keys(processed)["A-STAR skipped"]
    assert len(processed.images) == 1 and no_hooks_left(forge)


@pytest.mark.parametrize("disable, message", [
    ("normal_tensors", "Inference tensors cannot be saved for backward"),
    ("autograd_safe", "inplace operation"),
])
def test_without_the_forge_measures_the_loss_pass_fails_and_the_image_is_still_made(forge, monkeypatch, disable,
                                                                                    message):
    """Negative controls: the stand-in reproduces the two ways Forge's UNet refuses a gradient pass, so the
    adapter's measures (normal weights; copied norm inputs and SDPA for the loss pass) are what make it work."""
    import contextlib

    from astar_ext.forge import host

    if disable == "normal_tensors":
        monkeypatch.setattr(host, "normal_tensors", lambda module: 0)
    else:
        import backend.attention as attention

        monkeypatch.setattr(host, "autograd_safe", lambda unet: contextlib.nullcontext())
        monkeypatch.setattr(attention, "attention_function", attention.attention_pytorch)
        monkeypatch.setattr("backend.nn.unet.attention_function", attention.attention_pytorch)
    processed, _ = run(forge, on(), steps=4)
    keys = astar_keys(processed)
    assert message in keys["A-STAR error"], keys
    assert len(processed.images) == 1 and no_hooks_left(forge)


def test_the_sub_quadratic_kernel_is_restored_after_the_loss_pass(forge):
    import backend.attention as attention
    import backend.nn.unet as forge_unet

    assert forge_unet.attention_function is attention.attention_sub_quad
    keys = astar_keys(run(forge, on(), steps=4).processed)
    assert keys["A-STAR passes"] == "2" and "A-STAR error" not in keys
    assert forge_unet.attention_function is attention.attention_sub_quad


def test_interrupt_during_the_correction_stops_promptly(forge, monkeypatch):
    from astar_ext.controller import AStarController

    original = AStarController.step
    calls = []

    def interrupting(self, x, sigma, step, layout, denoise_fn):
        calls.append(step)
        if step == 1:
            forge.shared.state.interrupt()
        return original(self, x, sigma, step, layout, denoise_fn)

    monkeypatch.setattr(AStarController, "step", interrupting)
    processed, _ = run(forge, on(window=1.0, iterations=3), steps=8)
    assert calls == [0, 1]  # no correction after the interrupt, and sampling stopped at the next denoiser call
    assert len(processed.images) == 1 and no_hooks_left(forge)


def test_sdxl_with_both_text_engines(forge):
    forge.make_model("sdxl", use=True)
    processed, _ = run(forge, on(), prompt="a (cat:1.2) and a dog BREAK on a sofa")
    keys = astar_keys(processed)
    assert keys["A-STAR passes"] == "3" and not {"A-STAR error", "A-STAR skipped"} & set(keys), keys
    assert no_hooks_left(forge)


def test_hires_and_heatmaps(forge):
    extra = dict(enable_hr=True, hr_scale=1.5, hr_second_pass_steps=4, denoising_strength=0.6)
    keys = astar_keys(run(forge, on(hires=True), **extra).processed)
    assert keys["A-STAR passes"] == "5" and "A-STAR hires overlap" in keys, keys
    processed, _ = run(forge, on(heatmaps=True))
    assert len(processed.images) == 2 and "A-STAR heatmap: " in processed.infotexts[1]


def test_the_token_route_uses_forges_text_engine(forge):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    forge.start(SCRIPT)
    from astar_ext.webui import route

    app = FastAPI()
    route.add_route(app)
    res = TestClient(app).post(route.ROUTE, json={"prompt": "a (cat:1.2) and a dog", "concepts": "cat, dog"})
    body = res.json()
    assert res.status_code == 200 and body["refusal"] is None, body
    assert [c["columns"] for c in body["parts"][0]["concepts"]] == [[2], [5]]
