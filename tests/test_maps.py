"""Map extraction against hand-computed values (A&E's normalisation and smoothing)."""

from __future__ import annotations

import math

import pytest
import torch

from astar_ext.maps import ColumnLayout, concept_maps, gaussian_kernel, map_size, renormalize, smooth
from astar_ext.tokens import CHUNK_TOKENS, Concept, PromptTokens


def layout_for(concepts, lengths=(5,), normalize_eot=False, rows=1):
    pt = PromptTokens(tuple(Concept(f"c{i}", tuple(c)) for i, c in enumerate(concepts)), tuple(lengths))
    return ColumnLayout.build([pt] * rows, normalize_eot=normalize_eot)


def test_smoothing_weights_follow_ae_formula():
    k = gaussian_kernel(3, 0.5)
    e = math.exp(-1.0)  # ((1 - 0) / (2 * 0.5))^2 = 1
    w1 = torch.tensor([e, 1.0, e]) / (1 + 2 * e)
    assert torch.allclose(k, torch.outer(w1, w1), atol=1e-7)
    assert torch.allclose(w1, torch.tensor([0.2119, 0.5761, 0.2119]), atol=1e-4)
    assert k[1, 1].item() == pytest.approx(0.3319, abs=1e-4)
    assert k[0, 1].item() == pytest.approx(0.1221, abs=1e-4)
    assert k[0, 0].item() == pytest.approx(0.0449, abs=1e-4)
    assert k.sum().item() == pytest.approx(1.0)


def test_smoothing_keeps_constants_and_spreads_a_peak():
    const = torch.full((2, 3, 5, 4), 0.25)
    assert torch.allclose(smooth(const), const)
    peak = torch.zeros(1, 1, 5, 5)
    peak[0, 0, 2, 2] = 1.0
    out = smooth(peak)[0, 0]
    assert torch.allclose(out[1:4, 1:4], gaussian_kernel())
    assert out.sum().item() == pytest.approx(1.0)


def test_renormalization_drops_sot_and_applies_x100_softmax():
    layout = layout_for([[2]], lengths=(5,))
    probs = torch.zeros(1, 1, CHUNK_TOKENS)
    probs[0, 0, 0] = 0.9  # SOT takes most of the attention
    probs[0, 0, 2] = 0.05
    probs[0, 0, 3] = 0.05
    out = renormalize(probs, layout)
    # kept: columns 1..75 (A&E's 1:-1 on SD 1.x); softmax of 100 * p
    logits = torch.zeros(75)
    logits[1] = 5.0
    logits[2] = 5.0
    expected = torch.softmax(logits, 0)
    assert out[0, 0, 0].item() == 0.0 and out[0, 0, 76].item() == 0.0
    assert torch.allclose(out[0, 0, 1:76], expected, atol=1e-6)


def test_eot_rule_is_switchable():
    probs = torch.full((1, 1, CHUNK_TOKENS), 1 / 77)
    keep_all = renormalize(probs, layout_for([[2]], lengths=(5,)))
    prompt_only = renormalize(probs, layout_for([[2]], lengths=(5,), normalize_eot=True))
    assert keep_all[0, 0, 2].item() == pytest.approx(1 / 75)
    assert prompt_only[0, 0, 2].item() == pytest.approx(1 / 5)
    assert prompt_only[0, 0, 6:].abs().sum().item() == 0.0  # EOT and padding excluded


def test_concept_map_sums_subtokens_and_reshapes_row_major():
    h, w = 2, 3  # non-square: 2 rows, 3 columns
    layout = layout_for([[2, 3], [5]], lengths=(5,))
    probs = torch.zeros(1, h * w, CHUNK_TOKENS)
    probs[..., 0] = 1.0  # only SOT: after dropping it, uniform over 75 columns
    probs[0, 4, 5] = 0.5  # pixel (row 1, col 1) attends to column 5
    maps = concept_maps({"a": probs}, layout, (h, w), smoothing=False)
    assert maps.shape == (1, 2, h, w)
    uniform = 1 / 75
    dominant = math.exp(50) / (math.exp(50) + 74)
    # concept 0 = columns 2 and 3: twice the uniform share, except where column 5 dominates
    assert maps[0, 0, 0, 0].item() == pytest.approx(2 * uniform)
    assert maps[0, 0, 0, 2].item() == pytest.approx(2 * uniform)
    assert maps[0, 0, 1, 1].item() == pytest.approx(2 / (math.exp(50) + 74), rel=1e-5)
    assert maps[0, 1, 1, 1].item() == pytest.approx(dominant, rel=1e-6)
    assert maps[0, 1, 0, 0].item() == pytest.approx(uniform)


