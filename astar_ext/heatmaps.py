"""Pictures of what A-STAR saw: per-concept attention heatmaps and the losses per step (PIL + numpy).

:func:`render` draws, for one generated image, a grid with one row per concept and one column per moment
(by default: the first corrected step before its update, the end of the window, the mean over all steps),
each tile the concept's map over the image with a colour scale and the concept's name (and, in layout
mode, the outline of the concept's region on the map grid), and below the grid a small chart of the
segregation and retention losses per step.

Maps are ``[h, w]`` tensors or arrays of the attention-map resolution (image/32); they are upsampled
bilinearly to the tile size. Colours follow a perceptually ordered dark-to-bright ramp defined here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# a dark-purple -> red -> yellow ramp (control points, linearly interpolated)
_RAMP = np.array([
    [0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39],
    [252, 255, 164],
], dtype=np.float64)

TILE = 192  # tile side in pixels
PAD = 6
LABEL_H = 16


def colormap(values: np.ndarray) -> np.ndarray:
    """``[h, w]`` values in [0, 1] -> ``[h, w, 3]`` uint8 colours of the ramp."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(v).astype(int)
    hi = np.minimum(lo + 1, len(_RAMP) - 1)
    t = (v - lo)[..., None]
    return np.round(_RAMP[lo] * (1 - t) + _RAMP[hi] * t).astype(np.uint8)


def _as_array(m) -> np.ndarray:
    if hasattr(m, "detach"):
        m = m.detach().float().cpu().numpy()
    return np.asarray(m, dtype=np.float64)


def upsample(m, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a ``[h, w]`` map to ``size = (width, height)``."""
    arr = _as_array(m).astype(np.float32)
    img = Image.fromarray(arr, mode="F").resize(size, Image.BILINEAR)
    return np.asarray(img, dtype=np.float64)


def overlay(image: Image.Image, m, vmax: float, alpha: float = 0.6, size: tuple[int, int] | None = None) -> Image.Image:
    """The map coloured (0..``vmax``) over a greyed copy of ``image``, resized to ``size``."""
    size = size or image.size
    base = image.convert("L").convert("RGB").resize(size, Image.BILINEAR)
    values = upsample(m, size) / max(vmax, 1e-8)
    colours = colormap(values).astype(np.float64)
    mixed = np.asarray(base, dtype=np.float64) * (1 - alpha) + colours * alpha
    return Image.fromarray(np.round(mixed).astype(np.uint8))


def region_outline(tile: Image.Image, region, colour=(80, 240, 255)) -> Image.Image:
    """``tile`` with the outline of a region drawn on it: ``region`` is ``[h, w]`` bool on the map grid (the
    layout's region as the losses saw it), scaled to the tile with each cell a rectangle."""
    mask = np.asarray(_as_array(region) > 0.5)
    big = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(tile.size, Image.NEAREST)) > 0
    edge = np.zeros_like(big)
    edge[:-1] |= big[:-1] != big[1:]
    edge[1:] |= big[:-1] != big[1:]
    edge[:, :-1] |= big[:, :-1] != big[:, 1:]
    edge[:, 1:] |= big[:, :-1] != big[:, 1:]
    edge[[0, -1], :] |= big[[0, -1], :]
    edge[:, [0, -1]] |= big[:, [0, -1]]
    out = np.array(tile.convert("RGB"))
    out[edge] = colour
    return Image.fromarray(out)


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, fill=(235, 235, 235)) -> None:
    draw.text(xy, text, fill=fill, font=_font())


def colour_bar(height: int, vmax: float, width: int = 14) -> Image.Image:
    """A vertical colour scale from 0 (bottom) to ``vmax`` (top), labelled."""
    ramp = colormap(np.linspace(1, 0, height)[:, None].repeat(width, 1))
    bar = Image.new("RGB", (width + 44, height + 2 * LABEL_H), (24, 24, 24))
    bar.paste(Image.fromarray(ramp), (2, LABEL_H))
    draw = ImageDraw.Draw(bar)
    _text(draw, (width + 6, LABEL_H - 4), f"{vmax:.2f}")
    _text(draw, (width + 6, LABEL_H + height - 10), "0")
    return bar


