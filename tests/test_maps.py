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
