"""Scenes of one to three coloured shapes with captions and exact ground truth.

A scene is laid out on a 32x32 grid: a dark, desaturated background (plain, or with a faint grey texture)
and one to three objects, each a :data:`SHAPES` shape in a :data:`COLOURS` colour, axis-aligned,
filling a square frame of random size and position. Objects in one scene never overlap and never share
a colour, so each object is exactly the pixels of its colour; shapes may repeat. The caption names
the objects in random order, in the paper's style: ``"a red circle and a blue square"``,
``"a green star with a yellow ring"``, ``"a red circle, a blue square and a white cross"``.

The ground truth and the detector work on the 32x32 image (:attr:`Scene.image`); the model is trained on
the same scene rendered at ``32 * scale`` pixels (:func:`render_scene`, 256x256 for the shipped model),
which, averaged over ``scale x scale`` blocks, is the 32x32 image.

**Captions that name what is not drawn** (:attr:`DataMix.absent`): with this probability a scene of one or
two objects gets a caption that names one more object (another colour) that the image does not show, as
web captions often name things a photo does not show. A model that learns this data omits a named
object now and then, however well it is trained: the neglect of the benchmark comes from the data.

Shapes are defined in the frame's normalised coordinates ``(u, v)`` in ``[-1, 1]^2`` (``v`` points
down) and rasterised by 4x4 supersampling: a pixel's coverage is the share of its 16 sub-samples
inside the shape. :func:`shape_mask` is used both here and by the detector's template matching
(:mod:`astar_ext.toy.detect`).

numpy only.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

IMAGE_SIZE = 32
SUPERSAMPLE = 4

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.10),
    "yellow": (0.95, 0.85, 0.10),
    "green": (0.15, 0.75, 0.20),
    "blue": (0.15, 0.35, 0.95),
    "purple": (0.62, 0.20, 0.85),
    "white": (0.95, 0.95, 0.95),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross")

RING_INNER = 0.5  # inner radius of a ring, relative to the outer one
CROSS_ARM = 1.0 / 3.0  # half-width of a cross's arm, relative to the frame's half-size
STAR_INNER = 0.45  # inner radius of a star, relative to the outer one

# frame side in pixels, by the number of objects in the scene (inclusive ranges)
SIZE_RANGE = {1: (10, 16), 2: (10, 14), 3: (10, 12)}
BACKGROUND_MAX = 0.38  # no background channel exceeds this (the detector relies on it)


def _star_polygon() -> np.ndarray:
    """The 10 vertices ``[10, 2]`` of an upright five-pointed star, stretched to fill ``[-1, 1]^2``."""
    k = np.arange(10)
    angle = -math.pi / 2 + k * math.pi / 5
    radius = np.where(k % 2 == 0, 1.0, STAR_INNER)
    pts = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)
    lo, hi = pts.min(0), pts.max(0)
    return (pts - lo) / (hi - lo) * 2 - 1


_STAR = _star_polygon()


def _inside_polygon(u: np.ndarray, v: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points ``(u, v)`` (any equal shapes) lie inside the polygon ``[n, 2]``."""
    inside = np.zeros(u.shape, dtype=bool)
    n = len(poly)
    for i in range(n):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % n]
        crosses = (y1 > v) != (y2 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (v - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (u < x_at)
    return inside


def inside_shape(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Which normalised points ``(u, v)`` lie inside ``shape`` (its frame is ``[-1, 1]^2``)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if shape == "triangle":  # apex at the top centre, base along the bottom edge
        return (v <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= RING_INNER ** 2)
    if shape == "cross":
        inframe = (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
        return inframe & ((np.abs(u) <= CROSS_ARM) | (np.abs(v) <= CROSS_ARM))
    if shape == "star":
        return _inside_polygon(u, v, _STAR)
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def shape_coverage(shape: str, width: int, height: int, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """Coverage ``[height, width]`` in [0, 1] of ``shape`` stretched over a ``width x height`` pixel frame."""
    sub = (np.arange(supersample) + 0.5) / supersample
    xs = ((np.arange(width)[:, None] + sub[None]).reshape(-1) / width) * 2 - 1
    ys = ((np.arange(height)[:, None] + sub[None]).reshape(-1) / height) * 2 - 1
    u, v = np.meshgrid(xs, ys)
    inside = inside_shape(shape, u, v).astype(np.float32)
    return inside.reshape(height, supersample, width, supersample).mean((1, 3))


def shape_mask(shape: str, width: int, height: int) -> np.ndarray:
    """Binary mask ``[height, width]`` (coverage >= 0.5) of ``shape`` over a ``width x height`` frame."""
    return shape_coverage(shape, width, height) >= 0.5


@dataclasses.dataclass(frozen=True)
class ToyObject:
    """One object: a shape in a colour, filling the square frame ``[x, x + size) x [y, y + size)``."""

    colour: str
    shape: str
    x: int
    y: int
    size: int

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``, exclusive ends."""
        return self.x, self.y, self.x + self.size, self.y + self.size

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.size / 2, self.y + self.size / 2


@dataclasses.dataclass
class Scene:
    """A rendered scene.

    Attributes:
        image: ``[32, 32, 3]`` float32 in [0, 1].
        objects: the objects in caption order.
        caption: e.g. ``"a red circle and a blue square"``.
        coverage: ``[n, 32, 32]`` float32, the share of each pixel each object covers, in caption order.
        background: ``"plain"`` or ``"textured"``.
        colours: ``[n, 3]`` the RGB each object is drawn in.
        background_image: ``[32, 32, 3]`` the background alone.
        absent: ``(colour, shape)`` of the objects the caption names that are not drawn.
    """

    image: np.ndarray
    objects: tuple[ToyObject, ...]
    caption: str
    coverage: np.ndarray
    background: str
    colours: np.ndarray | None = None
    background_image: np.ndarray | None = None
    absent: tuple[tuple[str, str], ...] = ()

    @property
    def masks(self) -> np.ndarray:
        """``[n, 32, 32]`` bool: each object's pixels (coverage >= 0.5)."""
        return self.coverage >= 0.5


def caption_for(names: list[str], joiner: str = "and") -> str:
    """``["red circle", "blue square"]`` -> ``"a red circle and a blue square"`` (``joiner``: and / with);
    three names -> ``"a red circle, a blue square and a white cross"``."""
    parts = [f"a {n}" for n in names]
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return f"{parts[0]} {joiner} {parts[1]}"
    return ", ".join(parts[:-1]) + f" and {parts[-1]}"


def objects_in(text: str) -> list[tuple[str, str]]:
    """The ``(colour, shape)`` pairs a caption names, in order: ``"a red circle and a blue square"`` ->
    ``[("red", "circle"), ("blue", "square")]``."""
    words = re.findall(r"[a-z]+", text.lower())
    return [(a, b) for a, b in zip(words, words[1:]) if a in COLOURS and b in SHAPES]


def make_background(rng: np.random.Generator, textured: bool) -> np.ndarray:
    """A dark, nearly grey background ``[32, 32, 3]``; textured ones add stripes, a checker or noise."""
    n = IMAGE_SIZE
    base = rng.uniform(0.03, 0.22)
    tint = rng.uniform(-0.03, 0.03, size=3)
    bg = np.full((n, n, 3), base, dtype=np.float32) + tint.astype(np.float32)
    if textured:
        amp = rng.uniform(0.05, 0.12)
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        kind = rng.integers(3)
        if kind == 0:  # stripes at a random angle and period
            theta = rng.uniform(0, math.pi)
            period = rng.uniform(3, 8)
            pattern = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period)
        elif kind == 1:  # checker
            cell = int(rng.integers(2, 6))
            pattern = ((xx // cell + yy // cell) % 2) * 2 - 1
        else:  # smooth noise: a coarse random grid, bilinearly upsampled
            coarse = rng.uniform(-1, 1, size=(5, 5))
            g = np.linspace(0, 4, n)
            i0 = np.minimum(g.astype(int), 3)
            f = g - i0
            rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
            pattern = rows[:, i0] * (1 - f)[None] + rows[:, i0 + 1] * f[None]
        bg += (amp * pattern)[..., None].astype(np.float32)
    return np.clip(bg, 0.0, BACKGROUND_MAX)


def place_objects(rng: np.random.Generator, specs: list[tuple[str, str]], tries: int = 200) -> list[ToyObject]:
    """Random sizes and positions for ``(colour, shape)`` specs: inside the image, at least 1 px apart."""
    lo, hi = SIZE_RANGE[min(len(specs), 3)]
    for _ in range(tries):
        placed: list[ToyObject] = []
        for colour, shape in specs:
            size = int(rng.integers(lo, hi + 1))
            x = int(rng.integers(0, IMAGE_SIZE - size + 1))
            y = int(rng.integers(0, IMAGE_SIZE - size + 1))
            obj = ToyObject(colour, shape, x, y, size)
            if all(_apart(obj, other) for other in placed):
                placed.append(obj)
            else:
                break
        if len(placed) == len(specs):
            return placed
    raise RuntimeError(f"could not place {len(specs)} objects without overlap")


def _apart(a: ToyObject, b: ToyObject, gap: int = 1) -> bool:
    ax0, ay0, ax1, ay1 = a.bbox
    bx0, by0, bx1, by1 = b.bbox
    return ax1 + gap <= bx0 or bx1 + gap <= ax0 or ay1 + gap <= by0 or by1 + gap <= ay0


def object_colours(objects: list[ToyObject] | tuple[ToyObject, ...],
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """``[n, 3]`` the RGB of each object: its palette colour, with ``rng`` jittered by up to +-0.04 per channel."""
    out = np.array([COLOURS[o.colour] for o in objects], dtype=np.float32).reshape(-1, 3)
    if rng is not None:
        out = np.clip(out + rng.uniform(-0.04, 0.04, size=out.shape).astype(np.float32), 0, 1)
    return out


def render(objects: list[ToyObject] | tuple[ToyObject, ...], background: np.ndarray,
           rng: np.random.Generator | None = None, colours: np.ndarray | None = None,
           supersample: int = SUPERSAMPLE, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Composite ``objects`` over ``background`` ``[size, size, 3]``.

    Returns ``(image [size, size, 3] float32 in [0, 1], coverage [n, size, size] float32 in [0, 1])``; each
    object has its ``colours`` row, else its palette colour (jittered by :func:`object_colours` with ``rng``).
    """
    if colours is None:
        colours = object_colours(objects, rng)
    image = background.astype(np.float32).copy()
    coverage = np.zeros((len(objects), size, size), dtype=np.float32)
    for i, obj in enumerate(objects):
        cov = shape_coverage(obj.shape, obj.size, obj.size, supersample)
        colour = colours[i]
        x0, y0, x1, y1 = obj.bbox
        region = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = region * (1 - cov[..., None]) + colour * cov[..., None]
        coverage[i, y0:y1, x0:x1] = cov
    return image, coverage


@dataclasses.dataclass(frozen=True)
class DataMix:
    """Probabilities of one, two and three objects per scene, and of a textured background.

    ``with_share`` is the share of two-object captions written with ``with`` instead of ``and``;
    ``absent`` the probability that the caption of a one- or two-object scene names one more object,
    one that is not drawn.
    """

    one: float = 0.5
    two: float = 0.35
    three: float = 0.15
    textured: float = 0.0
    with_share: float = 0.3
    absent: float = 0.0

    def counts(self) -> np.ndarray:
        p = np.array([self.one, self.two, self.three], dtype=np.float64)
        return p / p.sum()


def random_scene(rng: np.random.Generator, mix: DataMix = DataMix(), count: int | None = None) -> Scene:
    """A random scene: ``count`` objects (drawn from ``mix`` when ``None``) of distinct colours; with
    probability ``mix.absent`` (one or two objects) the caption names one more, undrawn object."""
    if count is None:
        count = int(rng.choice(3, p=mix.counts())) + 1
    extra = int(count < 3 and mix.absent > 0 and rng.random() < mix.absent)
    colours = rng.choice(list(COLOURS), size=count + extra, replace=False)
    shapes = rng.choice(SHAPES, size=count + extra, replace=True)
    specs = [(str(c), str(s)) for c, s in zip(colours, shapes)]
    scene = scene_from_specs(rng, specs[:count], mix)
    if not extra:
        return scene
    named = [o.name for o in scene.objects]
    named.insert(int(rng.integers(len(named) + 1)), " ".join(specs[-1]))
    joiner = "with" if len(named) == 2 and rng.random() < mix.with_share else "and"
    return dataclasses.replace(scene, caption=caption_for(named, joiner), absent=(specs[-1],))


def scene_from_specs(rng: np.random.Generator, specs: list[tuple[str, str]], mix: DataMix = DataMix()) -> Scene:
    """Render the objects ``specs`` (``(colour, shape)``, caption order) at random places."""
    objects = place_objects(rng, specs)
    textured = bool(rng.random() < mix.textured)
    joiner = "with" if len(specs) == 2 and rng.random() < mix.with_share else "and"
    background = make_background(rng, textured)
    colours = object_colours(objects, rng)
    image, coverage = render(objects, background, colours=colours)
    caption = caption_for([o.name for o in objects], joiner)
    return Scene(image, tuple(objects), caption, coverage, "textured" if textured else "plain", colours, background)


def render_scene(scene: Scene, scale: int) -> np.ndarray:
    """``scene`` rendered at ``32 * scale`` pixels: ``[32 s, 32 s, 3]`` float32 in [0, 1]. The same objects,
    colours and background (a textured one upsampled, nearest) as :attr:`Scene.image`, whose pixels are
    (up to the anti-aliasing) the means of ``scale x scale`` blocks of this image."""
    if scale == 1:
        return scene.image
    background = np.kron(scene.background_image, np.ones((scale, scale, 1), dtype=np.float32))
    big = [dataclasses.replace(o, x=o.x * scale, y=o.y * scale, size=o.size * scale) for o in scene.objects]
    return render(big, background, colours=scene.colours, supersample=max(1, SUPERSAMPLE // 2),
                  size=IMAGE_SIZE * scale)[0]


def batch(rng: np.random.Generator, n: int, mix: DataMix = DataMix(), scale: int = 1) -> tuple[np.ndarray, list[str]]:
    """``n`` random scenes: ``(images [n, 3, 32 s, 32 s] float32 in [-1, 1], captions)`` (``s = scale``)."""
    scenes = [random_scene(rng, mix) for _ in range(n)]
    images = np.stack([render_scene(s, scale) for s in scenes]).transpose(0, 3, 1, 2) * 2 - 1
    return images.astype(np.float32), [s.caption for s in scenes]
