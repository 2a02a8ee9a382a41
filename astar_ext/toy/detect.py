"""An object detector for the toy scenes that needs no learning: colour segmentation + shape templates.

1. **Colour segmentation.** Each pixel is classified by its HSV value ``V = max(r, g, b)`` and saturation
   ``S = (max - min) / max``: a saturated pixel (``S >= 0.35``) takes the palette colour of nearest hue
   (within 40 degrees), a grey one (``S < 0.25``) is white, if it is bright enough: ``V`` at least 45 %
   of the way from the background's value (the image's median ``V``) to the palette colour's
   (and at least 0.40, white 0.45). Everything else is background. The generator keeps every background
   channel below 0.38 and nearly grey, and an anti-aliased edge keeps its hue, so this is the object's
   colour at a coverage of about 45 % or more.
2. **Objects.** The 4-connected components of each colour with at least :data:`MIN_AREA` pixels: half
   the area of the smallest object the generator draws (a 10 px star, 38 px), so that a speck is not an
   object.
3. **Shape.** Each shape of :data:`~astar_ext.toy.data.SHAPES` is rasterised by the generator's own
   :func:`~astar_ext.toy.data.shape_mask` into the component's bounding box, and compared with the
   component by IoU; the best shape is the component's shape, its IoU the score.

An object ``(colour, shape)`` of a prompt is *drawn* when a component of its colour exists (any shape),
and *correct* when such a component has that shape as best match with an IoU of at least
:data:`MIN_IOU`. numpy only.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import itertools
from collections.abc import Iterable

import numpy as np

from .data import COLOURS, IMAGE_SIZE, SHAPES, SIZE_RANGE, shape_mask

MIN_IOU = 0.5  # template IoU for the shape to count
CHROMA_S, CHROMA_V = 0.35, 0.40
WHITE_S, WHITE_V = 0.25, 0.45
MAX_HUE_DISTANCE = 40.0
MIN_COVERAGE = 0.45  # a pixel belongs to an object when it is about this much of the object's colour

COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
#: pixels of a component that counts as an object: half the smallest object of the data
_SMALLEST = min(lo for lo, _ in SIZE_RANGE.values())
MIN_AREA = int(min(shape_mask(s, _SMALLEST, _SMALLEST).sum() for s in SHAPES)) // 2
_CHROMATIC = [(i, colorsys.rgb_to_hsv(*rgb)[0] * 360.0) for i, (name, rgb) in enumerate(COLOURS.items())
              if name != "white"]
_WHITE = COLOUR_NAMES.index("white")
_VALUES = [max(rgb) for rgb in COLOURS.values()]


@dataclasses.dataclass(frozen=True)
class Detection:
    """One detected object: its colour, best shape and that shape's template IoU, bbox (exclusive ends), area,
    the IoU of every shape's template, and its pixels (``[H, W]`` bool)."""

    colour: str
    shape: str
    iou: float
    bbox: tuple[int, int, int, int]
    area: int
    scores: dict[str, float] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    mask: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


