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


def test_sigma_space_factor():
    assert sigma_space_factor(0.0) == 1.0
    assert sigma_space_factor(14.6) == pytest.approx(1 + 14.6 ** 2)
    assert sigma_space_factor(14.6) > 200  # the update would be ~200x too weak without it
