"""The neglect benchmark (its quick version, as CI runs it) and the demo, on the shipped toy model."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from astar_ext.toy import bench as B
from astar_ext.toy import data as D


def test_benchmark_prompts_are_fixed_and_well_formed():
    two = B.benchmark_prompts(2, 24)
    assert two == B.benchmark_prompts(2, 24) and len(two) == 24 and len(set(two)) == 24
    three = B.benchmark_prompts(3, 12)
    for objs in two + three:
        assert len({c for c, _ in objs}) == len(objs) == len({s for _, s in objs})
        assert all(c in D.COLOURS and s in D.SHAPES for c, s in objs)
    # every colour pair once before any repeats
    assert len({frozenset(c for c, _ in objs) for objs in two[:15]}) == 15
    assert B.prompt_text(two[0], 0) == f"a {two[0][0][0]} {two[0][0][1]} and a {two[0][1][0]} {two[0][1][1]}"
    assert " with " in B.prompt_text(two[2], 2)
    assert D.objects_in(B.prompt_text(three[0])) == list(three[0])


def test_wilson_interval_and_sign_test_by_hand():
    # Wilson, z = 1.96: 5/10 -> (0.2366, 0.7634) (the textbook value); 0/10 -> (0, z^2/n / (1 + z^2/n))
    lo, hi = B.wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    z2 = 1.959963984540054 ** 2
    assert B.wilson(0, 10) == pytest.approx((0.0, (z2 / 10) / (1 + z2 / 10)))
    assert B.wilson(10, 10)[1] == pytest.approx(1.0)
    # sign test: 8 fixed / 1 broken: 2 * (1 + 9) / 2^9; 5 / 0: 2 / 2^5; 3 / 3 and 0 / 0: 1
    assert B.sign_test(8, 1) == pytest.approx(20 / 512)
    assert B.sign_test(1, 8) == pytest.approx(20 / 512)
    assert B.sign_test(5, 0) == pytest.approx(2 / 32)
    assert B.sign_test(3, 3) == 1.0 and B.sign_test(0, 0) == 1.0


def test_tuning_and_report_seeds_are_disjoint_and_one_object_prompts_cover_every_pair():
    assert B.REPORT_FIRST_SEED - B.TUNING_FIRST_SEED >= 100
    one = B.benchmark_prompts(1, 36)
    assert len(set(one)) == 36 and {o[0] for o in one} == {(c, s) for c in D.COLOURS for s in D.SHAPES}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The quick benchmark as CI runs it (``--prompts2 1 --seeds 1`` are overridden by ``--quick``):
    ``(results of the two-object prompts, printed text)``."""
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        B.main(["--quick", "--prompts2", "1", "--seeds", "1", "--json", str(out)])
    return json.loads(out.read_text())["results"]["two objects"], text.getvalue()


def test_extra_objects_and_only_these_by_hand():
    """A prompt of red, blue and yellow; detected: red twice, blue, green. Red and blue are drawn (yellow is not),
    so two of the four detections are extra: the second red and the green."""
    from types import SimpleNamespace as Det

    dets = [Det(colour=c) for c in ("red", "red", "blue", "green")]
    assert B.extra_objects(dets, ["red", "blue", "yellow"]) == 2
    assert B.extra_objects(dets[1:3], ["red", "blue"]) == 0
    assert B.extra_objects([], ["red", "blue"]) == 0
    # three images of a two-object prompt: all drawn and clean / one missing / all drawn with one extra
    present = np.array([[True, True], [True, False], [True, True]])
    zeros = np.zeros(3)
    scores = B.Scores(present, present, zeros, zeros, zeros, 1.0, np.arange(3), np.array([0, 0, 1]))
    assert scores.only_these.tolist() == [True, False, False]
    # plain: image 0 had an extra object, image 2 was clean -> with the setting image 0 fixed, image 2 broken
    plain = B.Scores(present, present, zeros, zeros, zeros, 1.0, np.arange(3), np.array([1, 0, 0]))
    s = scores.summary(plain)
    assert s["only_these"] == pytest.approx(1 / 3) and (s["only_fixed"], s["only_broken"]) == (1, 1)
    assert s["all_present"] == pytest.approx(2 / 3) and (s["fixed"], s["broken"]) == (0, 0)
    assert "| 33.3% [6%, 79%] (1 / 1) |" in B.table([("x", s)], 2)


