"""Layout mode (issue 11): the layout field's forms and checks, regions on the map grid, retention toward a
fixed region, and a corrected step on the tiny model moving each concept's attention into its box.

Expected values are derived by hand in the comments (coverage of cells by boxes and masks), not by the code
under test.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch

from astar_ext import params as P
from astar_ext import regions as R
from astar_ext.controller import EngineOptions
from astar_ext.losses import astar_loss, region_share_loss, retention_loss


def png_b64(array: np.ndarray, mode: str | None = None) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def params(layout, concepts="cat, dog", **fields):
    return P.from_dict({"concepts": concepts, "layout": layout, **fields})


# --- the field: text form, dict forms, round trips, bad input ---------------------------------------------------
def test_text_form_is_read_and_written_in_one_canonical_way():
    p = params("cat 0.05 0.1 .5 0.9;dog 0.55 0.10 0.95 0.9")
    assert p.layout == "cat 0.05 0.10 0.50 0.90; dog 0.55 0.10 0.95 0.90"
    assert params("  (Cat:1.2)  0 0 1 1 \n").layout == "(Cat:1.2) 0.00 0.00 1.00 1.00"  # a concept as written
    assert params("cat 0.125 0 0.33333 1").layout == "cat 0.125 0.00 0.3333 1.00"  # up to four decimals
    assert params("").layout == "" and params("  ;  ").layout == ""
    two_words = P.from_dict({"concepts": "red car, #5", "layout": "red car 0 0 .5 1; #5 .5 0 1 1"})
    assert [e.concept for e in P.parse_layout(two_words.layout)] == ["red car", "#5"]


def test_dict_and_list_forms_give_the_text_form():
    mask = png_b64(np.full((3, 5), 255, np.uint8))
    assert params({"cat": [0.05, 0.1, 0.5, 0.9], "dog": [0.55, 0.1, 0.95, 0.9]}).layout == \
        "cat 0.05 0.10 0.50 0.90; dog 0.55 0.10 0.95 0.90"
    p = params([{"concept": "cat", "box": [0, 0, 0.5, 1]}, {"concept": "dog", "mask": "data:image/png;base64," + mask}])
    assert p.layout == f"cat 0.00 0.00 0.50 1.00; dog mask {mask}"
    (cat, dog) = P.parse_layout(p.layout)
    assert cat.box == (0.0, 0.0, 0.5, 1.0) and dog.mask == mask and dog.box is None


def test_layout_is_position_10_of_the_positional_list():
    args = [True, "cat, dog", 20.0, 0.5, 1.0, 1.0, 1, 0.5, False, False, "cat 0 0 .5 1"]
    assert [f.name for f in P.FIELDS].index("layout") == 10
    assert P.from_args(args).layout == "cat 0.00 0.00 0.50 1.00"
    assert P.to_args(P.from_args(args))[10] == "cat 0.00 0.00 0.50 1.00"


def test_round_trips_through_dict_list_and_infotext():
    mask = png_b64(np.eye(4, dtype=np.uint8) * 255)
    p = params(f"cat 0.05 0.10 0.50 0.90; dog mask {mask}", enabled=True)
    assert P.from_dict(P.to_dict(p)) == p
    assert P.from_args(P.to_args(p)) == p
    line = P.format_infotext_pairs(P.to_infotext(p))
    assert f"A-STAR layout: cat 0.05 0.10 0.50 0.90; dog mask {mask}" in line  # no quotes: no comma, no colon
    parsed = P.parse_infotext_pairs("Steps: 20, Sampler: Euler, " + line + ", Version: v1.10.1")
    assert parsed["A-STAR layout"] == p.layout
    assert P.from_infotext(parsed) == p


@pytest.mark.parametrize("layout, text", [
    ("cat 0 0 1.2 1", "outside the image"),
    ("cat -0.1 0 0.5 1", "outside the image"),
    ({"cat": [0, 0, 0.5, 1.5]}, "outside the image"),
    ("cat 0.5 0 0.5 1", "x0 >= x1"),
    ("cat 0.6 0 0.4 1", "x0 >= x1"),
    ("cat 0 0.7 1 0.2", "y0 >= y1"),
    ("bird 0 0 0.5 1", "'bird' is not one of the concepts"),
    ({"bird": [0, 0, 0.5, 1]}, "'bird' is not one of the concepts"),
    ("cat 0 0 .5", "is not a region"),
    ("cat 0 0 .5 one", "not a number"),
    ("cat 0 0 .5 nan", "not a finite number"),
    ({"cat": [0, 0, 0.5]}, "four numbers"),
    ({"cat": [0, 0, "0.5", 1]}, "not a finite number"),
    ({"cat": [0, 0, True, 1]}, "not a finite number"),
    ([{"concept": "cat"}], "exactly one of 'box' and 'mask'"),
    ([{"concept": "cat", "box": [0, 0, 1, 1], "colour": "red"}], "unknown key 'colour'"),
    (["cat 0 0 1 1"], "must be an object"),
    ([{"concept": "cat", "mask": "not base64!"}], "not valid base64"),
    ([{"concept": "cat", "mask": base64.b64encode(b"GIF89a....").decode()}], "not a PNG"),
    ("cat 0 0 .5 1; Cat 0.5 0 1 1", "more than one region"),
    (42, "expected the text form"),
])
def test_bad_layouts_name_the_field(layout, text):
    with pytest.raises(P.ParamError, match=text) as err:
        params(layout)
    assert err.value.field == "layout" and str(err.value).startswith("layout: ")


def test_a_layout_needs_its_concepts_whatever_changes_them():
    p = params("cat 0 0 .5 1")
    with pytest.raises(P.ParamError, match="not one of the concepts"):
        P.replace(p, concepts="dog")  # an XYZ axis over the concepts
    with pytest.raises(P.ParamError, match="not one of the concepts"):
        P.from_infotext({"A-STAR concepts": "dog", "A-STAR layout": "cat 0 0 0.5 1"})
    assert P.replace(p, concepts="(cat:1.3), dog").layout == p.layout  # compared as the concepts are


def test_unreadable_and_empty_masks_are_layout_errors():
    broken = base64.b64encode(P.PNG_SIGNATURE + b"\x00" * 40).decode()
    black = png_b64(np.zeros((8, 8), np.uint8))
    transparent_white = png_b64(np.dstack([np.full((8, 8, 3), 255, np.uint8), np.zeros((8, 8), np.uint8)]), "RGBA")
    for mask, text in ((broken, "could not be read"), (black, "nothing inside"), (transparent_white, "nothing inside")):
        p = params([{"concept": "cat", "mask": mask}])  # the field takes it: decoding is the engine's
        with pytest.raises(P.ParamError, match=text) as err:
            R.Layout.parse(p.layout)
        assert err.value.field == "layout"


# --- regions on the map grid ------------------------------------------------------------------------------------
def test_cell_coverage_of_an_interval():
    # 7 cells of width 1/7; [0.1, 0.5] covers cell 0 from 0.1 to 1/7 -> (1/7 - 0.1) * 7 = 0.3, cells 1 and 2
    # fully, cell 3 ([3/7, 4/7]) from 3/7 to 0.5 -> (0.5 - 3/7) * 7 = 0.5, nothing of the rest
    assert np.allclose(R.coverage_1d(0.1, 0.5, 7), [0.3, 1, 1, 0.5, 0, 0, 0, 0][:7])


def test_box_on_odd_map_sizes():
    # a 5 x 7 grid (rows x columns), box x 0.1..0.5, y 0.3..1.0
    # columns: coverage [0.3, 1, 1, 0.5, 0, 0, 0] (above)
    # rows of 1/5: [0.3, 1.0] covers row 1 ([0.2, 0.4]) by 0.5, rows 2-4 fully, row 0 not at all
    # a cell's share is the product: row 1 x column 3 = 0.25 (outside); row 1 x columns 1-2 and rows 2-4 x
    # column 3 = 0.5 (half a cell: inside); rows 2-4 x columns 1-2 = 1; column 0 = 0.3 at most (outside)
    grid = R.Region("cat", box=(0.1, 0.3, 0.5, 1.0)).grid(5, 7)
    expected = np.zeros((5, 7), bool)
    expected[1:5, 1:3] = True
    expected[2:5, 3] = True
    assert (grid == expected).all()
    # 13 x 3 (a tall image): the left third of the width and the top half of the height
    # columns of 1/3: [0, 1/3] covers column 0 fully; rows of 1/13: [0, 0.5] covers rows 0-5 fully and row 6
    # ([6/13, 7/13]) from 6/13 to 0.5, i.e. (0.5 - 6/13) * 13 = 0.5 -> inside
    grid = R.Region("cat", box=(0.0, 0.0, 1 / 3, 0.5)).grid(13, 3)
    expected = np.zeros((13, 3), bool)
    expected[0:7, 0] = True
    assert (grid == expected).all()


def test_a_box_under_half_a_cell_keeps_the_cells_it_covers_most():
    # 4 x 4 grid; box x 0.30..0.40 (cell 1 = [0.25, 0.5]: coverage 0.4), y 0.6..0.7 (cell 2 = [0.5, 0.75]: 0.4)
    grid = R.Region("cat", box=(0.30, 0.6, 0.40, 0.7)).grid(4, 4)
    assert grid.sum() == 1 and grid[2, 1]


def test_mask_of_any_size_on_odd_map_sizes():
    # a 6 x 9 mask (rows x columns), white in columns 0-2 (x in [0, 1/3]) and rows 0-3 (y in [0, 2/3])
    mask = np.zeros((6, 9), bool)
    mask[0:4, 0:3] = True
    # onto 5 x 4: columns of 1/4: [0, 1/3] covers column 0 fully, column 1 ([1/4, 1/2]) by (1/3 - 1/4) * 4 = 1/3
    # rows of 1/5: [0, 2/3] covers rows 0-2 fully, row 3 ([0.6, 0.8]) by (2/3 - 0.6) * 5 = 1/3
    cov = R.mask_coverage(mask.astype(float), 5, 4)
    expected_cov = np.outer([1, 1, 1, 1 / 3, 0], [1, 1 / 3, 0, 0])
    assert np.allclose(cov, expected_cov)
    region = R.Region("cat", mask=mask)
    expected = np.zeros((5, 4), bool)
    expected[0:3, 0] = True
    assert (region.grid(5, 4) == expected).all()
    # onto a grid finer than the mask (12 x 18): each mask pixel is 2 x 2 cells, the same shape at twice the size
    assert (region.grid(12, 18) == np.kron(mask, np.ones((2, 2), bool))).all()


def test_mask_decoding_white_is_inside():
    grey = np.zeros((4, 6), np.uint8)
    grey[1, 2], grey[2, 3] = 200, 100  # 200 >= 128: inside; 100: outside
    assert (R.decode_mask(png_b64(grey)) == (grey >= 128)).all()
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[0, 0, 3] = 255  # only one opaque white pixel
    assert R.decode_mask(png_b64(rgba, "RGBA")).sum() == 1
    m = R.decode_mask(png_b64(grey))
    assert (R.decode_mask(R.encode_mask(m)) == m).all()  # the compact 1-bit form the infotext keeps


def test_layout_grids_follow_the_concept_order():
    layout = R.Layout.parse("dog 0.5 0 1 1; cat 0 0 0.5 1")
    masks, has = layout.grids(("cat", "bird", "dog"), (2, 2))
    assert has.tolist() == [True, False, True]
    assert masks[0].tolist() == [[1, 0], [1, 0]] and masks[2].tolist() == [[0, 1], [0, 1]]
    assert masks[1].sum() == 0


# --- retention toward a fixed region ----------------------------------------------------------------------------
def test_region_replaces_b_for_its_concept_only():
    auto = torch.zeros(1, 2, 2, 2)
    auto[0, 0, 1, 1] = 1  # the previous step's automatic masks: cat at the bottom right, dog at the top left
    auto[0, 1, 0, 0] = 1
    ok = torch.tensor([[True, True]])
    region = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])  # cat: the left column
    masks, ok2 = R.with_regions(auto, ok, region, torch.tensor([True, False]), auto.shape)
    assert masks[0, 0].tolist() == [[1, 0], [1, 0]]  # cat: its region
    assert masks[0, 1].tolist() == [[1, 0], [0, 0]]  # dog: its automatic mask
    assert ok2.tolist() == [[True, True]]
    # the first corrected step has no automatic masks: only the region's concept has a retention term
    masks, ok3 = R.with_regions(None, None, region, torch.tensor([True, False]), auto.shape)
    assert ok3.tolist() == [[True, False]] and masks[0, 1].sum() == 0


def test_retention_toward_a_fixed_region_by_hand():
    # cat's map [[0.6, 0.1], [0.2, 0.1]], region = the left column: inside mass 0.6 + 0.2 = 0.8, total 1.0,
    # |B| = 2 -> Eq. 3: 1 - 0.8 / (1.0 + 2) = 0.7333...
    maps = torch.tensor([[[[0.6, 0.1], [0.2, 0.1]]]])
    region = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    masks, ok = R.with_regions(None, None, region, torch.tensor([True]), maps.shape)
    loss, terms = retention_loss(maps, masks, ok)
    assert terms.item() == pytest.approx(1 - 0.8 / 3)
    # the full objective at the first step: L_ret is there (no previous step needed), L_seg needs two concepts
    total = astar_loss(maps, torch.tensor([[True]]), masks, ok).total
    assert total.item() == pytest.approx(1 - 0.8 / 3)
    # its gradient pulls mass into the region: inside, d/dA = -1/3 + 0.8/9 < 0; outside, 0 + 0.8/9 > 0
    a = maps.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(retention_loss(a, masks, ok)[0].sum(), a)
    assert torch.allclose(g[0, 0, :, 0], torch.tensor(-1 / 3 + 0.8 / 9)) and torch.allclose(g[0, 0, :, 1],
                                                                                          torch.tensor(0.8 / 9))
    assert R.fit(maps, region).item() == pytest.approx(0.8)


def test_share_outside_the_region_by_hand():
    # the same cat map [[0.6, 0.1], [0.2, 0.1]], region = the left column: inside 0.8 of a total 1.0 -> the share
    # outside is 1 - 0.8 / 1.0 = 0.2 (Eq. 3 gave 1 - 0.8 / 3 above: |B| = 2 sits in its denominator)
    maps = torch.tensor([[[[0.6, 0.1], [0.2, 0.1]]]])
    region = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    masks, ok = R.with_regions(None, None, region, torch.tensor([True]), maps.shape)
    loss, terms = region_share_loss(maps, masks, ok)
    assert terms.item() == pytest.approx(0.2) and loss.item() == pytest.approx(0.2)
    assert terms.item() == pytest.approx(1 - R.fit(maps, region).item())
    # a map 1.5 times as strong has the same share: the term does not depend on the map's scale; Eq. 3's does
    # (inside 0.9 + 0.3 = 1.2 over 1.5 + 2 -> 1 - 1.2 / 3.5)
    assert region_share_loss(1.5 * maps, masks, ok)[1].item() == pytest.approx(0.2)
    assert retention_loss(1.5 * maps, masks, ok)[1].item() == pytest.approx(1 - 1.2 / 3.5)
    # gradient, out = 0.2, total = 1.0: inside d/dA = -out / total^2 = -0.2; outside +in / total^2 = +0.8 --
    # balanced, where Eq. 3's pull on the outside is 0.8 / 9 against -1/3 + 0.8/9 inside (the test above)
    a = maps.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(region_share_loss(a, masks, ok)[0].sum(), a)
    assert torch.allclose(g[0, 0, :, 0], torch.tensor(-0.2)) and torch.allclose(g[0, 0, :, 1], torch.tensor(0.8))
    # a concept without a region (ok False) contributes nothing
    assert region_share_loss(maps, masks, torch.tensor([[False]]))[0].item() == 0.0


def test_share_replaces_eq3_for_the_regions_concepts_only():
    # cat on its region (left column): share 0.2, weight 7; dog on its automatic mask (top right cell), Eq. 3 as
    # before: 1 - 0.5 / 1.5, weight 3; the pair's Eq. 2 term 0.1 / 1.5
    maps = torch.tensor([[[[0.6, 0.1], [0.2, 0.1]], [[0.0, 0.5], [0.0, 0.0]]]])
    auto = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]]])
    region = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    has = torch.tensor([True, False])
    masks, ok = R.with_regions(auto, torch.tensor([[False, True]]), region, has, maps.shape)
    t = astar_loss(maps, torch.tensor([[True, True]]), masks, ok, seg_weight=1.0, ret_weight=3.0,
                   ret_weights=torch.tensor([7.0, 3.0]), share=has)
    assert t.retention[0].tolist() == pytest.approx([0.2, 1 - 0.5 / 1.5])
    assert t.total.item() == pytest.approx(0.1 / 1.5 + 7 * 0.2 + 3 * (1 - 0.5 / 1.5))
    assert t.ret.item() == pytest.approx(0.2 + (1 - 0.5 / 1.5))


def test_layout_weight_weighs_the_regions_concepts_only():
    # two concepts on a 2 x 2 grid; cat (the region: left column) [[0.6, 0.1], [0.2, 0.1]] -> 1 - 0.8 / 3;
    # dog, on its automatic mask (top right cell) [[0.0, 0.5], [0.0, 0.0]] -> 1 - 0.5 / (0.5 + 1) = 2 / 3;
    # the pair's Eq. 2 term: sum min = min(0.1, 0.5) = 0.1 over sum = 1.0 + 0.5 -> 0.1 / 1.5
    maps = torch.tensor([[[[0.6, 0.1], [0.2, 0.1]], [[0.0, 0.5], [0.0, 0.0]]]])
    auto = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]]])
    region = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    masks, ok = R.with_regions(auto, torch.tensor([[False, True]]), region, torch.tensor([True, False]), maps.shape)
    valid = torch.tensor([[True, True]])
    t = astar_loss(maps, valid, masks, ok, seg_weight=1.0, ret_weight=3.0, ret_weights=torch.tensor([7.0, 3.0]))
    assert t.total.item() == pytest.approx(0.1 / 1.5 + 7 * (1 - 0.8 / 3) + 3 * (1 - 0.5 / 1.5))
    assert t.ret.item() == pytest.approx((1 - 0.8 / 3) + (1 - 0.5 / 1.5))  # the unweighted sum, as before


# --- a corrected step on the tiny model moves each concept's attention into its box ----------------------------
SEEDS = range(6)


def _fits_before_after(tiny, clip_wrapper, layout_text, layout_loss="share", **fields):
    import k_diffusion as K

    from astar_ext.capture import AttentionCapture
    from astar_ext.controller import AStarController
    from astar_ext.schedule import Schedule
    from tests.conftest import concept_batch, hook_count
    from tests.test_controller import CondDenoiser

    ctx, layout = concept_batch(tiny, clip_wrapper)
    den = CondDenoiser(tiny, ctx)
    sigma = K.sampling.get_sigmas_karras(8, 0.03, 14.6)[:1]
    p = params(layout_text, **fields)
    out = []
    for seed in SEEDS:
        x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(seed)) * sigma
        ctrl = AStarController(AttentionCapture(tiny.diffusion_model), Schedule(8, 0.5, p.scale), p,
                               options=EngineOptions(layout_loss=layout_loss))
        with ctrl:
            before = ctrl.measure(x, sigma, 0, layout, den.cond_pass).fit[0]
            record = ctrl.step(x, sigma, 0, layout, den.cond_pass)
            after = ctrl.measure(x, sigma, 0, layout, den.cond_pass).fit[0]
        assert record.updates == 1 and record.fit[0] == pytest.approx(before)
        assert all(v is not None for v in record.retention[0])  # a term with the regions from the first step
        if layout_loss == "share":  # the term is one minus the fit: the share of the attention outside the box
            assert record.retention[0] == pytest.approx([1 - v for v in before], abs=1e-5)
        else:  # Eq. 3: 1 - in / (in + out + |R|) is above 1 - in / (in + out) whenever the region is not empty
            assert all(r > 1 - v + 1e-3 for r, v in zip(record.retention[0], before))
        out.append((before, after))
    assert hook_count(tiny) == 0
    return np.array(out)  # [seed, before/after, concept]


@pytest.mark.parametrize("layout_loss", ["eq3", "share"])
def test_a_corrected_step_moves_each_concepts_attention_into_its_box(tiny, clip_wrapper, layout_loss):
    # the layout term alone (seg_weight 0, layout weight 1), a small step at sigma_max: every concept of every
    # seed gains, with either form of the term
    fits = _fits_before_after(tiny, clip_wrapper, "cat 0 0 0.5 1; dog 0.5 0 1 1", layout_loss, scale=5.0,
                              seg_weight=0.0, layout_weight=1.0)
    gain = fits[:, 1] - fits[:, 0]
    assert (gain > 0.02).all(), gain
    assert gain.mean() > 0.05, gain.mean()  # measured, eq3: 0.10 (per concept and seed 0.03 .. 0.20)
    # the other way round: the boxes swapped, the same concepts move the other way
    fits = _fits_before_after(tiny, clip_wrapper, "dog 0 0 0.5 1; cat 0.5 0 1 1", layout_loss, scale=5.0,
                              seg_weight=0.0, layout_weight=1.0)
    assert ((fits[:, 1] - fits[:, 0]) > 0.0).all()


@pytest.mark.parametrize("layout_loss", ["share", "eq3"])
def test_with_the_defaults_the_mean_fit_rises_at_every_seed(tiny, clip_wrapper, layout_loss):
    fits = _fits_before_after(tiny, clip_wrapper, "cat 0 0 0.5 1; dog 0.5 0 1 1", layout_loss)
    mean = fits.mean(2)  # [seed, before/after]
    gain = mean[:, 1] - mean[:, 0]
    # measured on this random tiny model at the defaults (weight 3), share: +0.009 .. +0.30 (mean 0.19)
    assert (gain > 0).all() and gain.mean() > 0.1, mean


def test_the_layout_weight_scales_the_update(tiny, clip_wrapper):
    """With Eq. 2 off and every concept in the layout, the loss is the layout weight times the regions' Eq. 3
    terms, so the update of one step is proportional to the weight (d/dz of w * L is w * dL/dz)."""
    import k_diffusion as K

    from astar_ext.capture import AttentionCapture
    from astar_ext.controller import AStarController
    from astar_ext.schedule import Schedule
    from tests.conftest import concept_batch
    from tests.test_controller import CondDenoiser

    ctx, layout = concept_batch(tiny, clip_wrapper)
    den = CondDenoiser(tiny, ctx)
    sigma = K.sampling.get_sigmas_karras(8, 0.03, 14.6)[:1]
    x0 = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(11)) * sigma
    deltas = []
    for weight in (1.0, 2.5):
        p = params("cat 0 0 0.5 1; dog 0.5 0 1 1", seg_weight=0.0, ret_weight=7.0, layout_weight=weight, scale=1.0)
        x = x0.clone()
        with AStarController(AttentionCapture(tiny.diffusion_model), Schedule(8, 0.5, p.scale), p) as ctrl:
            ctrl.step(x, sigma, 0, layout, den.cond_pass)
        deltas.append(x - x0)
    assert deltas[0].abs().max() > 0
    assert torch.allclose(deltas[1], 2.5 * deltas[0], rtol=1e-3, atol=1e-3 * float(deltas[0].abs().max()))
