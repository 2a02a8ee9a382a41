"""The toy model's layout benchmark (astar_ext/toy/layout.py): its layouts, its judge, its statistics, and one
small run end to end. Expected values are worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from astar_ext import params as P
from astar_ext.toy import layout as L
from astar_ext.toy.detect import Detection


def test_every_kind_gives_two_valid_disjoint_boxes_and_alternates():
    for kind in L.KINDS:
        for index in range(4):
            plain = ((0.3, 0.5), (0.7, 0.5)) if kind == "contradict" else None
            a, b = L.kind_boxes(kind, index, plain)
            for box in (a, b):
                P.parse_layout({"x": list(box)})  # inside [0, 1], x0 < x1, y0 < y1
            # disjoint: separated along x or along y
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (kind, index, a, b)
    assert L.kind_boxes("left/right", 0) == (L.LEFT, L.RIGHT) and L.kind_boxes("left/right", 1) == (L.RIGHT, L.LEFT)
    assert L.kind_boxes("top/bottom", 1) == (L.BOTTOM, L.TOP)
    assert L.kind_boxes("diagonal", 1) == (L.QUADRANTS[1], L.QUADRANTS[2])  # top right / bottom left
    small, large = L.kind_boxes("small/large", 0)
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    assert area(small) < area(large) / 2
    with pytest.raises(ValueError):
        L.kind_boxes("contradict", 0)


def test_contradict_swaps_what_plain_sampling_did():
    # plain put A left of B (x 0.3 vs 0.7): A is asked to the right, B to the left
    assert L.kind_boxes("contradict", 0, ((0.3, 0.5), (0.7, 0.45))) == (L.RIGHT, L.LEFT)
    # A above B, further apart vertically (dy 0.5 > dx 0.1): A to the bottom, B to the top
    assert L.kind_boxes("contradict", 0, ((0.5, 0.2), (0.6, 0.7))) == (L.BOTTOM, L.TOP)
    # B missing, A drawn on the left: A to the right half, B (missing) where A was
    assert L.kind_boxes("contradict", 0, ((0.2, 0.5), None)) == (L.RIGHT, L.LEFT)
    assert L.kind_boxes("contradict", 0, (None, (0.8, 0.5))) == (L.RIGHT, L.LEFT)
    assert L.kind_boxes("contradict", 0, (None, None)) == (L.LEFT, L.RIGHT)


def _det(colour, bbox, area):
    return Detection(colour, "circle", 0.9, bbox, area)


def test_centre_is_the_largest_blobs_box_middle():
    dets = [_det("red", (0, 0, 4, 4), 10), _det("red", (16, 8, 28, 20), 100), _det("blue", (2, 2, 6, 6), 12)]
    # the large red blob: x (16 + 28) / 2 = 22 px -> 22 / 32 = 0.6875; y (8 + 20) / 2 = 14 -> 0.4375
    assert L.centre_of(dets, "red") == (0.6875, 0.4375)
    assert L.centre_of(dets, "green") is None
    assert L.inside((0.6875, 0.4375), L.RIGHT) and not L.inside((0.6875, 0.4375), L.LEFT)
    assert not L.inside(None, (0, 0, 1, 1))


def test_wilson_interval_and_sign_test_by_hand():
    # k = 8 of n = 10, z = 1.96: centre (0.8 + 3.8416 / 20) / (1 + 0.38416) = 0.71674; half-width
    # 1.96 * sqrt(0.16 / 10 + 3.8416 / 400) / 1.38416 = 1.96 * 0.16 / 1.38416 = 0.22656 -> (0.4902, 0.9433)
    lo, hi = L.wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert L.wilson(0, 10)[0] == 0.0 and L.wilson(10, 10)[1] == pytest.approx(1.0)
    assert L.wilson(0, 0) == (0.0, 1.0)  # no images: nothing known
    # 9 fixed, 1 broken: P(X <= 1) for Binomial(10, 1/2) = 11 / 1024; two-sided 22 / 1024
    assert L.sign_test(9, 1) == pytest.approx(22 / 1024)
    assert L.sign_test(5, 5) == 1.0 and L.sign_test(0, 0) == 1.0


def test_summary_counts():
    in_box = np.array([[1, 1], [1, 0], [0, 0], [1, 1]], bool)
    present = np.array([[1, 1], [1, 1], [0, 1], [1, 1]], bool)
    base_both = np.array([0, 1, 0, 1], bool)
    base_present = np.array([0, 1, 1, 1], bool)
    s = L.summary(in_box, present, np.array([[0.5, 0.7], [0.9, np.nan], [0.1, 0.3], [0.6, 0.6]]), base_both,
                  base_present)
    assert (s["a_in_box"], s["b_in_box"], s["both_in_box"], s["all_present"]) == (0.75, 0.5, 0.5, 0.75)
    assert (s["fixed"], s["broken"]) == (1, 1)  # image 0 fixed, image 1 broken
    assert (s["present_gained"], s["present_lost"]) == (1, 1)  # image 0 gained, image 2 lost
    assert s["fit"] == pytest.approx((0.5 + 0.7 + 0.9 + 0.1 + 0.3 + 0.6 + 0.6) / 7)


def test_a_small_run_end_to_end():
    """One prompt, two layout kinds, one seed: three settings, per-kind and overall rows, a layout fit."""
    model = L.load_model()
    lines = []
    results = L.evaluate(model, L.benchmark_prompts(2, 1), [L.REPORT_SEEDS[0]], ["left/right", "contradict"],
                         P.DEFAULTS, L.layout_defaults(P.DEFAULTS), steps=8, cfg_scale=3.0,
                         log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert set(results) == {"left/right", "contradict", "all", "seconds"}
    for kind in ("left/right", "contradict", "all"):
        rows = results[kind]
        assert list(rows) == ["plain", "A-STAR", "A-STAR + layout"]
        for s in rows.values():
            assert 0 <= s["both_in_box"] <= s["a_in_box"] <= 1 and 0 <= s["all_present"] <= 1
        assert 0 <= rows["A-STAR + layout"]["fit"] <= 1
        assert "fixed" in rows["A-STAR + layout"] and "present_lost" in rows["A-STAR + layout"]
    assert results["all"]["plain"]["images"] == 2
    assert any(line.startswith("| **all** | A-STAR + layout |") for line in "\n".join(lines).splitlines())
