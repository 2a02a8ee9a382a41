"""Layout mode through the A-STAR script in the STAND-IN of WebUI 1.10.1 (tests/standin/webui): the UI field, the
API's forms, bad input, the infotext (layout and fit) and its paste, img2img, the hires pass, batches, odd sizes,
the XYZ plot and the heatmaps."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch

from tests.conftest import SCRIPT, astar_keys, on, run
from tests.test_webui_script import no_hooks_left

LR = "cat 0.00 0.00 0.50 1.00; dog 0.50 0.00 1.00 1.00"


def png_b64(array: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def fits(keys) -> dict[str, float]:
    return {k: float(v) for k, v in (x.rsplit(" ", 1) for x in keys["A-STAR layout fit"].split(", "))}


def test_layout_field_in_both_tabs_at_position_10(webui):
    from astar_ext import params as P

    webui.start(SCRIPT)
    for is_img2img in (False, True):
        script = webui.script("A-STAR", is_img2img)
        runner = webui.scripts.scripts_img2img if is_img2img else webui.scripts.scripts_txt2img
        comps = runner.inputs[script.args_from:script.args_to]
        layout = comps[10]
        assert layout.label == "Layout" and layout.value == "" and layout.elem_id.endswith("_astar_layout")
        target = script.infotext_fields[10][1]
        assert target({"A-STAR layout": LR}) == LR and target({}) == ""  # a plain image's paste clears it
        assert script.paste_field_names[10] == P.FIELD_BY_NAME["layout"].infotext == "A-STAR layout"


def test_layout_from_the_dict_and_the_positional_list(webui):
    processed, _ = run(webui, on(layout={"cat": [0, 0, 0.5, 1], "dog": [0.5, 0, 1, 1]}), api=True)
    keys = astar_keys(processed)
    assert keys["A-STAR layout"] == LR and "A-STAR error" not in keys
    fit = fits(keys)
    assert set(fit) == {"cat", "dog"} and all(0 <= v <= 1 for v in fit.values())
    positional = [True, "cat, dog", 20.0, 0.5, 1.0, 1.0, 1, 0.5, False, False, "dog 0.5 0 1 1"]
    keys = astar_keys(run(webui, positional).processed)
    assert keys["A-STAR layout"] == "dog 0.50 0.00 1.00 1.00" and set(fits(keys)) == {"dog"}
    assert no_hooks_left(webui)


def test_the_layout_changes_the_image_and_moves_attention_into_the_boxes(webui):
    """The same seed with opposite layouts: different images, and each concept's attention (fit, end of the
    window) higher inside its box when the box is on its side than when it is on the other."""
    left, _ = run(webui, on(layout=LR, window=1.0, scale=40), seed=3, steps=6)
    right, _ = run(webui, on(layout="cat 0.5 0 1 1; dog 0 0 0.5 1", window=1.0, scale=40), seed=3, steps=6)
    plain, _ = run(webui, on(window=1.0, scale=40), seed=3, steps=6)
    assert left.images[0].tobytes() != right.images[0].tobytes() != plain.images[0].tobytes()
    a, b = fits(astar_keys(left)), fits(astar_keys(right))
    # share inside the left half (cat's box in the first run, dog's in the second) vs the right half:
    # cat in the left half: a["cat"]; cat in the left half in the second run: 1 - b["cat"] (the halves tile the grid)
    assert a["cat"] > 1 - b["cat"] and b["dog"] > 1 - a["dog"], (a, b)


@pytest.mark.parametrize("layout, text", [
    ("cat 0 0 1.5 1", "outside the image"),
    ({"cat": [0.6, 0, 0.4, 1]}, "x0 >= x1"),
    ({"bird": [0, 0, 0.5, 1]}, "'bird' is not one of the concepts"),
    ([{"concept": "cat", "mask": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 30).decode()}], "could not be read"),
    ([{"concept": "cat", "mask": png_b64(np.zeros((16, 16), np.uint8))}], "nothing inside"),
    ([{"concept": "cat", "mask": "%%%"}], "not valid base64"),
])
def test_bad_layouts_turn_astar_off_and_the_image_is_still_made(webui, layout, text):
    processed, _ = run(webui, on(layout=layout), api=True)
    assert len(processed.images) == 1
    keys = astar_keys(processed)
    assert keys["A-STAR error"].startswith("A-STAR is off for this job: layout: ") and text in keys["A-STAR error"]
    assert "A-STAR passes" not in keys and "A-STAR layout" not in keys
    plain, _ = run(webui)
    assert processed.images[0].tobytes() == plain.images[0].tobytes()  # A-STAR really was off
    assert no_hooks_left(webui)


def test_a_mask_layout_of_any_size_is_kept_compactly(webui):
    from astar_ext import params as P
    from astar_ext.regions import decode_mask

    rgb = np.zeros((37, 53, 3), np.uint8)
    rgb[:, :20] = 230  # white-ish on the left ~38 % of the width
    rgb[:, 20:] = (255, 0, 0)  # red: luminance 76 < 128, outside
    processed, _ = run(webui, on(layout=[{"concept": "cat", "mask": png_b64(rgb)}]), api=True)
    keys = astar_keys(processed)
    assert "A-STAR error" not in keys and set(fits(keys)) == {"cat"}
    (entry,) = P.parse_layout(keys["A-STAR layout"])
    mask = decode_mask(entry.mask)
    assert mask.shape == (37, 53) and mask[:, :20].all() and not mask[:, 20:].any()
    assert len(entry.mask) < len(png_b64(rgb))  # re-encoded as a 1-bit PNG


def test_infotext_layout_pastes_back(webui):
    from astar_ext import params as P

    processed, _ = run(webui, on(layout=LR))
    updates = dict(webui.paste(processed.infotexts[0]))
    script = webui.script("A-STAR")
    comps = webui.scripts.scripts_txt2img.inputs[script.args_from:script.args_to]
    values = [updates[c]["value"] for c in comps]
    assert P.from_args(values).layout == LR
    plain, _ = run(webui)
    assert dict(webui.paste(plain.infotexts[0]))[comps[10]]["value"] == ""


@pytest.mark.parametrize("size", [(320, 192), (192, 448)])
def test_odd_sizes_batches_and_img2img(webui, size):
    width, height = size  # latents 40x24 / 24x56: maps 10x6 / 6x14
    processed, _ = run(webui, on(layout=LR), width=width, height=height, batch_size=2, n_iter=2)
    first = processed.index_of_first_image
    assert len(processed.images) == first + 4
    for i in range(4):
        keys = astar_keys(processed, first + i)
        assert set(fits(keys)) == {"cat", "dog"} and "A-STAR error" not in keys and "A-STAR notes" not in keys
    latent = torch.randn(1, 4, height // 8, width // 8, generator=torch.Generator().manual_seed(0))
    processed, _ = webui.run_img2img(SCRIPT, on(layout=LR), prompt="a cat and a dog", steps=6, denoising_strength=0.7,
                                     init_latent=latent, width=width, height=height)
    keys = astar_keys(processed)
    assert keys["A-STAR layout"] == LR and set(fits(keys)) == {"cat", "dog"}
    assert no_hooks_left(webui)


def test_hires_pass_with_a_layout(webui):
    extra = dict(enable_hr=True, hr_scale=1.5, hr_second_pass_steps=4, denoising_strength=0.6)
    keys = astar_keys(run(webui, on(layout=LR, hires=True), **extra).processed)
    assert "A-STAR hires overlap" in keys and set(fits(keys)) == {"cat", "dog"}
    assert no_hooks_left(webui)


def test_xyz_axis_over_layouts(webui):
    webui.start(SCRIPT)
    assert "[A-STAR] Layout" in [o.label for o in webui.xyz.axis_options]
    swapped = "cat 0.50 0.00 1.00 1.00; dog 0.00 0.00 0.50 1.00"
    processed, _ = webui.run_xyz(SCRIPT, x=("[A-STAR] Layout", f"{LR}, {swapped}"), args=on(),
                                 prompt="a cat and a dog", steps=4)
    layouts = sorted(astar_keys(result)["A-STAR layout"] for _, result in processed.xyz_cells)
    assert layouts == sorted([LR, swapped])


def test_heatmaps_outline_each_region(webui):
    from astar_ext.heatmaps import render

    processed, _ = run(webui, on(layout="cat 0 0 0.5 1", heatmaps=True), seed=5)
    first = processed.index_of_first_image
    picture = np.asarray(processed.images[first + 1])
    outline = (picture == np.array([80, 240, 255], np.uint8)).all(-1)
    assert outline.sum() > 100  # the cat row's tiles carry the outline
    without, _ = run(webui, on(heatmaps=True), seed=5)
    assert not (np.asarray(without.images[first + 1]) == np.array([80, 240, 255], np.uint8)).all(-1).any()
    # on a tile, the outline is the region's edge: a 2 x 2 grid with the left column inside
    image = __import__("PIL.Image", fromlist=["Image"]).new("RGB", (32, 32))
    pic = render(image, {"cat": {"m": np.ones((2, 2))}}, regions={"cat": np.array([[1, 0], [1, 0]], bool)})
    arr = np.asarray(pic)
    cyan = (arr == np.array([80, 240, 255], np.uint8)).all(-1)
    ys, xs = np.nonzero(cyan)
    assert cyan.any() and xs.max() - xs.min() < 192 * 0.6  # about half the tile's width


def test_layout_loss_setting_changes_the_image_and_is_in_the_infotext(webui):
    """Settings > A-STAR: the term that holds a concept to its box. The default (share) writes no key; eq3 (the
    paper's Eq. 3 with the box as the mask) is named in the infotext and gives another image at the same seed."""
    webui.start(SCRIPT)
    assert webui.shared.opts.data_labels["astar_layout_loss"].infotext == "A-STAR layout loss"  # a paste restores it
    try:
        share, _ = run(webui, on(layout=LR, window=1.0), seed=3, steps=6)
        assert "A-STAR layout loss" not in astar_keys(share)
        webui.shared.opts.data["astar_layout_loss"] = "eq3"
        eq3, _ = run(webui, on(layout=LR, window=1.0), seed=3, steps=6)
        assert astar_keys(eq3)["A-STAR layout loss"] == "eq3"
        assert eq3.images[0].tobytes() != share.images[0].tobytes()
        plain_eq3, _ = run(webui, on(window=1.0), seed=3, steps=6)  # no layout: the setting is not mentioned
        assert "A-STAR layout loss" not in astar_keys(plain_eq3)
        webui.shared.opts.data["astar_layout_loss"] = "bogus"  # an unknown value falls back to the default
        again, _ = run(webui, on(layout=LR, window=1.0), seed=3, steps=6)
        assert "A-STAR layout loss" not in astar_keys(again)
        assert again.images[0].tobytes() == share.images[0].tobytes()
    finally:
        webui.shared.opts.data.pop("astar_layout_loss", None)
    assert no_hooks_left(webui)
