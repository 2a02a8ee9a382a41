"""Opt-in tier: a running WebUI Forge with this extension installed, over HTTP.

Set ``ASTAR_FORGE_URL`` (e.g. ``http://127.0.0.1:7861``, Forge started with ``--api``; on a CPU with
``--always-cpu``) to run it; without it every test here is skipped. Wait for Forge's ``Startup time:`` line
first: its ``/sdapi`` routes answer before the scripts' default arguments exist. Optional: ``ASTAR_FORGE_SDXL``
names an SDXL checkpoint (as ``/sdapi/v1/sd-models`` titles it; the loaded checkpoint is taken as the SD 1.x
one), ``ASTAR_FORGE_REPORT`` a JSON file that receives, per sampler, what A-STAR did (the evidence of the
sampler list in ``docs/hosts.md``), ``ASTAR_FORGE_SAMPLERS`` a comma-separated subset of the samplers to sweep.
Forge accepts only full-size checkpoints; with random weights on a CPU a step at 256x256 takes seconds, so the
generations here are small and short. The tier runs on Forge main and on Forge Classic alike.
"""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
import urllib.request

import pytest

URL = os.environ.get("ASTAR_FORGE_URL", "").rstrip("/")
pytestmark = [pytest.mark.webui, pytest.mark.skipif(not URL, reason="ASTAR_FORGE_URL is not set")]

REFUSED = {"UniPC", "Restart", "DPM fast", "DPM adaptive", "HeunPP2"}
STEPS = 4  # window 0.5: two corrected steps


def post(path: str, payload: dict | None = None, timeout: float = 1800) -> dict | list:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(URL + path, data=data, headers={"Content-Type": "application/json"},
                                 method="GET" if payload is None else "POST")
    with urllib.request.urlopen(req, timeout=timeout) as res:
        body = res.read()
    return json.loads(body) if body else {}


def generate(args=None, *, prompt="a cat and a dog", model=None, **extra) -> dict:
    payload = {"prompt": prompt, "negative_prompt": "", "steps": STEPS, "width": 256, "height": 256, "seed": 4321,
               "sampler_name": "Euler", "cfg_scale": 7, "batch_size": 1, "n_iter": 1, **extra}
    if args is not None:
        payload["alwayson_scripts"] = {"A-STAR": {"args": args}}
    if model:
        payload["override_settings"] = {"sd_model_checkpoint": model}
        payload["override_settings_restore_afterwards"] = True
    res = post("/sdapi/v1/txt2img", payload)
    res["info"] = json.loads(res["info"])
    return res


def txt2img_fields() -> set[str]:
    """The fields of the program's txt2img API request (from its OpenAPI schema)."""
    schemas = post("/openapi.json")["components"]["schemas"]
    name = next(n for n in schemas if n.startswith("StableDiffusionProcessingTxt2Img"))
    return set(schemas[name].get("properties", {}))


def keys_of(res: dict, index: int = 0) -> dict[str, str]:
    """The A-STAR keys of an image's infotext, parsed by Forge itself (png-info)."""
    parsed = post("/sdapi/v1/png-info", {"image": "data:image/png;base64," + res["images"][index]})
    return {k: str(v) for k, v in parsed["parameters"].items() if str(k).startswith("A-STAR")}


def rgb(b64: str) -> bytes:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB").tobytes()


def on(concepts="cat, dog", **fields) -> dict:
    return {"enabled": True, "concepts": concepts, **fields}


def sdxl() -> str:
    name = os.environ.get("ASTAR_FORGE_SDXL")
    if not name:
        pytest.skip("ASTAR_FORGE_SDXL is not set")
    return name


def test_the_script_is_listed_with_the_fields_of_the_params_table():
    info = [s for s in post("/sdapi/v1/script-info") if s["name"] == "a-star"]
    assert {s["is_img2img"] for s in info} == {False, True}
    labels = [a["label"] for a in info[0]["args"]]
    assert labels[:2] == ["A-STAR", "Concepts"] and labels[10:] == ["Layout", "Layout weight"], labels


