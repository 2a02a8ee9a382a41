"""Opt-in tier: a running AUTOMATIC1111 WebUI 1.10.x with this extension installed, over HTTP.

Set ``ASTAR_WEBUI_URL`` (e.g. ``http://127.0.0.1:7860``, the WebUI started with ``--api``) to run it;
without it every test here is skipped. Optional: ``ASTAR_WEBUI_SD1``, ``ASTAR_WEBUI_SD2`` and
``ASTAR_WEBUI_SDXL`` name checkpoints (as ``/sdapi/v1/sd-models`` titles them) of those
architectures; tests that need one are skipped when it is not named. Sizes and step counts are small
so that a CPU WebUI with tiny random checkpoints answers quickly.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request

import pytest

URL = os.environ.get("ASTAR_WEBUI_URL", "").rstrip("/")
pytestmark = [pytest.mark.webui, pytest.mark.skipif(not URL, reason="ASTAR_WEBUI_URL is not set")]

REFUSED_SAMPLERS = {"UniPC", "Restart", "DPM fast", "DPM adaptive"}


def call(path: str, payload: dict | None = None, timeout: float = 900) -> dict | list:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(URL + path, data=data, headers={"Content-Type": "application/json"},
                                 method="GET" if payload is None else "POST")
    with urllib.request.urlopen(req, timeout=timeout) as res:
        body = res.read()
    return json.loads(body) if body else {}


def checkpoint(kind: str) -> str:
    name = os.environ.get(f"ASTAR_WEBUI_{kind}")
    if not name:
        pytest.skip(f"ASTAR_WEBUI_{kind} is not set")
    return name


def txt2img(args=None, *, prompt="a cat and a dog", model=None, **extra) -> dict:
    payload = {"prompt": prompt, "negative_prompt": "", "steps": 6, "width": 256, "height": 256, "seed": 1234,
               "sampler_name": "Euler", "cfg_scale": 7, "batch_size": 1, "n_iter": 1}
    payload.update(extra)
    if args is not None:
        payload["alwayson_scripts"] = {"A-STAR": {"args": args}}
    if model:
        payload.setdefault("override_settings", {})["sd_model_checkpoint"] = model
        payload["override_settings_restore_afterwards"] = False
    res = call("/sdapi/v1/txt2img", payload)
    res["info"] = json.loads(res["info"])
    return res


def infotext(res: dict, index: int = 0) -> dict[str, str]:
    """The A-STAR keys of an image's infotext, parsed as the WebUI parses them (png-info)."""
    parsed = call("/sdapi/v1/png-info", {"image": "data:image/png;base64," + res["images"][index]})
    return {k: str(v) for k, v in parsed["parameters"].items() if str(k).startswith("A-STAR")}


def pixels(b64: str) -> bytes:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB").tobytes()


def on(concepts="cat, dog", **fields) -> dict:
    return {"enabled": True, "concepts": concepts, **fields}


def test_script_is_listed_in_both_tabs():
    scripts = call("/sdapi/v1/scripts")
    assert "a-star" in scripts["txt2img"] and "a-star" in scripts["img2img"]
    info = [s for s in call("/sdapi/v1/script-info") if s["name"] == "a-star"]
    assert {s["is_img2img"] for s in info} == {False, True}
    labels = [a["label"] for a in info[0]["args"]]
    assert labels[:2] == ["A-STAR", "Concepts"]
    assert len(labels) == 12 and labels[10:] == ["Layout", "Layout weight"]


def test_positional_list_runs_and_writes_the_infotext():
    res = txt2img([True, "cat, dog", 20.0, 0.5])
    keys = infotext(res)
    assert keys["A-STAR enabled"] == "True" and keys["A-STAR concepts"] == "cat, dog"
    assert int(keys["A-STAR passes"]) == 3  # 6 steps, window 0.5
    before, after = (float(v) for v in keys["A-STAR overlap"].split("->"))
    assert 0 <= after <= 0.5 and 0 <= before <= 0.5
    assert "A-STAR error" not in keys and "A-STAR skipped" not in keys


def test_dict_with_words_and_positions():
    res = txt2img([{"enabled": True, "concepts": ["cat", 5], "iterations": 2, "window": 1.0}])
    keys = infotext(res)
    assert keys["A-STAR concepts"] == "cat, #5"
    assert int(keys["A-STAR passes"]) == 12