def test_mean_over_layers():
    layout = layout_for([[2]])
    a = torch.zeros(1, 4, CHUNK_TOKENS)
    b = torch.zeros(1, 4, CHUNK_TOKENS)
    a[..., 2] = 0.2
    b[..., 2] = 0.0
    both = concept_maps({"a": a, "b": b}, layout, (2, 2), smoothing=False)
    mean = concept_maps({"m": (a + b) / 2}, layout, (2, 2), smoothing=False)
    assert torch.allclose(both, mean)


def test_layout_multi_chunk_and_batch_rows():
    rows = [
        PromptTokens((Concept("cat", (2,)), Concept("dog", (CHUNK_TOKENS + 3,))), (5, 4)),
        PromptTokens((Concept("cat", (4,)), Concept("dog", ())), (6,)),
    ]
    layout = ColumnLayout.build(rows)
    assert layout.gather.shape == (2, 2 * CHUNK_TOKENS)
    assert layout.gather[0, CHUNK_TOKENS].item() == CHUNK_TOKENS  # second slot is chunk 1
    assert layout.gather[1, CHUNK_TOKENS].item() == 0  # row 2 repeats its only chunk
    assert layout.valid.tolist() == [[True, True], [True, False]]
    assert layout.member[0, 1].nonzero().flatten().tolist() == [CHUNK_TOKENS + 3]
    assert layout.member[1, 1].sum().item() == 0.0
    # the dog of row 0 is re-normalised within its own chunk
    probs = torch.zeros(2, 1, 2 * CHUNK_TOKENS)
    probs[0, 0, CHUNK_TOKENS + 3] = 0.5
    maps = concept_maps({"x": probs}, layout, (1, 1), smoothing=False)
    assert maps[0, 1].item() == pytest.approx(math.exp(50) / (math.exp(50) + 74), rel=1e-6)


def test_concept_in_two_chunks_stays_in_unit_range():
    rows = [PromptTokens((Concept("cat", (2, CHUNK_TOKENS + 2)),), (3, 3))]
    layout = ColumnLayout.build(rows)
    probs = torch.zeros(1, 1, 2 * CHUNK_TOKENS)
    probs[0, 0, 2] = 1.0
    probs[0, 0, CHUNK_TOKENS + 2] = 1.0
    maps = concept_maps({"x": probs}, layout, (1, 1), smoothing=False)
    assert 0.99 < maps.item() <= 1.0


def test_map_size_follows_the_latent():
    assert map_size((64, 64), 2) == (16, 16)
    assert map_size((96, 64), 2) == (24, 16)  # 768 tall, 512 wide
    assert map_size((65, 63), 2) == (17, 16)  # not a multiple of 64: ldm pads (ceil)
    assert map_size((128, 128), 2) == (32, 32)


def test_wrong_query_count_is_an_error():
    with pytest.raises(ValueError, match="not 4x4"):
        concept_maps({"x": torch.zeros(1, 15, CHUNK_TOKENS)}, layout_for([[2]]), (4, 4))


# --- values worked out by hand (each fails when its formula changes) ------------------------------------------------
# A&E's 1-D smoothing weights for k = 3, sigma = 0.5: exp(-((x - 1) / (2 * 0.5))^2) = [e^-1, 1, e^-1], normalised.
E1 = math.exp(-1.0)
A_EDGE = E1 / (1 + 2 * E1)  # 0.21194
B_MID = 1 / (1 + 2 * E1)  # 0.57612


def test_smoothing_pads_by_reflection_at_the_border():
    """A peak in the corner of a 3x3 map. Reflect padding mirrors without repeating the edge, so the padded
    neighbours of (0, 0) are the zeros at index 1 and the corner keeps only the kernel's centre weight: B^2.
    Replicate padding would repeat the peak into the border and give (A + B)^2 = 0.6210."""
    peak = torch.zeros(1, 1, 3, 3)
    peak[0, 0, 0, 0] = 1.0
    out = smooth(peak)[0, 0]
    assert out[0, 0].item() == pytest.approx(B_MID ** 2, abs=1e-6)  # 0.33191
    assert out[0, 1].item() == pytest.approx(B_MID * A_EDGE, abs=1e-6)  # 0.12210
    assert out[1, 1].item() == pytest.approx(A_EDGE ** 2, abs=1e-6)  # 0.04492
    assert out[2, 2].item() == 0.0
    # a row ramp [0, 1, 2] per row: reflection at the left edge sees [1, 0, 1] -> 2A; at the right [1, 2, 1] -> 2B + 2A
    ramp = torch.arange(3.0).repeat(3, 1)[None, None]
    out = smooth(ramp)[0, 0]
    assert out[1, 0].item() == pytest.approx(2 * A_EDGE, abs=1e-6)
    assert out[1, 2].item() == pytest.approx(2 * B_MID + 2 * A_EDGE, abs=1e-6)