def test_list_and_dict_forms_correct_the_latent():
    keys = keys_of(generate([True, "cat, dog", 20.0, 0.5]))
    assert keys["A-STAR concepts"] == "cat, dog" and keys["A-STAR passes"] == "2", keys
    assert not {"A-STAR error", "A-STAR skipped"} & set(keys), keys
    keys = keys_of(generate([{"concepts": ["cat", 5], "iterations": 2}]))
    assert keys["A-STAR concepts"] == "cat, #5" and keys["A-STAR passes"] == "4", keys


def test_off_is_bit_identical_to_no_extension_and_on_changes_the_image():
    plain = generate(None)
    off = generate([False, "cat, dog"])
    corrected = generate([on()])
    after = generate(None)
    assert keys_of(plain) == {} and keys_of(off) == {} and keys_of(after) == {}
    assert rgb(plain["images"][0]) == rgb(off["images"][0]) == rgb(after["images"][0])
    assert rgb(corrected["images"][0]) != rgb(plain["images"][0])  # the sampler stepped from the corrected latent


@pytest.mark.parametrize("args, field", [
    ([{"enabled": True, "concepts": "cat, dog", "scale": "big"}], "scale"),
    ([{"enable": True, "concepts": "cat, dog"}], "enable"),
    ([True, "cat, dog", 20.0, 7.0], "window"),
])
def test_bad_arguments_give_a_message_and_the_image(args, field):
    res = generate(args)
    assert len(res["images"]) == 1
    keys = keys_of(res)
    assert field in keys["A-STAR error"] and "A-STAR passes" not in keys


def test_a_missing_word_is_a_warning():
    keys = keys_of(generate([on("cat, horse")]))
    assert "horse" in keys["A-STAR warnings"] and keys["A-STAR passes"] == "2"


def test_every_sampler_corrects_or_is_refused_with_a_message():
    """Each of Forge's samplers: A-STAR corrects every step of its window (and the image differs from the plain
    one of the same seed), or says in the infotext that the sampler is not supported."""
    report = {}
    names = [s["name"] for s in post("/sdapi/v1/samplers")]
    if os.environ.get("ASTAR_FORGE_SAMPLERS"):  # a comma-separated subset (e.g. to resume a sweep)
        wanted = [n.strip() for n in os.environ["ASTAR_FORGE_SAMPLERS"].split(",")]
        assert set(wanted) <= set(names), set(wanted) - set(names)
        names = wanted
    for name in names:
        # window 0.5: one corrected step; UniPC's order (3) must be below the step count (Forge asserts it)
        steps = 4 if name == "UniPC" else 2
        small = {"sampler_name": name, "steps": steps, "width": 192, "height": 192}
        res = generate([on()], **small)
        keys = keys_of(res)
        report[name] = {"keys": keys}
        if "A-STAR skipped" not in keys:  # the plain image of the same seed, to show the correction persisted
            report[name]["changed"] = rgb(res["images"][0]) != rgb(generate(None, **small)["images"][0])
        if os.environ.get("ASTAR_FORGE_REPORT"):
            with open(os.environ["ASTAR_FORGE_REPORT"], "w") as f:
                json.dump(report, f, indent=1)
    for name, entry in report.items():
        keys = entry["keys"]
        if name in REFUSED:
            assert "not supported" in keys["A-STAR skipped"], (name, keys)
        else:
            assert keys.get("A-STAR passes") == "1" and entry.get("changed"), (name, entry)
            assert not {"A-STAR error", "A-STAR skipped", "A-STAR notes"} & set(keys), (name, keys)


def test_heatmaps_and_the_tokens_route():
    res = generate([on(heatmaps=True)])
    assert len(res["images"]) == 2
    assert "A-STAR heatmap: " in res["info"]["infotexts"][1]
    body = post("/astar/v1/tokens", {"prompt": "a (cat:1.2) and a dog BREAK on a sofa", "concepts": "cat, dog"})
    assert body["refusal"] is None
    assert [c["columns"] for c in body["parts"][0]["concepts"]] == [[2], [5]]
    assert [c["break"] for c in body["parts"][0]["chunks"]] == [False, True]


