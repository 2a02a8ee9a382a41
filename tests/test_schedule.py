"""Window, A&E step-size ramp and the sigma-space factor."""

from __future__ import annotations

import math

import pytest

from astar_ext.schedule import Schedule, sigma_space_factor


def test_ae_step_sizes():
    s = Schedule(steps=50, window=0.5, scale=20.0)
    assert s.step_size(0) == pytest.approx(20.0)
    assert s.step_size(24) == pytest.approx(20 * math.sqrt(1 - 0.5 * 24 / 49))
    assert s.step_size(24) == pytest.approx(17.38, abs=0.01)
    assert s.step_size(49) == pytest.approx(14.14, abs=0.01)


@pytest.mark.parametrize("steps, window, expected", [
    (50, 0.5, 25), (20, 0.5, 10), (25, 0.5, 13), (20, 1.0, 20), (20, 0.0, 0), (20, 0.01, 1), (1, 0.5, 1),
])
def test_window(steps, window, expected):
    s = Schedule(steps=steps, window=window)
    assert s.optimised_steps == expected
    assert [i for i in range(steps + 2) if s.in_window(i)] == list(range(expected))


def test_single_step_and_bad_values():
    assert Schedule(steps=1).step_size(0) == pytest.approx(20.0)
    with pytest.raises(ValueError):
        Schedule(steps=10, window=1.5)
    with pytest.raises(ValueError):
        Schedule(steps=10, iterations=0)


def test_sigma_space_factor_by_hand():
    """k-diffusion holds x = z * sqrt(1 + sigma^2); an A&E step dz on z is dx = sqrt(1 + sigma^2) dz, and
    grad_z = sqrt(1 + sigma^2) grad_x, so dx = -alpha (1 + sigma^2) grad_x. Worked out: sigma = 2 -> 5; sigma = 3 -> 10;
    SD's largest sigma 14.6146 -> 214.587."""
    assert sigma_space_factor(0.0) == 1.0
    assert sigma_space_factor(2.0) == pytest.approx(5.0)
    assert sigma_space_factor(3.0) == pytest.approx(10.0)
    assert sigma_space_factor(14.6146) == pytest.approx(214.587, abs=1e-3)


def test_ramp_by_hand():
    """linspace(1, 0.5, 5) = [1, 0.875, 0.75, 0.625, 0.5]; alpha = 20 * sqrt(s): 20, 18.708, 17.321, 15.811, 14.142."""
    s = Schedule(steps=5, window=1.0, scale=20.0)
    assert [s.ramp(i) for i in range(5)] == pytest.approx([1.0, 0.875, 0.75, 0.625, 0.5])
    assert [s.step_size(i) for i in range(5)] == pytest.approx([20.0, 18.7083, 17.3205, 15.8114, 14.1421], abs=1e-4)
    assert Schedule(steps=5, scale=10.0).step_size(2) == pytest.approx(8.6603, abs=1e-4)