@pytest.mark.parametrize("args, field", [
    ([{"enabled": True, "concepts": "cat, dog", "scale": "big"}], "scale"),
    ([{"enable": True, "concepts": "cat, dog"}], "enable"),
    ([True, "cat, dog", 20.0, 7.0], "window"),
])
def test_malformed_arguments_turn_astar_off_and_still_give_an_image(args, field):
    res = txt2img(args)
    assert len(res["images"]) == 1
    keys = infotext(res)
    assert field in keys["A-STAR error"]
    assert "A-STAR passes" not in keys


def test_a_missing_word_is_a_warning():
    keys = infotext(txt2img([on("cat, horse")]))
    assert "horse" in keys["A-STAR warnings"]
    assert int(keys["A-STAR passes"]) == 3


def test_disabled_leaves_no_trace_and_is_bit_identical():
    plain = txt2img(None)
    assert infotext(plain) == {}
    explicit_off = txt2img([False, "cat, dog"])
    txt2img([on()])  # an A-STAR generation in between must leave nothing behind
    after = txt2img(None)
    assert infotext(explicit_off) == {} and infotext(after) == {}
    assert pixels(plain["images"][0]) == pixels(explicit_off["images"][0]) == pixels(after["images"][0])


def test_every_sampler_runs_or_is_refused_with_a_message():
    samplers = [s["name"] for s in call("/sdapi/v1/samplers")]
    assert samplers
    for name in samplers:
        keys = infotext(txt2img([on()], sampler_name=name, steps=4))
        if name in REFUSED_SAMPLERS:
            assert "not supported" in keys["A-STAR skipped"], name
        else:
            assert "A-STAR skipped" not in keys, (name, keys)
            assert int(keys["A-STAR passes"]) >= 1, name
            assert "A-STAR notes" not in keys, (name, keys)


def test_every_schedule_type_runs():
    for scheduler in call("/sdapi/v1/schedulers"):
        keys = infotext(txt2img([on()], scheduler=scheduler["label"], steps=4))
        assert int(keys["A-STAR passes"]) == 2, (scheduler["label"], keys)


@pytest.mark.parametrize("prompt, concepts", [
    ("a (cat:1.3) and a [dog]", "cat, dog"),
    ("a [cat:bird:0.5] and a dog", "cat, dog"),
    ("a cat AND a dog", "cat, dog"),
    ("a cat BREAK a dog", "cat, dog"),
    ("a cat, " + ", ".join(["tall green grass field"] * 20) + ", a dog", "cat, dog"),
    ("a cat and a dog <lora:nothing_here:0.8>", "cat, dog"),
])
def test_token_mapping(prompt, concepts):
    keys = infotext(txt2img([on(concepts)], prompt=prompt))
    assert "A-STAR skipped" not in keys and "A-STAR warnings" not in keys, keys
    assert int(keys["A-STAR passes"]) == 3


def test_prompts_that_differ_within_a_batch():
    res = txt2img([on()], prompt="a cat and a dog", batch_size=2, n_iter=2, seed=7)
    assert len(res["images"]) == 4
    for i in range(4):
        assert int(infotext(res, i)["A-STAR passes"]) == 3


def test_hires_fix_first_pass_only_by_default():
    extra = {"enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 4, "denoising_strength": 0.6,
             "hr_upscaler": "Latent"}
    keys = infotext(txt2img([on()], **extra))
    assert "A-STAR overlap" in keys and "A-STAR hires overlap" not in keys
    keys = infotext(txt2img([on(hires=True)], **extra))
    assert "A-STAR hires overlap" in keys


def test_img2img_window_starts_where_denoising_starts():
    base = txt2img(None)
    payload = {"init_images": [base["images"][0]], "prompt": "a cat and a dog", "steps": 10, "width": 256,
               "height": 256, "seed": 3, "sampler_name": "Euler", "denoising_strength": 0.6,
               "alwayson_scripts": {"A-STAR": {"args": [on()]}}}
    res = call("/sdapi/v1/img2img", payload)
    res["info"] = json.loads(res["info"])
    keys = infotext(res)
    # 10 steps at strength 0.6: the WebUI runs the last t_enc + 1 = 7 steps; the window is the first half
    assert int(keys["A-STAR passes"]) == 4


def test_pasting_the_infotext_through_the_api_restores_the_fields():
    first = txt2img([on("cat, dog", scale=12.5, window=0.3, ret_weight=0.5)])
    text = first["info"]["infotexts"][0]
    again = txt2img(None, infotext=text)
    a, b = infotext(first), infotext(again)
    for key in ("A-STAR enabled", "A-STAR concepts", "A-STAR scale", "A-STAR window", "A-STAR ret weight"):
        assert a[key] == b[key]