def test_hires_fix_first_pass_only_by_default_and_both_passes_when_asked():
    extra = {"enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 2, "denoising_strength": 0.6,
             "hr_upscaler": "Latent"}
    if "hr_additional_modules" in txt2img_fields():  # Forge main's API fails without it (processing.py:1405)
        extra["hr_additional_modules"] = ["Use same choices"]
    keys = keys_of(generate([on()], **extra))
    assert keys["A-STAR passes"] == "2" and "A-STAR hires overlap" not in keys, keys
    keys = keys_of(generate([on(hires=True)], **extra))
    assert keys["A-STAR passes"] == "3" and "A-STAR hires overlap" in keys, keys


def test_interrupt_stops_the_correction_and_the_image_is_made():
    result = {}
    thread = threading.Thread(target=lambda: result.update(res=generate([on(iterations=10, window=1.0)], steps=20)))
    thread.start()
    # interrupt once sampling has begun (an interrupt before the job starts is reset by the job)
    while thread.is_alive() and int(post("/sdapi/v1/progress?skip_current_image=true")["state"]["sampling_step"]) < 1:
        time.sleep(1.0)
    post("/sdapi/v1/interrupt", {})
    thread.join(timeout=1800)
    res = result["res"]
    assert len(res["images"]) == 1
    passes = int(keys_of(res).get("A-STAR passes", "0"))
    assert passes < 200, passes  # 20 steps x 10 iterations had it not stopped


def test_sdxl_corrects_with_both_text_encoders():
    keys = keys_of(generate([on()], model=sdxl()))
    assert keys["A-STAR passes"] == "2", keys
    assert not {"A-STAR error", "A-STAR skipped", "A-STAR warnings"} & set(keys), keys
    keys = keys_of(generate([on()], model=sdxl(), prompt="a (cat:1.3) and a [dog] BREAK on a sofa"))
    assert keys["A-STAR passes"] == "2" and "A-STAR skipped" not in keys, keys


# --- layout mode (issue 11) on Forge -----------------------------------------------------------------------------
LR = "cat 0.00 0.00 0.50 1.00; dog 0.50 0.00 1.00 1.00"


def _fit(keys: dict[str, str]) -> dict[str, float]:
    return {k: float(v) for k, v in (x.rsplit(" ", 1) for x in keys["A-STAR layout fit"].split(", "))}


def test_layout_in_the_dict_and_at_position_10_changes_the_image():
    """A layout through the API on Forge: the dict form and the positional list (position 10) both come back as
    ``A-STAR layout`` with a fit per concept; the layout changes the image against A-STAR without one."""
    boxed = generate([on(layout={"cat": [0, 0, 0.5, 1], "dog": [0.5, 0, 1, 1]})])
    keys = keys_of(boxed)
    assert keys["A-STAR layout"] == LR and keys["A-STAR passes"] == "2", keys
    assert not {"A-STAR error", "A-STAR skipped"} & set(keys), keys
    fit = _fit(keys)
    assert set(fit) == {"cat", "dog"} and all(0 <= v <= 1 for v in fit.values()), fit
    keys = keys_of(generate([True, "cat, dog", 20.0, 0.5, 1.0, 1.0, 1, 0.5, False, False, "dog 0.5 0 1 1", 10]))
    assert keys["A-STAR layout"] == "dog 0.50 0.00 1.00 1.00" and set(_fit(keys)) == {"dog"}, keys
    unboxed = generate([on()])
    assert "A-STAR layout" not in keys_of(unboxed)
    assert rgb(boxed["images"][0]) != rgb(unboxed["images"][0])


def test_a_bad_layout_turns_astar_off_and_still_gives_an_image():
    res = generate([on(layout={"bird": [0, 0, 0.5, 1]})])
    assert len(res["images"]) == 1
    keys = keys_of(res)
    assert "layout: " in keys["A-STAR error"] and "not one of the concepts" in keys["A-STAR error"], keys
    assert "A-STAR passes" not in keys
