"""The A-STAR script inside the STAND-INs of WebUI Forge main (tests/standin/forge) and Forge Classic
(tests/standin/forge_classic), driven in their call order.

Both stand-ins sample under ``torch.inference_mode()`` with Forge's in-place residual adds and its CPU attention
kernel (which autograd refuses); Forge main's UNet has inference-tensor weights and runs through its
``sampling_function``/``KModel.apply_model`` path, Classic's through ``forge_sample`` and ``ldm_patched``'s
``sampling_function``/``BaseModel.apply_model``, with AUTOMATIC1111's model object and text wrappers.
``scripts/astar.py`` is loaded as the WebUI loads extension scripts, so the choice of the host at start-up is
exercised too. The ``line`` fixture runs a test on both; the others name the line they are about.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import SCRIPT, astar_keys, hook_count, on, sampler_local_x_is, token_client
from tests.standin.forge.harness import Forge
from tests.standin.forge_classic.harness import ForgeClassic

FIRST_ORDER = ["Euler", "Euler a", "LMS", "DPM++ 2M", "DPM++ 2M SDE", "DPM++ 3M SDE", "LCM", "DDIM", "DDIM CFG++"]
SECOND_ORDER = ["Heun", "DPM2", "DPM2 a", "DPM++ SDE", "DPM++ 2S a"]
REFUSED = ["UniPC", "Restart", "DPM fast", "DPM adaptive"]


HOST_NAMES = {Forge: "WebUI Forge", ForgeClassic: "WebUI Forge Classic"}


@pytest.fixture(params=[Forge, ForgeClassic], ids=["main", "classic"])
def line(request, tiny):
    """The stand-in of Forge main, then of Forge Classic, installed for one test."""
    handle = request.param(tiny)
    try:
        yield handle.install()
    finally:
        handle.uninstall()


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


def test_the_script_picks_the_forge_host(line):
    run(line, on(), steps=2)
    from astar_ext.webui.hosting import current_host

    assert current_host().name == HOST_NAMES[type(line)]


def test_off_by_default_and_bit_identical_to_no_extension(line):
    plain, _ = line.run_txt2img([], None, prompt="a cat and a dog", steps=6)
    default, _ = run(line)
    assert astar_keys(default) == {}
    astar, _ = run(line, on())
    keys = astar_keys(astar)
    assert keys["A-STAR passes"] == "3" and "A-STAR error" not in keys, keys
    again, _ = run(line, [False, "cat, dog"])
    for img in (default.images[0], again.images[0]):
        assert img.tobytes() == plain.images[0].tobytes()
    assert astar.images[0].tobytes() != plain.images[0].tobytes()
    assert no_hooks_left(line)


def test_positional_list_and_dict(line):
    keys = astar_keys(run(line, [True, "cat, dog", 20.0, 0.5]).processed)
    assert keys["A-STAR concepts"] == "cat, dog" and keys["A-STAR passes"] == "3"
    before, after = (float(v) for v in keys["A-STAR overlap"].split("->"))
    assert 0 <= before <= 0.5 and 0 <= after <= 0.5
    keys = astar_keys(run(line, [{"concepts": ["cat", 5], "iterations": 2}], api=True).processed)
    assert keys["A-STAR concepts"] == "cat, #5" and keys["A-STAR passes"] == "6"


@pytest.mark.parametrize("args, field", [
    ([{"enabled": True, "concepts": "cat, dog", "scale": "big"}], "scale"),
    ([True, "cat, dog", 20.0, 7.0], "window"),
])
def test_bad_arguments_give_a_message_and_the_image(line, args, field):
    processed, _ = run(line, args, api=True)
    assert len(processed.images) == 1
    keys = astar_keys(processed)
    assert field in keys["A-STAR error"] and "A-STAR passes" not in keys


@pytest.mark.parametrize("sampler", FIRST_ORDER + SECOND_ORDER + ["PLMS"])
def test_the_correction_is_made_on_the_samplers_own_latent(line, monkeypatch, sampler):
    """On Forge too, the tensor A-STAR corrects in place (an inference tensor) is the sampler function's own
    ``x`` at every corrected step, and it changes: the sampler steps from the corrected latent."""
    from astar_ext.controller import AStarController

    if line.sd_samplers.find_sampler_config(sampler) is None:
        pytest.skip(f"{sampler} is not a sampler of this Forge line")
    seen = []
    original = AStarController.step

    def spy(self, x, sigma, step, layout, denoise_fn):
        before = x.clone()
        record = original(self, x, sigma, step, layout, denoise_fn)
        func = line.sd_samplers.find_sampler_config(sampler).constructor(line.shared.sd_model).funcname
        names = {func if isinstance(func, str) else func.__name__, "_ddim_loop"}
        seen.append((step, x.is_inference(), sampler_local_x_is(x, names), not torch.equal(before, x)))
        return record

    monkeypatch.setattr(AStarController, "step", spy)
    processed, _ = run(line, on(window=1.0), sampler_name=sampler, steps=5)
    keys = astar_keys(processed)
    assert not {"A-STAR skipped", "A-STAR notes", "A-STAR error"} & set(keys), keys
    assert [s for s, _, _, _ in seen] == list(range(len(seen))) and len(seen) >= 4
    assert all(inference and own and moved for _, inference, own, moved in seen), seen
    assert no_hooks_left(line)


@pytest.mark.parametrize("sampler", ["Euler", "DDIM"])
def test_in_place_correction_equals_restarting_from_the_corrected_latent(line, monkeypatch, sampler):
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
    guided, _ = run(line, on(window=1.0), sampler_name=sampler, steps=5)
    assert "x" in saved
    monkeypatch.setattr(AStarController, "step", original)
    done = {}

    def swap(module, args, kwargs):
        if module.step == 1 and not done:
            args[0].copy_(saved["x"])
            done["yes"] = True

    made = line.sd_samplers.create_sampler

    def create(name, model):
        s = made(name, model)
        s.model_wrap_cfg.register_forward_pre_hook(swap, with_kwargs=True)
        return s

    monkeypatch.setattr(line.sd_samplers, "create_sampler", create)
    restarted, _ = line.run_txt2img([], None, prompt="a cat and a dog", sampler_name=sampler, steps=5)
    assert guided.images[0].tobytes() == restarted.images[0].tobytes()


@pytest.mark.parametrize("sampler", REFUSED)
def test_refused_samplers_say_why_and_the_image_is_made(line, sampler):
    processed, _ = run(line, on(), sampler_name=sampler, steps=5)
    assert "not supported" in astar_keys(processed)["A-STAR skipped"]
    assert len(processed.images) == 1 and no_hooks_left(line)


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


def test_interrupt_during_the_correction_stops_promptly(line, monkeypatch):
    from astar_ext.controller import AStarController

    original = AStarController.step
    calls = []

    def interrupting(self, x, sigma, step, layout, denoise_fn):
        calls.append(step)
        if step == 1:
            line.shared.state.interrupt()
        return original(self, x, sigma, step, layout, denoise_fn)

    monkeypatch.setattr(AStarController, "step", interrupting)
    processed, _ = run(line, on(window=1.0, iterations=3), steps=8)
    assert calls == [0, 1]  # no correction after the interrupt, and sampling stopped at the next denoiser call
    assert len(processed.images) == 1 and no_hooks_left(line)


def test_sdxl_with_both_text_engines(line):
    line.make_model("sdxl", use=True)
    processed, _ = run(line, on(), prompt="a (cat:1.2) and a dog BREAK on a sofa")
    keys = astar_keys(processed)
    assert keys["A-STAR passes"] == "3" and not {"A-STAR error", "A-STAR skipped"} & set(keys), keys
    assert no_hooks_left(line)


def test_hires_and_heatmaps(line):
    extra = dict(enable_hr=True, hr_scale=1.5, hr_second_pass_steps=4, denoising_strength=0.6)
    keys = astar_keys(run(line, on(hires=True), **extra).processed)
    assert keys["A-STAR passes"] == "5" and "A-STAR hires overlap" in keys, keys
    processed, _ = run(line, on(heatmaps=True))
    assert len(processed.images) == 2 and "A-STAR heatmap: " in processed.infotexts[1]


LEFT_RIGHT = "cat 0.00 0.00 0.50 1.00; dog 0.50 0.00 1.00 1.00"


def _fits(keys) -> dict[str, float]:
    return {k: float(v) for k, v in (x.rsplit(" ", 1) for x in keys["A-STAR layout fit"].split(", "))}


def test_layout_reaches_the_controller_through_the_forge_adapter(line):
    """Layout mode (issue 11) on both lines: the dict form's boxes come back as ``A-STAR layout`` with a fit per
    concept; opposite layouts on the same seed give different images, and each concept's share of attention in
    the left half is higher when its box is there (the halves tile the map grid, so the share on the left in the
    mirrored run is 1 - its fit)."""
    left, _ = run(line, on(layout={"cat": [0, 0, 0.5, 1], "dog": [0.5, 0, 1, 1]}, window=1.0, scale=40), api=True,
                  seed=3)
    right, _ = run(line, on(layout="cat 0.5 0 1 1; dog 0 0 0.5 1", window=1.0, scale=40), seed=3)
    plain, _ = run(line, on(window=1.0, scale=40), seed=3)
    a_keys, b_keys = astar_keys(left), astar_keys(right)
    assert a_keys["A-STAR layout"] == LEFT_RIGHT and "A-STAR error" not in a_keys, a_keys
    assert b_keys["A-STAR layout"] == "cat 0.50 0.00 1.00 1.00; dog 0.00 0.00 0.50 1.00"
    assert "A-STAR layout" not in astar_keys(plain) and "A-STAR layout fit" not in astar_keys(plain)
    a, b = _fits(a_keys), _fits(b_keys)
    assert set(a) == set(b) == {"cat", "dog"} and all(0 <= v <= 1 for v in (*a.values(), *b.values()))
    assert left.images[0].tobytes() != right.images[0].tobytes() != plain.images[0].tobytes()
    assert a["cat"] > 1 - b["cat"] and b["dog"] > 1 - a["dog"], (a, b)
    assert no_hooks_left(line)


def test_a_bad_layout_on_forge_gives_a_message_and_the_image(line):
    processed, _ = run(line, on(layout={"bird": [0, 0, 0.5, 1]}), api=True)
    keys = astar_keys(processed)
    assert len(processed.images) == 1 and "'bird' is not one of the concepts" in keys["A-STAR error"], keys
    assert "A-STAR passes" not in keys and no_hooks_left(line)


def test_the_token_route_uses_forges_text_engine(forge):
    from astar_ext.webui import route

    client = token_client(forge, SCRIPT)
    res = client.post(route.ROUTE, json={"prompt": "a (cat:1.2) and a dog", "concepts": "cat, dog"})
    body = res.json()
    assert res.status_code == 200 and body["refusal"] is None, body
    assert [c["columns"] for c in body["parts"][0]["concepts"]] == [[2], [5]]



class FakeInitialModel:
    """Forge main's placeholder model before the first generation loads the checkpoint (``modules/sd_models.py``:
    ``cond_stage_model = None``, ``chunk_length = 75``, ``get_prompt_lengths_on_ui``)."""

    def __init__(self):
        self.cond_stage_model = None
        self.chunk_length = 75

    def get_prompt_lengths_on_ui(self, prompt):
        return 0, 75


def test_the_token_route_before_forge_has_loaded_a_model_says_so(forge):
    from astar_ext.webui import route

    client = token_client(forge, SCRIPT)
    forge.shared.sd_model = FakeInitialModel()
    res = client.post(route.ROUTE, json={"prompt": "a cat and a dog", "concepts": "cat, dog"})
    assert res.status_code == 503 and "no model is loaded yet" in res.json()["error"], res.json()

# --- Forge Classic: what differs ------------------------------------------------------------------------------------
def test_classic_is_the_webuis_model_with_forges_unet_sampled_in_inference_mode(forge_classic):
    """What makes Classic a host of its own (Forge Classic's modules_forge/forge_loader.py and processing.py): the
    WebUI's model object and text wrapper with ``forge_objects``, ``model.diffusion_model`` being Forge's UNet
    (normal weights: the loader is ``@torch.no_grad()``), sampling under inference mode."""
    sd_model = forge_classic.shared.sd_model
    net = unet(forge_classic)
    assert sd_model.model.diffusion_model is net and hasattr(sd_model.cond_stage_model, "tokenize_line")
    assert not any(p.is_inference() for p in net.parameters())
    seen = {}

    def probe(module, args):
        seen["inference"] = torch.is_inference_mode_enabled()
        seen["x"] = args[0].is_inference()

    handle = net.register_forward_pre_hook(probe)
    try:
        forge_classic.run_txt2img([], None, prompt="a cat", steps=2)
    finally:
        handle.remove()
    assert seen == {"inference": True, "x": True}


def test_classic_without_the_autograd_measures_the_loss_pass_fails_and_the_image_is_still_made(forge_classic,
                                                                                               monkeypatch):
    """Negative control: Classic's ``ldm_patched`` blocks add in place, so without the copied norm inputs (and with
    SDPA already in place of the sub-quadratic kernel) the loss pass fails; the image is still made."""
    import contextlib

    import ldm_patched.ldm.modules.attention as attention

    from astar_ext.forge import host

    monkeypatch.setattr(host, "autograd_safe", lambda unet, kernels=None: contextlib.nullcontext())
    monkeypatch.setattr(attention, "optimized_attention", attention.attention_pytorch)
    processed, _ = run(forge_classic, on(), steps=4)
    keys = astar_keys(processed)
    assert "inplace operation" in keys["A-STAR error"], keys
    assert len(processed.images) == 1 and no_hooks_left(forge_classic)


def test_classic_sub_quadratic_kernel_refuses_autograd_and_is_restored_after_the_loss_pass(forge_classic,
                                                                                          monkeypatch):
    import ldm_patched.ldm.modules.attention as attention

    from astar_ext.forge import host

    assert attention.optimized_attention is attention.attention_sub_quad
    keys = astar_keys(run(forge_classic, on(), steps=4).processed)
    assert keys["A-STAR passes"] == "2" and "A-STAR error" not in keys, keys
    assert attention.optimized_attention is attention.attention_sub_quad
    assert attention.optimized_attention_masked is attention.attention_sub_quad
    # negative control: the norm copies alone are not enough while the CPU kernel stays
    module = "ldm_patched.ldm.modules.attention"
    monkeypatch.setattr(host, "CLASSIC_KERNELS", (module, (), module))
    keys = astar_keys(run(forge_classic, on(), steps=4).processed)
    assert "A-STAR error" in keys, keys


def test_the_token_route_uses_classics_text_wrapper(forge_classic):
    from astar_ext.webui import route

    client = token_client(forge_classic, SCRIPT)
    res = client.post(route.ROUTE, json={"prompt": "a (cat:1.2) and a dog", "concepts": "cat, dog"})
    body = res.json()
    assert res.status_code == 200 and body["refusal"] is None, body
    assert [c["columns"] for c in body["parts"][0]["concepts"]] == [[2], [5]]


def test_classic_xyz_axes(forge_classic):
    """Classic's xyz_grid.py has no ``format_value_add_label`` of its own (the A-STAR axes must not need it)."""
    forge_classic.start(SCRIPT)
    assert not hasattr(forge_classic.xyz, "format_value_add_label")
    labels = [o.label for o in forge_classic.xyz.axis_options]
    assert "[A-STAR] Step size" in labels and "[A-STAR] Concepts" in labels
    processed, _ = forge_classic.run_xyz(SCRIPT, x=("[A-STAR] Step size", "0, 30"), prompt="a cat and a dog",
                                         steps=4)
    scales = sorted(astar_keys(c)["A-STAR scale"] for _, c in processed.xyz_cells)
    assert scales == ["0.0", "30.0"]
