"""Eq. 2 and Eq. 3 against hand-computed values, the masks, and gradient checks."""

from __future__ import annotations

import pytest
import torch

from astar_ext.losses import (
    astar_loss,
    binary_iou,
    concept_pairs,
    retention_loss,
    retention_masks,
    segregation_loss,
)


def test_pairs():
    assert concept_pairs(3) == [(0, 1), (0, 2), (1, 2)]
    assert concept_pairs(1) == []


def test_identical_maps_give_half_per_pair():
    a = torch.rand(1, 1, 4, 4) + 0.1
    maps = a.expand(1, 3, 4, 4).clone()
    loss, pairs = segregation_loss(maps)
    assert torch.allclose(pairs, torch.full((1, 3), 0.5))
    assert loss.item() == pytest.approx(1.5)  # a sum over the 3 pairs, as printed


def test_disjoint_maps_give_zero():
    maps = torch.zeros(2, 2, 4, 4)
    maps[:, 0, :2] = 0.7
    maps[:, 1, 2:] = 0.3
    loss, pairs = segregation_loss(maps)
    assert torch.equal(loss, torch.zeros(2))


def test_hand_computed_overlap():
    a = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    b = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    # sum min = 0.5 + 0 + 0 + 0.5 = 1; sum (a + b) = 4
    loss, _ = segregation_loss(torch.stack([a, b])[None])
    assert loss.item() == pytest.approx(0.25)


def test_three_concepts_sum_their_pair_terms_by_hand():
    """Maps a = [1, 0], b = [0.5, 0.5], c = [0, 1].
    (a, b): min = 0.5, sum = 2 -> 0.25; (a, c): disjoint -> 0; (b, c): min = 0.5, sum = 2 -> 0.25. Sum: 0.5."""
    maps = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]).reshape(1, 3, 1, 2)
    loss, pairs = segregation_loss(maps)
    assert pairs.flatten().tolist() == pytest.approx([0.25, 0.0, 0.25])
    assert loss.item() == pytest.approx(0.5)


def test_invalid_concept_drops_its_pairs():
    maps = torch.ones(1, 3, 2, 2)
    valid = torch.tensor([[True, True, False]])
    loss, pairs = segregation_loss(maps, valid)
    assert pairs.tolist() == [[0.5, 0.0, 0.0]]
    assert loss.item() == pytest.approx(0.5)


def test_map_equal_to_its_mask_gives_half():
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 1:3, 1:3] = 1
    loss, terms = retention_loss(mask.clone(), mask, torch.tensor([[True]]))
    assert terms.item() == pytest.approx(0.5)


def test_map_outside_its_mask_gives_one():
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    maps = 1 - mask
    _, terms = retention_loss(maps, mask, torch.tensor([[True]]))
    assert terms.item() == pytest.approx(1.0)


def test_retention_sums_concepts_and_skips_missing_masks():
    mask = torch.zeros(1, 2, 4, 4)
    mask[:, :, :2] = 1
    loss, terms = retention_loss(mask.clone(), mask, torch.tensor([[True, False]]))
    assert terms.tolist() == [[0.5, 0.0]]
    assert loss.item() == pytest.approx(0.5)


def test_masks_threshold_on_min_max_normalised_map():
    m = torch.tensor([[0.0, 0.1], [0.2, 0.4]])  # normalised: 0, .25, .5, 1
    masks, ok = retention_masks(m[None, None], threshold=0.5)
    assert masks[0, 0].tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert ok.tolist() == [[True]]


def test_empty_and_flat_maps_get_no_mask():
    maps = torch.stack([torch.zeros(3, 3), torch.full((3, 3), 0.4), torch.full((3, 3), 1e-4)])
    maps[2, 0, 0] = 5e-4  # max below the floor
    masks, ok = retention_masks(maps[None])
    assert ok.tolist() == [[False, False, False]]
    assert masks.sum().item() == 0


def test_otsu_separates_two_levels():
    m = torch.full((6, 6), 0.1)
    m[:2, :3] = 0.9
    m += torch.linspace(0, 0.05, 36).reshape(6, 6)
    masks, ok = retention_masks(m[None, None], method="otsu")
    assert ok.item()
    assert masks[0, 0].bool().equal(m > 0.5)
    with pytest.raises(ValueError):
        retention_masks(m[None, None], method="other")


def test_binary_iou():
    a = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert binary_iou(a, b).item() == pytest.approx(1 / 3)
    # identical masks: 1 (intersection 2, union 2; a Dice-like 2 / (2 + 2) would say 0.5)
    assert binary_iou(a, a).item() == pytest.approx(1.0)
    assert binary_iou(torch.zeros(2, 2), torch.zeros(2, 2)).item() == 0.0