def test_quick_benchmark_counts_and_the_correction_lowers_the_overlap(quick):
    """8 images say nothing about the all-present rate (the benchmark's tables, with intervals, do); what they
    show: the paired counts agree with the rates, and the correction does what it is for on the learned
    attention, the concepts' maps overlap less (Eq. 2) over the steps it corrects (``overlap_mean``, steps 0-10).
    Not asserted at the window's last step (``overlap_mid``): there, on the step-21000 weights at 8x8, seg + ret
    left these 8 images' overlap a little higher than plain (0.128 against 0.119), as the retention term holds
    each concept's own previous mask. On the shipped step-23500 weights: overlap_mean 0.132 plain, 0.125 seg + ret,
    0.098 segregation alone (``python -m astar_ext.toy.bench --quick --threads 1``)."""
    quick, _ = quick
    plain, astar = quick["plain"], quick["A-STAR (seg + ret)"]
    print(json.dumps(quick, indent=1))
    assert plain["images"] == astar["images"] == 8
    assert 0 <= astar["p_sign"] <= 1 and len(astar["all_present_ci"]) == 2
    # paired counts agree with the rates
    assert round((astar["all_present"] - plain["all_present"]) * 8) == astar["fixed"] - astar["broken"]
    # the correction does what it is for on the learned attention: the concepts' maps overlap less while it acts,
    # with both losses and with segregation alone
    assert astar["overlap_mean"] < plain["overlap_mean"]
    assert quick["seg only (ret_weight 0)"]["overlap_mean"] < plain["overlap_mean"]
    for name in ("seg only (ret_weight 0)", "ret only (seg_weight 0)"):
        row = quick[name]
        assert 0 <= row["all_present"] <= 1 and len(row["by_position"]) == 2
        assert row["object"] == pytest.approx(np.mean(row["by_position"]))


def test_quick_benchmark_prints_its_table(quick):
    _, text = quick
    assert "| setting | all present [95% CI] |" in text and "| plain |" in text
    assert "| only these [95% CI] (fixed / broken) |" in text
    assert "| ret only (seg_weight 0) |" in text
    assert "4 prompts x 2 seeds = 8 images" in text


def test_demo_writes_a_side_by_side_picture(tmp_path):
    from astar_ext.toy import demo

    out = tmp_path / "demo.png"
    demo.main(["--seeds", "0", "1", "--steps", "10", "--px", "64", "--out", str(out)])
    pic = np.asarray(Image.open(out).convert("RGB")).astype(int)
    # two rows (seeds) of 2 x (image + 2 maps) tiles of 64 px
    assert pic.shape[1] > 6 * 64 and pic.shape[0] > 2 * 64
    # the plain and the A-STAR images of the first seed are drawn, and are not blank
    pad, head = 6, 40
    plain = pic[head:head + 64, pad:pad + 64]
    block = 3 * (64 + pad)
    astar = pic[head:head + 64, pad + block + pad:pad + block + pad + 64]
    assert plain.std() > 10 and astar.std() > 10


def test_the_detector_reads_training_scenes_through_the_vae_as_drawn():
    """The metrics' ceiling: training-style scenes encoded by the shipped model's VAE and read on the latent grid,
    as a sample is read, are found with the colour and the shape the generator drew (its own ground truth)."""
    from astar_ext.toy.model import load_model

    model = load_model()
    for count in (1, 2):
        objects, drawn, right = B.ground_truth(model, count, 6, seed=3)
        assert objects == 6 * count and drawn == objects and right == objects