def test_map_resolution_setting_and_its_paste_through_the_api():
    """``astar_map_level`` through ``override_settings``; the infotext's ``A-STAR maps`` is turned back into that
    override setting when the infotext is pasted (the API's ``infotext`` field, as the UI's paste button does)."""
    try:
        fine = txt2img([on()], override_settings={"astar_map_level": "image/16"})
        keys = infotext(fine)
        assert keys["A-STAR maps"] == "image/16" and int(keys["A-STAR passes"]) == 3, keys
        assert not {"A-STAR skipped", "A-STAR error"} & set(keys), keys
        coarse = txt2img([on()])
        assert "A-STAR maps" not in infotext(coarse)
        assert pixels(fine["images"][0]) != pixels(coarse["images"][0])
        again = txt2img(None, infotext=fine["info"]["infotexts"][0])
        assert infotext(again)["A-STAR maps"] == "image/16"
        assert pixels(again["images"][0]) == pixels(fine["images"][0])
        bad = txt2img([on()], override_settings={"astar_map_level": "image/8"})
        keys = infotext(bad)
        assert "astar_map_level" in keys["A-STAR skipped"] and "A-STAR passes" not in keys and len(bad["images"]) == 1
    finally:
        call("/sdapi/v1/options", {"astar_map_level": "image/32"})


def test_interrupt_during_a_correction_stops_promptly():
    result = {}

    def run():
        result["res"] = txt2img([on(iterations=10, window=1.0)], steps=40)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(3.0)
    t0 = time.time()
    call("/sdapi/v1/interrupt", {})
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert time.time() - t0 < 60
    assert len(result["res"]["images"]) == 1


# The optimisations' titles in WebUI 1.10.1 (modules/sd_hijack_optimizations.py: name, or "name - label"); xformers
# is left out (not installed on a CPU WebUI).
OPTIMISATIONS = ("None", "Doggettx", "sdp - scaled dot product",
                 "sdp-no-mem - scaled dot product without memory efficient attention", "sub-quadratic", "InvokeAI",
                 "V1 - original v1")


def test_cross_attention_optimisations_see_the_same_maps():
    """A-STAR recomputes the maps from q and k, whatever kernel computes the layer's output. The optimisation is
    switched through /sdapi/v1/options, whose opts.set runs the setting's change callback (redo_hijack); a request's
    override_settings would not (processing.py sets the value without the callback), and an unknown title silently
    falls back to the first available optimisation."""
    before = call("/sdapi/v1/options")["cross_attention_optimization"]
    values = {}
    try:
        for opt in OPTIMISATIONS:
            call("/sdapi/v1/options", {"cross_attention_optimization": opt})
            assert call("/sdapi/v1/options")["cross_attention_optimization"] == opt
            keys = infotext(txt2img([on()]))
            values[opt] = float(keys["A-STAR overlap"].split("->")[0])
    finally:
        call("/sdapi/v1/options", {"cross_attention_optimization": before})
    assert len(values) == len(OPTIMISATIONS)
    ref = next(iter(values.values()))
    assert all(abs(v - ref) < 1e-3 for v in values.values()), values


def test_sd2_v_prediction():
    keys = infotext(txt2img([on()], model=checkpoint("SD2")))
    assert int(keys["A-STAR passes"]) == 3


@pytest.mark.parametrize("prompt", [
    "a (cat:1.3) and a [dog]",
    "a cat BREAK a dog",
    "a cat, " + ", ".join(["tall green grass field"] * 20) + ", a dog",
])
def test_sd2_token_mapping_with_the_openclip_tokenizer(prompt):
    keys = infotext(txt2img([on()], model=checkpoint("SD2"), prompt=prompt))
    assert "A-STAR skipped" not in keys and "A-STAR warnings" not in keys, keys
    assert int(keys["A-STAR passes"]) == 3


def test_sd2_any_size():
    model = checkpoint("SD2")
    for width, height in ((320, 192), (264, 200)):
        res = txt2img([on()], model=model, width=width, height=height)
        keys = infotext(res)
        assert res["info"]["width"] == width and res["info"]["height"] == height
        assert int(keys["A-STAR passes"]) == 3 and "A-STAR error" not in keys, (width, height, keys)