def test_first_step_has_no_retention_term_and_weights_apply():
    maps = torch.rand(2, 2, 4, 4)
    valid = torch.ones(2, 2, dtype=torch.bool)
    t = astar_loss(maps, valid, None, None, seg_weight=2.0, ret_weight=3.0)
    assert torch.equal(t.ret, torch.zeros(2))
    assert torch.allclose(t.total, 2.0 * t.seg)
    masks, ok = retention_masks(maps)
    t2 = astar_loss(maps, valid, masks, ok, seg_weight=2.0, ret_weight=3.0)
    assert torch.allclose(t2.total, 2.0 * t2.seg + 3.0 * t2.ret)


def test_weighted_objective_by_hand():
    """Two 1x2 maps a = [0.6, 0.2], b = [0.2, 0.6]; previous masks a -> [1, 0], b -> [1, 0].
    Eq. 2: sum min = 0.2 + 0.2 = 0.4, sum (a + b) = 1.6 -> 0.25.
    Eq. 3, a: sum min(a, B) = 0.6, sum (a + B) = 0.8 + 1 = 1.8 -> 1 - 1/3 = 2/3;
           b: sum min(b, B) = 0.2, sum (b + B) = 1.8 -> 1 - 1/9 = 8/9; L_ret = 2/3 + 8/9 = 14/9.
    With seg_weight 2 and ret_weight 3: 0.5 + 14/3."""
    maps = torch.tensor([[[[0.6, 0.2]], [[0.2, 0.6]]]])
    masks = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]]]])
    ok = torch.ones(1, 2, dtype=torch.bool)
    t = astar_loss(maps, ok, masks, ok, seg_weight=2.0, ret_weight=3.0)
    assert t.seg.item() == pytest.approx(0.25)
    assert t.retention.flatten().tolist() == pytest.approx([2 / 3, 8 / 9])
    assert t.ret.item() == pytest.approx(14 / 9)
    assert t.total.item() == pytest.approx(0.5 + 14 / 3)
    # only b's mask usable: L_ret = 8/9
    t = astar_loss(maps, ok, masks, torch.tensor([[False, True]]), seg_weight=1.0, ret_weight=1.0)
    assert t.ret.item() == pytest.approx(8 / 9) and t.total.item() == pytest.approx(0.25 + 8 / 9)


def test_retention_term_by_hand():
    """Map [0.5, 0.25, 0, 0.25] on mask [1, 1, 0, 0]: sum min = 0.5 + 0.25 = 0.75, sum (A + B) = 1 + 2 = 3,
    term = 1 - 0.25 = 0.75."""
    m = torch.tensor([[0.5, 0.25], [0.0, 0.25]])[None, None]
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])[None, None]
    loss, terms = retention_loss(m, mask, torch.tensor([[True]]))
    assert terms.item() == pytest.approx(0.75) and loss.item() == pytest.approx(0.75)


def test_masks_subtract_the_minimum_before_normalising():
    """Map [0.3, 0.4, 0.6, 0.7]: min-max normalised (v - 0.3) / 0.4 = [0, 0.25, 0.75, 1] -> mask at 0.5: [0, 0, 1, 1].
    Dividing by the range without subtracting the minimum ([0.75, 1, 1.5, 1.75]) would keep every pixel."""
    m = torch.tensor([[0.3, 0.4], [0.6, 0.7]])
    masks, ok = retention_masks(m[None, None], threshold=0.5)
    assert masks[0, 0].tolist() == [[0.0, 0.0], [1.0, 1.0]]
    masks, _ = retention_masks(m[None, None], threshold=0.8)  # normalised 0.75 < 0.8 <= 1
    assert masks[0, 0].tolist() == [[0.0, 0.0], [0.0, 1.0]]
    # a pixel exactly at the threshold is kept: [0.25, 0.5, 0.75] -> [0, 0.5, 1] (exact in binary floating point)
    masks, _ = retention_masks(torch.tensor([[0.25, 0.5, 0.75]])[None, None], threshold=0.5)
    assert masks.flatten().tolist() == [0.0, 1.0, 1.0]


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    maps = (torch.rand(1, 3, 3, 3, dtype=torch.float64) + 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m: segregation_loss(m)[0], (maps,))
    mask = (torch.rand(1, 3, 3, 3, dtype=torch.float64) > 0.5).double()
    ok = torch.ones(1, 3, dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda m: retention_loss(m, mask, ok)[0], (maps,))


def test_gradient_directions():
    """Descending Eq. 2 pulls overlapping maps apart; descending Eq. 3 raises the map on its mask."""
    a = torch.tensor([[0.6, 0.4]], dtype=torch.float64)
    b = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    maps = torch.stack([a, b])[None].requires_grad_(True)
    segregation_loss(maps)[0].sum().backward()
    g = maps.grad[0]
    assert g[0, 0, 1] > 0  # a should lose mass where b is larger (min picks a there)
    mask = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.float64)
    m = torch.tensor([[[[0.3, 0.3]]]], dtype=torch.float64, requires_grad=True)
    retention_loss(m, mask, torch.tensor([[True]]))[0].sum().backward()
    assert m.grad[0, 0, 0, 0] < 0 < m.grad[0, 0, 0, 1]