def colour_labels(image: np.ndarray) -> np.ndarray:
    """Per-pixel colour index into :data:`COLOUR_NAMES` (``-1``: background) of ``[H, W, 3]`` in [0, 1]."""
    img = np.asarray(image, dtype=np.float32)
    mx = img.max(-1)
    mn = img.min(-1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    # hue in degrees, as colorsys computes it
    delta = np.maximum(mx - mn, 1e-6)
    hue = np.where(mx == r, (g - b) / delta % 6, np.where(mx == g, (b - r) / delta + 2, (r - g) / delta + 4)) * 60.0
    background = float(np.median(mx))  # most pixels are background
    labels = np.full(mx.shape, -1, dtype=np.int64)
    best = np.full(mx.shape, np.inf)
    for index, h in _CHROMATIC:
        d = np.abs((hue - h + 180.0) % 360.0 - 180.0)
        take = (sat >= CHROMA_S) & (mx >= _bright_enough(index, background)) & (d < best) & (d <= MAX_HUE_DISTANCE)
        labels[take] = index
        best = np.where(take, d, best)
    labels[(sat < WHITE_S) & (mx >= _bright_enough(_WHITE, background))] = _WHITE
    return labels


def _bright_enough(index: int, background: float) -> float:
    """The value ``V`` of a pixel covered to :data:`MIN_COVERAGE` by colour ``index`` over a background of
    value ``background`` (at least :data:`CHROMA_V` / :data:`WHITE_V`)."""
    floor = WHITE_V if index == _WHITE else CHROMA_V
    return max(floor, background + MIN_COVERAGE * (_VALUES[index] - background))


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean ``[H, W]`` mask, each as a boolean mask."""
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    out = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        comp = np.zeros_like(mask, dtype=bool)
        stack = [(y0, x0)]
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            comp[y, x] = True
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        out.append(comp)
    return out


@functools.lru_cache(maxsize=4096)
def _template(shape: str, width: int, height: int) -> np.ndarray:
    return shape_mask(shape, width, height)


def match_shape(comp: np.ndarray) -> tuple[str, float, tuple[int, int, int, int], dict[str, float]]:
    """Best template of a component ``[H, W]``: ``(shape, IoU, bbox, IoU per shape)``.

    A thin tip (a star's, a triangle's) can fall below the colour threshold, so the component's
    bounding box may be up to a pixel short of the shape's frame on any side: each template is also
    tried in the frames grown by one pixel on any subset of the sides, and keeps its best IoU.
    """
    ys, xs = np.nonzero(comp)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    padded = np.pad(comp, 1)
    scores = {}
    for shape in SHAPES:
        best = 0.0
        for grow in itertools.product((0, 1), repeat=4):
            fx0, fy0, fx1, fy1 = x0 - grow[0], y0 - grow[1], x1 + grow[2], y1 + grow[3]
            tpl = _template(shape, fx1 - fx0, fy1 - fy0)
            crop = padded[fy0 + 1:fy1 + 1, fx0 + 1:fx1 + 1]
            inter = np.logical_and(tpl, crop).sum()
            best = max(best, float(inter / max(int(comp.sum()) + int(tpl.sum()) - inter, 1)))
        scores[shape] = best
    shape = max(scores, key=scores.get)
    return shape, scores[shape], (x0, y0, x1, y1), scores


def to_grid(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """An image ``[H, W, 3]`` whose side is a multiple of ``size`` (the model's 256 px) averaged over blocks to
    ``[size, size, 3]``: the scene grid the detector and the ground truth work on."""
    img = np.asarray(image, dtype=np.float32)
    h, w = img.shape[:2]
    if h == size and w == size:
        return img
    if h % size or w % size:
        raise ValueError(f"image of {w}x{h} px: the side must be a multiple of {size}")
    return img.reshape(size, h // size, size, w // size, 3).mean((1, 3))


def detect(image: np.ndarray, min_area: int = MIN_AREA) -> list[Detection]:
    """Every object of an image ``[H, W, 3]`` (float in [0, 1]; a larger image is first averaged to the 32x32
    scene grid by :func:`to_grid`), largest first."""
    labels = colour_labels(to_grid(image))
    found = []
    for index, colour in enumerate(COLOUR_NAMES):
        for comp in components(labels == index):
            area = int(comp.sum())
            if area < min_area:
                continue
            shape, iou, bbox, scores = match_shape(comp)
            found.append(Detection(colour, shape, iou, bbox, area, scores, comp))
    return sorted(found, key=lambda d: -d.area)


def correct(detections: Iterable[Detection], colour: str, shape: str, min_iou: float = MIN_IOU) -> bool:
    """The object is drawn with its shape: a component of ``colour`` whose best template is ``shape`` with
    IoU >= ``min_iou``."""
    return any(d.colour == colour and d.shape == shape and d.iou >= min_iou for d in detections)


def drawn(detections: Iterable[Detection], colour: str) -> bool:
    """The object is drawn: a component of its colour (of at least ``MIN_AREA`` pixels) exists."""
    return any(d.colour == colour for d in detections)


def to_numpy_image(image) -> np.ndarray:
    """A ``[3, H, W]`` tensor/array in [0, 1] (or ``[H, W, 3]``) -> ``[H, W, 3]`` float32 array."""
    arr = np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, dtype=np.float32)
    return arr.transpose(1, 2, 0) if arr.shape[0] == 3 and arr.shape[-1] != 3 else arr