def test_sdxl_runs_with_no_extra_setting():
    keys = infotext(txt2img([on()], model=checkpoint("SDXL")))
    assert int(keys["A-STAR passes"]) == 3, keys
    before, after = (float(v) for v in keys["A-STAR overlap"].split("->"))
    assert 0 <= after <= 0.5 and 0 <= before <= 0.5
    assert not {"A-STAR skipped", "A-STAR warnings", "A-STAR error", "A-STAR notes", "A-STAR layers"} & set(keys)


@pytest.mark.parametrize("width, height", [(320, 192), (264, 200), (136, 72), (640, 384)])
def test_sdxl_any_size(width, height):
    res = txt2img([on()], model=checkpoint("SDXL"), width=width, height=height)
    keys = infotext(res)
    assert res["info"]["width"] == width and res["info"]["height"] == height
    assert int(keys["A-STAR passes"]) == 3 and "A-STAR error" not in keys and "A-STAR skipped" not in keys, keys


@pytest.mark.parametrize("prompt, concepts", [
    ("a (cat:1.3) and a [dog]", "cat, dog"),
    ("a cat BREAK a dog", "cat, dog"),
    ("a cat, " + ", ".join(["tall green grass field"] * 20) + ", a dog", "cat, dog"),
    ("a caf\u00e9 cat &amp; a na\u00efve dog, \U0001f431 \uff21 don't", "cat, dog"),
    ("a cat\u00a0and a dog's ball in \u65e5\u672c", "cat, dog"),
])
def test_sdxl_both_text_encoders_split_the_prompt_alike(prompt, concepts):
    """A-STAR compares CLIP-L's and OpenCLIP-bigG's ``tokenize_line`` chunks for every prompt and skips with "split
    this prompt differently" when they differ; here the WebUI's own encoders of an SDXL checkpoint must agree."""
    keys = infotext(txt2img([on(concepts)], model=checkpoint("SDXL"), prompt=prompt))
    assert "A-STAR skipped" not in keys and "A-STAR warnings" not in keys, keys
    assert int(keys["A-STAR passes"]) == 3


def test_sdxl_layer_setting():
    model = checkpoint("SDXL")
    try:
        keys = infotext(txt2img([on()], model=model, override_settings={"astar_layers": "up"}))
        assert re.fullmatch(r"up, \d+ of the \d+ image/32 layers", keys["A-STAR layers"]), keys
        assert int(keys["A-STAR passes"]) == 3
        keys = infotext(txt2img([on()], model=model, override_settings={"astar_layers": "down+mid"}))
        assert keys["A-STAR layers"].startswith("down+mid, ") and int(keys["A-STAR passes"]) == 3
    finally:
        call("/sdapi/v1/options", {"astar_layers": "automatic"})  # an override of an unsaved setting sticks
    assert "A-STAR layers" not in infotext(txt2img([on()], model=model))


def test_sdxl_refiner_switch_inside_the_window():
    refiner = checkpoint("SD1")
    keys = infotext(txt2img([on()], model=checkpoint("SDXL"), steps=10, refiner_checkpoint=refiner,
                            refiner_switch_at=0.3))
    note = re.search(r"first pass: the refiner '([^']+)' took over at step (\d+) of 10, inside A-STAR's window of 5 "
                     r"steps: A-STAR corrected the base model's steps only", keys.get("A-STAR notes", ""))
    assert note and refiner.split(".")[0] in note.group(1), keys
    assert int(keys["A-STAR passes"]) == int(note.group(2)) < 5


def test_sdxl_heatmaps_and_the_tokens_route():
    model = checkpoint("SDXL")
    res = txt2img([on(heatmaps=True)], model=model, width=320, height=192)
    assert len(res["images"]) == 2  # the image and its heatmap
    text = res["info"]["infotexts"][1]  # (the heatmap PNG itself carries no parameters chunk)
    assert "A-STAR heatmap: " in text and "A-STAR passes: 3" in text, text
    body = call("/astar/v1/tokens", {"prompt": "a (cat:1.2) and a dog", "concepts": "cat, dog"})
    assert body["model"].startswith(model) and body["refusal"] is None
    assert [c["columns"] for c in body["parts"][0]["concepts"]] == [[2], [5]]


def test_switching_checkpoints_between_generations():
    sd1 = checkpoint("SD1")
    sd2 = checkpoint("SD2")
    for model in (sd1, sd2, sd1):
        assert int(infotext(txt2img([on()], model=model))["A-STAR passes"]) == 3


# --- layout mode (issue 11) ------------------------------------------------------------------------------------
LR = "cat 0.00 0.00 0.50 1.00; dog 0.50 0.00 1.00 1.00"


