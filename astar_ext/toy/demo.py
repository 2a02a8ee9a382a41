"""A-STAR on any machine: the shipped toy model, one prompt, plain vs A-STAR, with concept heatmaps.

    python -m astar_ext.toy.demo                                   # writes astar_demo.png
    python -m astar_ext.toy.demo --prompt "a red circle with a blue square" --seeds 0 1 2 3 --out demo.png

For each seed the picture has one row: the plain image and its concepts' attention maps, then the
A-STAR image (same seed) and its maps. A map is the engine's concept map (8x8, A&E's normalisation)
measured at the middle step of sampling, divided by its maximum and laid over the image; under each
image the learning-free detector says which objects of the prompt are missing (no blob of their
colour), or, when all are drawn, how many have their shape. Needs torch, numpy,
Pillow, k-diffusion and ldm (the test install); runs on CPU in seconds.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .. import params as P
from . import data as D
from . import detect as T
from .model import load_model
from .sample import DEFAULT_CFG, DEFAULT_STEPS, generate

# one of the benchmark's two-object prompts (kept from the v1 demo, not chosen on the v2 model's results)
DEFAULT_PROMPT = "a yellow cross with a green triangle"
# anchors of a dark-blue -> red -> yellow colour map
_CMAP = np.array([[0.05, 0.03, 0.25], [0.45, 0.05, 0.55], [0.85, 0.2, 0.25], [1.0, 0.6, 0.1], [1.0, 1.0, 0.6]])


def colormap(values: np.ndarray) -> np.ndarray:
    """``[...]`` values in [0, 1] -> ``[..., 3]`` RGB in [0, 1] (piecewise-linear through :data:`_CMAP`)."""
    x = np.clip(values, 0, 1) * (len(_CMAP) - 1)
    i = np.minimum(x.astype(int), len(_CMAP) - 2)
    f = (x - i)[..., None]
    return _CMAP[i] * (1 - f) + _CMAP[i + 1] * f


def overlay(image: np.ndarray, amap: np.ndarray, alpha: float = 0.65) -> np.ndarray:
    """A map ``[h, w]`` (any scale), nearest-upsampled to the image ``[H, W, 3]`` and blended over its grey."""
    h, w = image.shape[:2]
    up = np.kron(amap, np.ones((h // amap.shape[0], w // amap.shape[1])))
    up = up / max(float(up.max()), 1e-8)
    grey = image.mean(-1, keepdims=True).repeat(3, -1)
    return alpha * colormap(up) + (1 - alpha) * grey


def _tile(arr: np.ndarray, px: int) -> Image.Image:
    return Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8)).resize((px, px), Image.NEAREST)


def render_picture(prompt: str, seeds: Sequence[int], labels: Sequence[str], plain: Any, guided: Any,
                   settings_text: str, px: int = 128) -> Image.Image:
    """The side-by-side picture of two :class:`~astar_ext.toy.sample.Run` of the same seeds."""
    font = ImageFont.load_default()
    k = len(labels)
    cols = 2 * (1 + k)
    pad, head, foot = 6, 40, 14
    width = cols * (px + pad) + pad + pad
    height = head + len(seeds) * (px + foot + pad) + pad
    pic = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(pic)
    draw.text((pad, 4), f'"{prompt}"   seeds {", ".join(map(str, seeds))}   A-STAR: {settings_text}',
              fill=(240, 240, 240), font=font)
    block = (1 + k) * (px + pad)
    for b, title in enumerate(("plain", "A-STAR")):
        x0 = pad + b * (block + pad)
        draw.text((x0, 20), title, fill=(255, 210, 120), font=font)
        for j, label in enumerate(labels):
            draw.text((x0 + (1 + j) * (px + pad), 20), f"map: {label}",
                      fill=(170, 200, 255), font=font)
    mid = -1  # the last measured step: the middle of sampling
    objects = D.objects_in(prompt)
    for r, _ in enumerate(seeds):
        y = head + r * (px + foot + pad)
        for b, run in enumerate((plain, guided)):
            x0 = pad + b * (block + pad)
            img = T.to_numpy_image(run.images[r])
            pic.paste(_tile(img, px), (x0, y))
            dets = T.detect(img)
            missing = [f"{c} {s}" for c, s in objects if not T.drawn(dets, c)]
            shapes = sum(T.correct(dets, c, s) for c, s in objects)
            note = f"all drawn, {shapes}/{len(objects)} shapes" if not missing else "missing: " + ", ".join(missing)
            draw.text((x0, y + px + 1), note, fill=(150, 230, 150) if not missing else (255, 140, 140), font=font)
            for j in range(k):
                amap = run.maps[mid, r, j].numpy()
                pic.paste(_tile(overlay(img, amap), px), (x0 + (1 + j) * (px + pad), y))
    return pic


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description="Plain vs A-STAR on the shipped toy model, with concept heatmaps.")
    ap.add_argument("--prompt", default=DEFAULT_PROMPT)
    ap.add_argument("--concepts", default=None, help="default: the prompt's objects, e.g. 'red circle, blue square'")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--cfg", type=float, default=DEFAULT_CFG)
    ap.add_argument("--set", default="", help="A-STAR settings, e.g. 'scale=40,window=0.75' (default: the defaults)")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--px", type=int, default=128, help="size of each tile in pixels")
    ap.add_argument("--out", default="astar_demo.png")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # a small model: one thread is fastest, and kind to a busy machine
    from .bench import parse_overrides

    concepts = a.concepts or ", ".join(f"{c} {s}" for c, s in D.objects_in(a.prompt))
    if not concepts:
        ap.error("no concepts: name them with --concepts (the prompt has no '<colour> <shape>' pair)")
    params = P.replace(P.DEFAULTS, **parse_overrides(a.set))
    model = load_model(a.weights)
    n = len(a.seeds)
    plain = generate(model, [a.prompt] * n, a.seeds, [concepts] * n, None, steps=a.steps, cfg_scale=a.cfg)
    guided = generate(model, [a.prompt] * n, a.seeds, [concepts] * n, params, steps=a.steps, cfg_scale=a.cfg)
    labels = plain.labels[0]
    text = ", ".join(f"{k} {v:g}" for k, v in P.to_dict(params).items() if k in ("scale", "window"))
    render_picture(a.prompt, a.seeds, labels, plain, guided, text, a.px).save(a.out)
    print(f"wrote {a.out}: plain {plain.seconds:.1f} s, A-STAR {guided.seconds:.1f} s for {n} images")
    return a.out


if __name__ == "__main__":
    main()
