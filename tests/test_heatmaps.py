"""Heatmap rendering (PIL + numpy only)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from astar_ext.heatmaps import TILE, colormap, loss_chart, overlay, render, upsample


def test_colormap_is_ordered_dark_to_bright_and_clipped():
    c = colormap(np.array([[-1.0, 0.0, 0.5, 1.0, 2.0]]))
    assert c.dtype == np.uint8 and c.shape == (1, 5, 3)
    assert (c[0, 0] == c[0, 1]).all() and (c[0, 3] == c[0, 4]).all()  # clipped to [0, 1]
    brightness = c[0].astype(int).sum(1)
    assert brightness[1] < brightness[2] < brightness[3]


def test_upsample_keeps_the_layout_of_a_non_square_map():
    m = torch.zeros(2, 4)
    m[0, 3] = 1.0  # top right
    up = upsample(m, (40, 20))
    assert up.shape == (20, 40)
    assert up[:10, 30:].mean() > up[10:, :10].mean()


def test_overlay_colours_where_the_map_is_high():
    image = Image.new("RGB", (64, 32), (128, 128, 128))
    m = np.zeros((4, 8))
    m[:, 4:] = 1.0
    out = np.asarray(overlay(image, m, vmax=1.0), dtype=int)
    assert out.shape == (32, 64, 3)
    assert out[:, 48:].sum(2).mean() > out[:, :16].sum(2).mean()


def test_render_has_a_tile_per_concept_and_moment_and_a_chart():
    image = Image.new("RGB", (256, 128), (90, 120, 150))
    rng = np.random.default_rng(0)
    maps = {c: {"first step": rng.random((4, 8)), "end of window": rng.random((4, 8)), "mean over steps": None}
            for c in ("cat", "dog", "red car")}
    pic = render(image, maps, steps=[0, 1, 2], losses={"segregation": [0.4, 0.3, 0.2], "retention": [0, 1.6, 1.5]},
                 window_end=3)
    assert pic.width > 3 * TILE
    tile_h = TILE // 2  # the image is twice as wide as tall
    assert pic.height > 3 * tile_h + 100
    plain = render(image, maps)
    assert plain.height < pic.height  # the chart adds height


def test_loss_chart_without_values_says_so():
    chart = loss_chart([], {}, 200)
    assert chart.size == (200, 120)