def _fit(keys: dict[str, str]) -> dict[str, float]:
    return {k: float(v) for k, v in (x.rsplit(" ", 1) for x in keys["A-STAR layout fit"].split(", "))}


def _png(array) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_layout_in_the_dict_the_list_and_at_position_10():
    keys = infotext(txt2img([on(layout={"cat": [0, 0, 0.5, 1], "dog": [0.5, 0, 1, 1]})]))
    assert keys["A-STAR layout"] == LR and "A-STAR error" not in keys
    fit = _fit(keys)
    assert set(fit) == {"cat", "dog"} and all(0 <= v <= 1 for v in fit.values())
    keys = infotext(txt2img([on(layout=[{"concept": "dog", "box": [0.5, 0, 1, 1]}])]))
    assert keys["A-STAR layout"] == "dog 0.50 0.00 1.00 1.00" and set(_fit(keys)) == {"dog"}
    keys = infotext(txt2img([True, "cat, dog", 20.0, 0.5, 1.0, 1.0, 1, 0.5, False, False, LR]))
    assert keys["A-STAR layout"] == LR and set(_fit(keys)) == {"cat", "dog"}


def test_layout_with_a_mask_of_any_size():
    import numpy as np

    mask = np.zeros((45, 70), np.uint8)
    mask[:, :30] = 255
    keys = infotext(txt2img([on(layout=[{"concept": "cat", "mask": _png(mask)}])]))
    assert "A-STAR error" not in keys and keys["A-STAR layout"].startswith("cat mask ")
    assert set(_fit(keys)) == {"cat"}


@pytest.mark.parametrize("layout, text", [
    ("cat 0 0 1.5 1", "outside the image"),
    ({"cat": [0.6, 0, 0.4, 1]}, "x0 >= x1"),
    ({"bird": [0, 0, 0.5, 1]}, "not one of the concepts"),
    ([{"concept": "cat", "mask": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 30).decode()}], "could not be read"),
])
def test_bad_layouts_turn_astar_off_and_still_give_an_image(layout, text):
    res = txt2img([on(layout=layout)])
    assert len(res["images"]) == 1
    keys = infotext(res)
    assert "layout: " in keys["A-STAR error"] and text in keys["A-STAR error"]
    assert "A-STAR passes" not in keys


def test_layout_on_img2img_and_the_hires_pass():
    init = txt2img(None)["images"][0]
    payload = {"prompt": "a cat and a dog", "steps": 6, "width": 256, "height": 192, "seed": 7, "sampler_name": "Euler",
               "denoising_strength": 0.7, "init_images": [init],
               "alwayson_scripts": {"A-STAR": {"args": [on(layout=LR)]}}}
    res = call("/sdapi/v1/img2img", payload)
    res["info"] = json.loads(res["info"])
    keys = infotext(res)
    assert keys["A-STAR layout"] == LR and set(_fit(keys)) == {"cat", "dog"}
    keys = infotext(txt2img([on(layout=LR, hires=True)], enable_hr=True, hr_scale=1.5, hr_second_pass_steps=3,
                            denoising_strength=0.6, hr_upscaler="Latent"))
    assert "A-STAR hires overlap" in keys and set(_fit(keys)) == {"cat", "dog"}


def test_pasting_a_layout_through_the_api_restores_it():
    first = txt2img([on(layout=LR)])
    again = txt2img(None, infotext=first["info"]["infotexts"][0])
    assert infotext(again)["A-STAR layout"] == LR


# --- the trained toy model v2 inside the WebUI (ASTAR_WEBUI_TOY: its title, after `python -m astar_ext.toy.export
# <webui>/models/Stable-diffusion`; the WebUI on CPU in full precision) --------------------------------------------

def _toy_judge(res: dict, objects) -> tuple[list[bool], bool]:
    """Per object of the prompt: drawn or not; and whether the image shows exactly the prompt's objects (the
    benchmark's "only these": every object drawn and nothing else)."""
    import numpy as np
    from PIL import Image

    from astar_ext.toy import bench as B
    from astar_ext.toy import detect as T

    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(res["images"][0]))).convert("RGB"), np.float32) / 255
    dets = T.detect(img)
    colours = [c for c, _ in objects]
    present = [T.drawn(dets, c) for c in colours]
    return present, all(present) and B.extra_objects(dets, colours) == 0