def test_concept_maps_smooth_by_default():
    """3x3 map, concept = column 2. Pixel (1, 1) attends to column 2 with probability 0.5 (renormalised: D), every
    other pixel only to SOT (renormalised: uniform U over the 75 kept columns). With A&E's smoothing, the centre is
    B^2 D + (1 - B^2) U and a corner, whose reflected neighbourhood holds the centre four times,
    4 A^2 D + (1 - 4 A^2) U.
    """
    layout = layout_for([[2]], lengths=(5,))
    probs = torch.zeros(1, 9, CHUNK_TOKENS)
    probs[..., 0] = 1.0
    probs[0, 4, 0] = 0.5
    probs[0, 4, 2] = 0.5
    d = math.exp(50) / (math.exp(50) + 74)  # x100 softmax: logit 50 against 74 zeros (SOT and column 76 dropped)
    u = 1 / 75
    maps = concept_maps({"a": probs}, layout, (3, 3))
    assert maps[0, 0, 1, 1].item() == pytest.approx(B_MID ** 2 * d + (1 - B_MID ** 2) * u, rel=1e-5)
    assert maps[0, 0, 0, 0].item() == pytest.approx(4 * A_EDGE ** 2 * d + (1 - 4 * A_EDGE ** 2) * u, rel=1e-5)
    assert maps[0, 0, 0, 1].item() == pytest.approx(2 * A_EDGE * B_MID * d + (1 - 2 * A_EDGE * B_MID) * u, rel=1e-5)


def test_layers_are_averaged_by_hand():
    """Two layers give column 2 the probabilities 0.3 and 0.1 at one pixel (the rest on SOT): the mean is 0.2, so the
    renormalised value is e^20 / (e^20 + 74)."""
    from astar_ext.maps import aggregate_layers

    a = torch.zeros(1, 1, CHUNK_TOKENS)
    b = torch.zeros(1, 1, CHUNK_TOKENS)
    a[0, 0, 0], a[0, 0, 2] = 0.7, 0.3
    b[0, 0, 0], b[0, 0, 2] = 0.9, 0.1
    assert aggregate_layers({"a": a, "b": b})[0, 0, 2].item() == pytest.approx(0.2)
    maps = concept_maps({"a": a, "b": b}, layout_for([[2]]), (1, 1), smoothing=False)
    assert maps.item() == pytest.approx(math.exp(20) / (math.exp(20) + 74), rel=1e-6)


def test_a_concept_in_two_chunks_is_the_mean_of_its_chunk_maps():
    """cat at column 2 of chunk 0 (renormalised D = e^50 / (e^50 + 74)) and column 2 of chunk 1, where that pixel
    looks only at SOT (uniform 1/75): the concept's map is (D + 1/75) / 2."""
    rows = [PromptTokens((Concept("cat", (2, CHUNK_TOKENS + 2)),), (3, 3))]
    layout = ColumnLayout.build(rows)
    probs = torch.zeros(1, 1, 2 * CHUNK_TOKENS)
    probs[0, 0, 2] = 0.5
    probs[0, 0, CHUNK_TOKENS] = 1.0
    d = math.exp(50) / (math.exp(50) + 74)
    maps = concept_maps({"x": probs}, layout, (1, 1), smoothing=False)
    assert maps.item() == pytest.approx((d + 1 / 75) / 2, rel=1e-6)


def test_and_rows_are_averaged_per_image():
    """Image 0 has two rows (an AND prompt); the concept occurs in both with maps 0.2 and 0.6 -> 0.4. Image 1 has
    one row, where the concept is missing: its map is 0 and it is not valid."""
    rows = [
        PromptTokens((Concept("cat", (2,)),), (5,)),
        PromptTokens((Concept("cat", (3,)),), (5,)),
        PromptTokens((Concept("cat", ()),), (5,)),
    ]
    layout = ColumnLayout.build(rows, row_image=[0, 0, 1])
    maps = torch.tensor([0.2, 0.6, 0.9]).reshape(3, 1, 1, 1)
    combined, valid = layout.image_maps(maps)
    assert combined.flatten().tolist() == pytest.approx([0.4, 0.0])
    assert valid.tolist() == [[True], [False]]