def loss_chart(steps: Sequence[int], series: Mapping[str, Sequence[float]], width: int, height: int = 120,
               window_end: int | None = None) -> Image.Image:
    """A line chart of losses per step (one line per series), with the end of the window marked."""
    img = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(img)
    colours = [(250, 193, 39), (120, 190, 255), (200, 120, 255), (140, 230, 140)]
    left, right, top, bottom = 40, width - 10, 18, height - 20
    values = [v for s in series.values() for v in s if v == v]
    if not steps or not values:
        _text(draw, (left, top), "no loss recorded")
        return img
    vmax = max(values) or 1.0
    s0, s1 = min(steps), max(max(steps), min(steps) + 1)
    if window_end is not None:
        s1 = max(s1, window_end)

    def xy(step: float, v: float) -> tuple[float, float]:
        return (left + (right - left) * (step - s0) / (s1 - s0), bottom - (bottom - top) * v / vmax)

    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(150, 150, 150))
    _text(draw, (4, top - 4), f"{vmax:.2f}")
    _text(draw, (4, bottom - 8), "0")
    _text(draw, (left, bottom + 4), f"step {s0}")
    _text(draw, (right - 60, bottom + 4), f"step {s1}")
    if window_end is not None:
        x = xy(window_end, 0)[0]
        draw.line([(x, top), (x, bottom)], fill=(90, 90, 90))
    for i, (name, vals) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        pts = [xy(s, v) for s, v in zip(steps, vals) if v == v]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for x, y in pts:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        _text(draw, (left + 8 + 110 * i, 2), name, fill=colour)
    return img


def render(image: Image.Image, maps: Mapping[str, Mapping[str, object]], steps: Sequence[int] = (),
           losses: Mapping[str, Sequence[float]] | None = None, window_end: int | None = None,
           title: str = "A-STAR", regions: Mapping[str, object] | None = None) -> Image.Image:
    """The heatmap picture of one generated image.

    Args:
        image: the generated image (the maps are drawn over it).
        maps: ``{concept: {column title: map [h, w]}}``; columns in insertion order, e.g.
            ``{"first step": m0, "end of window": m1, "mean over steps": m2}``. A missing map leaves its tile
            empty.
        steps, losses: the steps and the loss series for the chart (``{"segregation": [...], ...}``).
        window_end: the first step after the window (a vertical mark in the chart).
        regions: ``{concept: [h, w] bool}``, the layout's regions on the map grid: each is outlined on its
            concept's tiles.
    """
    concepts = list(maps)
    columns: list[str] = []
    for per in maps.values():
        for col in per:
            if col not in columns:
                columns.append(col)
    present = [_as_array(m) for per in maps.values() for m in per.values() if m is not None]
    vmax = max((float(a.max()) for a in present), default=1.0) or 1.0
    aspect = image.height / max(1, image.width)
    tw, th = TILE, max(32, int(round(TILE * aspect)))
    bar = colour_bar(th, vmax)
    grid_w = PAD + len(columns) * (tw + PAD) + bar.width + PAD
    header = 2 * LABEL_H + PAD  # the title, then the column titles
    grid_h = header + len(concepts) * (th + LABEL_H + PAD)
    chart = loss_chart(list(steps), losses or {}, grid_w, window_end=window_end) if losses else None
    canvas = Image.new("RGB", (grid_w, grid_h + (chart.height + PAD if chart else 0)), (16, 16, 16))
    draw = ImageDraw.Draw(canvas)
    _text(draw, (PAD, 2), title)
    for r, concept in enumerate(concepts):
        y = header + r * (th + LABEL_H + PAD)
        _text(draw, (PAD, y), concept)
        for c, col in enumerate(columns):
            x = PAD + c * (tw + PAD)
            if r == 0:
                _text(draw, (x + max(0, (tw - 6 * len(col)) // 2), LABEL_H + 2), col)
            m = maps[concept].get(col)
            if m is None:
                draw.rectangle([x, y + LABEL_H, x + tw - 1, y + LABEL_H + th - 1], outline=(70, 70, 70))
                continue
            tile = overlay(image, m, vmax, size=(tw, th))
            if regions and regions.get(concept) is not None:
                tile = region_outline(tile, regions[concept])
            canvas.paste(tile, (x, y + LABEL_H))
        if r == 0:
            canvas.paste(bar, (PAD + len(columns) * (tw + PAD), y))
    if chart is not None:
        canvas.paste(chart, (0, grid_h + PAD))
    return canvas