@pytest.mark.parametrize("maps", ["image/32", "image/16"], ids=["image32", "image16"])
def test_toy_model_plain_and_astar_through_the_api_match_the_engine(maps, monkeypatch):
    """The same prompts and seeds through ``/sdapi/v1/txt2img`` (Euler, 20 steps, CFG 3, 256 px) and through the
    engine's own sampling (:func:`astar_ext.toy.bench.evaluate`): the WebUI starts from the same noise (its CPU
    seed), so image by image the objects drawn agree, and the all-present and only-these rates plain and with
    A-STAR (the defaults) agree within noise: no significant difference in a paired sign test on the images whose
    outcome differs (p >= 0.05). Plain sampling must agree image by image (>= 85 %); with A-STAR at least as well
    as the engine agrees with itself when its start noise is multiplied by 1 + 1e-6, less 10 points (A-STAR's
    latent steps make an outcome depend on float rounding: at 8x8 that perturbation alone changed about a fifth
    of the all-present outcomes on the step-12500 weights, a ninth on step 21000 and 18 % on step 23500, where
    plain and A-STAR differ in about a fifth of them). ``ASTAR_WEBUI_TOY_PROMPTS`` (default
    24) two-object prompts x ``ASTAR_WEBUI_TOY_SEEDS`` (default 2) report seeds. ``maps``: the
    ``astar_map_level`` setting, sent as an override setting (image/32 = the toy model's 8x8 maps, image/16 = its
    16x16 maps, the engine's ``--level 1``)."""
    import dataclasses

    import numpy as np

    from astar_ext import params as P
    from astar_ext.capture import parse_map_level
    from astar_ext.toy import bench as B
    from astar_ext.toy.model import load_model

    model = checkpoint("TOY")
    prompts = B.benchmark_prompts(2, int(os.environ.get("ASTAR_WEBUI_TOY_PROMPTS", "24")))
    seeds = list(range(B.REPORT_FIRST_SEED, B.REPORT_FIRST_SEED + int(os.environ.get("ASTAR_WEBUI_TOY_SEEDS", "2"))))
    api = {"plain": [], "A-STAR": []}  # per image: (each object drawn, only these)
    try:
        for i, objects in enumerate(prompts):
            text = B.prompt_text(objects, i)
            concepts = ", ".join(f"{c} {s}" for c, s in objects)
            for seed in seeds:
                common = dict(prompt=text, model=model, steps=20, cfg_scale=3, width=256, height=256, seed=seed,
                              sampler_name="Euler", scheduler="Automatic")
                api["plain"].append(_toy_judge(txt2img(**common), objects))
                res = txt2img([on(concepts)], override_settings={"astar_map_level": maps}, **common)
                info = res["info"]["infotexts"][0]
                assert "A-STAR passes: 10" in info, info
                assert ("A-STAR maps: image/16" in info) == (maps == "image/16"), info
                api["A-STAR"].append(_toy_judge(res, objects))
    finally:
        call("/sdapi/v1/options", {"astar_map_level": "image/32"})  # restore_afterwards is off (the model switch)
    toy = load_model()
    toy.config = dataclasses.replace(toy.config, capture_level=parse_map_level(maps))
    engine = {"plain": B.evaluate(toy, prompts, seeds, None), "A-STAR": B.evaluate(toy, prompts, seeds, P.DEFAULTS)}
    from astar_ext.toy import sample as S

    noise = S.initial_noise
    monkeypatch.setattr(S, "initial_noise", lambda *a, **k: noise(*a, **k) * (1 + 1e-6))
    nudged = B.evaluate(toy, prompts, seeds, P.DEFAULTS)
    monkeypatch.undo()
    n = len(api["plain"])
    lines, checks = [], []
    for name in ("plain", "A-STAR"):
        judged = {"all_present": np.array([all(present) for present, _ in api[name]]),
                  "only_these": np.array([clean for _, clean in api[name]])}
        for field, a in judged.items():
            e = getattr(engine[name], field)
            agree = float((a == e).mean())
            floor = 0.85 if name == "plain" else float((getattr(nudged, field) == e).mean()) - 0.10
            measure = field.replace("_", " ")
            p = B.sign_test(int((a & ~e).sum()), int((~a & e).sum()))
            lo, hi = B.wilson(int(a.sum()), n)
            lines.append(f"{maps} {name}: {measure} through the API {a.mean():.1%} [{lo:.0%}, {hi:.0%}], engine "
                         f"{e.mean():.1%}; same outcome in {agree:.0%} of {n} images (needed {floor:.0%}), "
                         f"sign test p = {p:.2g}")
            checks.append((lines[-1], agree, floor, p))
    print("\n".join(lines))
    for line, agree, floor, p in checks:
        assert agree >= floor and p >= 0.05, line
