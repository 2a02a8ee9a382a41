"""Layout benchmark and demo on the shipped toy model: does each object land in the box the user drew?

    python -m astar_ext.toy.layout                  # plain vs A-STAR vs A-STAR + layout, report seeds
    python -m astar_ext.toy.bench --layout          # the same, as a mode of the faithfulness benchmark
    python -m astar_ext.toy.layout --sweep          # layout settings one at a time, on the tuning seeds
    python -m astar_ext.toy.layout --demo           # the demo picture (docs/layout-demo.png)

Two-object prompts of the faithfulness benchmark (:func:`~astar_ext.toy.bench.benchmark_prompts`), each with
layouts of five kinds (:data:`KINDS`): the two objects left / right, top / bottom, in diagonal quadrants, a small
box beside a large one, and **contradict**: at each seed the objects are asked to swap the sides on which plain
sampling put them at that same seed (along the axis on which plain sampling separated them most). Every kind
alternates which object goes where from prompt to prompt.

Each prompt and layout is generated at the same seeds three ways: plain, A-STAR without a layout (the given
settings) and A-STAR with the layout (the layout-mode settings); the learning-free detector
(:mod:`astar_ext.toy.detect`) finds each object (the largest blob of its colour) and its centre (the middle of
its bounding box). Reported per kind and overall:

* **A in box / B in box**: the prompt's first / second object is drawn with its centre inside its box;
* **both in box**: both at once (the target: at least 80 % with the layout);
* **all present**: both objects drawn, anywhere (the layout must not lose objects: no lower than A-STAR's);
* **fixed / broken**: images where both are in their boxes with the layout and not without it, and the reverse,
  at the same seed (against A-STAR without a layout); **gained / lost**: the same for all present;
* **fit**: the share of each concept's attention inside its region at the end of the window (with a layout);
* 95 % Wilson intervals for the rates.

Seeds: the layout-mode settings were chosen on the tuning seeds (:data:`TUNING_SEEDS`, ``--sweep``); the report
uses other seeds (:data:`REPORT_SEEDS`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import params as P
from ..controller import LAYOUT_LOSSES, EngineOptions
from . import data as D
from . import detect as T
from .bench import benchmark_prompts, parse_overrides, prompt_text, sign_test, wilson
from .model import ToyLDM, load_model
from .sample import DEFAULT_CFG, DEFAULT_STEPS, generate

KINDS = ("left/right", "top/bottom", "diagonal", "small/large", "contradict")
TUNING_SEEDS = (200, 201)
REPORT_SEEDS = tuple(range(300, 306))
Box = tuple[float, float, float, float]

LEFT: Box = (0.02, 0.05, 0.48, 0.95)
RIGHT: Box = (0.52, 0.05, 0.98, 0.95)
TOP: Box = (0.05, 0.02, 0.95, 0.48)
BOTTOM: Box = (0.05, 0.52, 0.95, 0.98)
QUADRANTS: tuple[Box, ...] = ((0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5), (0.0, 0.5, 0.5, 1.0), (0.5, 0.5, 1.0, 1.0))
SMALL: Box = (0.04, 0.32, 0.40, 0.68)  # about 12 x 12 px of the 32 x 32 image: one object's frame
LARGE: Box = (0.46, 0.04, 0.96, 0.96)


def mirror(box: Box) -> Box:
    """The box mirrored left-right."""
    x0, y0, x1, y1 = box
    return (round(1 - x1, 4), y0, round(1 - x0, 4), y1)


def kind_boxes(kind: str, index: int, plain: tuple[tuple[float, float] | None, ...] | None = None) -> tuple[Box, Box]:
    """The boxes of the prompt's first and second object for layout ``kind`` of prompt ``index``.

    ``contradict`` needs ``plain``: the centres (fractions of the image) of the two objects in the plain image at
    the same seed (``None`` for an object not drawn).
    """
    flip = index % 2 == 1
    if kind == "left/right":
        return (RIGHT, LEFT) if flip else (LEFT, RIGHT)
    if kind == "top/bottom":
        return (BOTTOM, TOP) if flip else (TOP, BOTTOM)
    if kind == "diagonal":
        a = index % 4
        return QUADRANTS[a], QUADRANTS[3 - a]
    if kind == "small/large":
        small, large = (mirror(SMALL), mirror(LARGE)) if (index // 2) % 2 else (SMALL, LARGE)
        return (large, small) if flip else (small, large)
    if kind == "contradict":
        if plain is None:
            raise ValueError("the contradict layout needs the plain image's object centres")
        a, b = plain
        if a is None and b is None:
            return (LEFT, RIGHT) if not flip else (RIGHT, LEFT)
        if a is None or b is None:  # the drawn one goes to the other half, the missing one where it was
            x, y = a if a is not None else b
            there, other = (LEFT, RIGHT) if x < 0.5 else (RIGHT, LEFT)
            return (other, there) if a is not None else (there, other)
        dx, dy = b[0] - a[0], b[1] - a[1]
        if abs(dx) >= abs(dy):
            return (RIGHT, LEFT) if dx > 0 else (LEFT, RIGHT)
        return (BOTTOM, TOP) if dy > 0 else (TOP, BOTTOM)
    raise ValueError(f"unknown layout kind {kind!r}; known: {', '.join(KINDS)}")


def layout_text(objects: Sequence[tuple[str, str]], boxes: Sequence[Box]) -> str:
    return P.layout_to_text([P.LayoutEntry(f"{c} {s}", box=b) for (c, s), b in zip(objects, boxes)])


def centre_of(dets: Sequence[T.Detection], colour: str, size: int = D.IMAGE_SIZE) -> tuple[float, float] | None:
    """The centre (fractions of the image) of the largest blob of ``colour``, or None when there is none."""
    found = [d for d in dets if d.colour == colour]
    if not found:
        return None
    x0, y0, x1, y1 = max(found, key=lambda d: d.area).bbox
    return (x0 + x1) / 2 / size, (y0 + y1) / 2 / size


def inside(centre: tuple[float, float] | None, box: Box) -> bool:
    return centre is not None and box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3]


@dataclasses.dataclass(frozen=True)
class Case:
    """One image to judge: prompt ``prompt`` (its index), layout ``kind``, ``seed``, the two objects' boxes."""

    prompt: int
    objects: tuple[tuple[str, str], ...]
    kind: str
    seed: int
    boxes: tuple[Box, Box] | None = None


@dataclasses.dataclass
class Judged:
    """Per case: centres (or None), in-box flags, presence, and the layout fit (NaN without a layout)."""

    centres: list[tuple[tuple[float, float] | None, ...]]
    in_box: np.ndarray  # [N, 2] bool
    present: np.ndarray  # [N, 2] bool
    fit: np.ndarray  # [N, 2] float
    seconds: float


def run_cases(model: ToyLDM, cases: Sequence[Case], params: Any | None, steps: int, cfg_scale: float,
              with_layout: bool, options: EngineOptions = EngineOptions()) -> Judged:
    """Generate every case (plain when ``params`` is None; the case's layout when ``with_layout``) and judge it.
    ``options``: the engine's (its ``layout_loss`` is the layout mode's term).

    Cases that share a prompt and a layout run as one batch (the layout is one per generation).
    """
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cases):
        key = (c.prompt, c.objects, c.boxes if with_layout else None)
        groups.setdefault(key, []).append(i)
    n = len(cases)
    centres: list[Any] = [None] * n
    in_box = np.zeros((n, 2), dtype=bool)
    present = np.zeros((n, 2), dtype=bool)
    fits = np.full((n, 2), np.nan)
    t0 = time.perf_counter()
    for (index, objects, boxes), members in groups.items():
        concepts = ", ".join(f"{c} {s}" for c, s in objects)
        run_params = None
        if params is not None:
            layout = layout_text(objects, boxes) if with_layout else ""
            run_params = P.replace(params, concepts=concepts, layout=layout)
        seeds = sorted({cases[i].seed for i in members})  # without a layout, the kinds share their images
        text = prompt_text(objects, index)
        run = generate(model, [text] * len(seeds), seeds, [concepts] * len(seeds), run_params, steps=steps,
                       cfg_scale=cfg_scale, decode=False, options=options)
        fit_rows = _end_fit(run) if with_layout and params is not None else None
        for i in members:
            r = seeds.index(cases[i].seed)
            dets = T.detect(T.to_numpy_image(run.images[r]))
            cs = tuple(centre_of(dets, colour) for colour, _ in objects)
            centres[i] = cs
            present[i] = [c is not None for c in cs]
            if cases[i].boxes is not None:
                in_box[i] = [inside(c, b) for c, b in zip(cs, cases[i].boxes)]
            if fit_rows is not None:
                fits[i] = [np.nan if v is None else v for v in fit_rows[r]]
    return Judged(centres, in_box, present, fits, time.perf_counter() - t0)


def _end_fit(run: Any) -> list[list[float | None]]:
    """Per image and concept, the layout fit at the end of the window (the first step after it, else the last
    corrected step)."""
    ctrl = run.controller
    window = ctrl.schedule.optimised_steps
    after = [m for m in ctrl.measures if m.step == window]
    if after:
        return after[0].fit
    return ctrl.records[-1].fit if ctrl.records else [[None, None]] * len(run.images)


def make_cases(prompts: Sequence[tuple[tuple[str, str], ...]], seeds: Sequence[int],
               kinds: Sequence[str]) -> list[Case]:
    """Every prompt x kind x seed; the contradict kind's boxes are filled in later from the plain images."""
    cases = []
    for kind in kinds:
        for i, objects in enumerate(prompts):
            for s in seeds:
                boxes = None if kind == "contradict" else kind_boxes(kind, i)
                cases.append(Case(i, tuple(objects), kind, s, boxes))
    return cases


def with_contradictions(cases: Sequence[Case], plain: Judged) -> list[Case]:
    """The cases with the contradict kind's boxes set from the plain images' centres at the same seed."""
    return [dataclasses.replace(c, boxes=kind_boxes(c.kind, c.prompt, plain.centres[i])) if c.kind == "contradict"
            else c for i, c in enumerate(cases)]


def judge_boxes(cases: Sequence[Case], judged: Judged) -> np.ndarray:
    """``[N, 2]`` in-box flags of ``judged`` against the cases' boxes (for runs made before the boxes were known)."""
    return np.array([[inside(c, b) for c, b in zip(judged.centres[i], case.boxes)] for i, case in enumerate(cases)])


def summary(in_box: np.ndarray, present: np.ndarray, fit: np.ndarray | None = None,
            base_both: np.ndarray | None = None, base_present: np.ndarray | None = None,
            distinct: np.ndarray | None = None) -> dict[str, Any]:
    """Rates, intervals and paired counts of one setting. ``distinct``: the rows that are distinct images, when
    several rows are one image judged against several layouts (plain and A-STAR without a layout): the
    all-present rate and its interval are then over those images only."""
    n = len(in_box)
    both = in_box.all(1)
    allp = present.all(1)
    shown = allp if distinct is None else allp[distinct]
    out = {
        "images": n,
        "a_in_box": float(in_box[:, 0].mean()) if n else math.nan,
        "b_in_box": float(in_box[:, 1].mean()) if n else math.nan,
        "both_in_box": float(both.mean()) if n else math.nan,
        "both_in_box_ci": wilson(int(both.sum()), n),
        "all_present": float(shown.mean()) if len(shown) else math.nan,
        "all_present_ci": wilson(int(shown.sum()), len(shown)),
        "distinct_images": len(shown),
    }
    if fit is not None and np.isfinite(fit).any():
        out["fit"] = float(np.nanmean(fit))
    if base_both is not None:
        out["fixed"] = int((both & ~base_both).sum())
        out["broken"] = int((~both & base_both).sum())
        out["sign_p"] = sign_test(out["fixed"], out["broken"])
    if base_present is not None:  # images with every object drawn here and not in the base, and the reverse
        out["present_gained"] = int((allp & ~base_present).sum())
        out["present_lost"] = int((~allp & base_present).sum())
        out["present_p"] = sign_test(out["present_gained"], out["present_lost"])
    return out


def _pct(v: float) -> str:
    return "-" if v != v else f"{v:.1%}"


def _ci(ci: tuple[float, float]) -> str:
    return f"{ci[0]:.0%}–{ci[1]:.0%}"


def table(rows: Sequence[tuple[str, str, dict[str, Any]]]) -> str:
    """A Markdown table of ``(layout kind, setting, summary)`` rows."""
    lines = ["| layout | setting | images | A in box | B in box | **both in box** (95 % CI) | both in box: fixed / "
             "broken vs A-STAR (sign p) | all present (95 % CI) | all present: gained / lost vs A-STAR (sign p) "
             "| fit |", "|" + " --- |" * 10]
    for kind, name, s in rows:
        fb = f"{s['fixed']} / {s['broken']} (p {s['sign_p']:.2g})" if "fixed" in s else "-"
        gl = f"{s['present_gained']} / {s['present_lost']} (p {s['present_p']:.2g})" if "present_gained" in s else "-"
        fit = f"{s['fit']:.2f}" if "fit" in s else "-"
        images = s["images"] if s.get("distinct_images", s["images"]) == s["images"] else \
            f"{s['images']} ({s['distinct_images']} distinct)"
        lines.append(f"| {kind} | {name} | {images} | {_pct(s['a_in_box'])} | {_pct(s['b_in_box'])} "
                     f"| {_pct(s['both_in_box'])} ({_ci(s['both_in_box_ci'])}) | {fb} "
                     f"| {_pct(s['all_present'])} ({_ci(s['all_present_ci'])}) | {gl} | {fit} |")
    return "\n".join(lines)


def layout_defaults(base: Any) -> Any:
    """The settings A-STAR uses with a layout when nothing else is asked: ``base`` as it is (the params' own
    defaults are the layout mode's, chosen with ``--sweep`` on the tuning seeds: docs/faithfulness.md)."""
    return base


def evaluate(model: ToyLDM, prompts, seeds, kinds, base: Any, layout_settings: Any, steps: int, cfg_scale: float,
             log=print, options: EngineOptions = EngineOptions()) -> dict[str, Any]:
    """Plain, A-STAR without a layout (``base``) and A-STAR with the layout (``layout_settings``) on every prompt x
    kind x seed; returns the summaries per kind and overall."""
    cases = make_cases(prompts, seeds, kinds)
    log(f"{len(prompts)} prompts x {len(kinds)} layout kinds x {len(seeds)} seeds = {len(cases)} images per setting",
        flush=True)
    plain = run_cases(model, cases, None, steps, cfg_scale, with_layout=False)
    log(f"plain: {plain.seconds:.0f} s", flush=True)
    cases = with_contradictions(cases, plain)
    plain.in_box = judge_boxes(cases, plain)
    astar = run_cases(model, cases, base, steps, cfg_scale, with_layout=False)
    astar.in_box = judge_boxes(cases, astar)
    log(f"A-STAR: {astar.seconds:.0f} s", flush=True)
    guided = run_cases(model, cases, layout_settings, steps, cfg_scale, with_layout=True, options=options)
    log(f"A-STAR + layout: {guided.seconds:.0f} s", flush=True)
    kind_of = np.array([c.kind for c in cases])
    rows = []
    results: dict[str, Any] = {}
    for kind in list(kinds) + ["all"]:
        sel = np.ones(len(cases), dtype=bool) if kind == "all" else kind_of == kind
        base_both, base_present = astar.in_box[sel].all(1), astar.present[sel].all(1)
        keys = [(c.prompt, c.seed) for c, s in zip(cases, sel) if s]
        distinct = np.array(sorted({keys.index(k) for k in keys}))  # the rows of distinct images without a layout
        entries = (("plain", summary(plain.in_box[sel], plain.present[sel], distinct=distinct)),
                   ("A-STAR", summary(astar.in_box[sel], astar.present[sel], distinct=distinct)),
                   ("A-STAR + layout", summary(guided.in_box[sel], guided.present[sel], guided.fit[sel], base_both,
                                               base_present)))
        results[kind] = dict(entries)
        rows.extend((f"**{kind}**" if kind == "all" else kind, name, s) for name, s in entries)
    results["seconds"] = {"plain": plain.seconds, "A-STAR": astar.seconds, "A-STAR + layout": guided.seconds}
    log("")
    log(table(rows))
    return results


SWEEP: tuple[dict[str, Any], ...] = (
    {}, {"scale": 40.0}, {"scale": 80.0}, {"window": 0.75}, {"window": 1.0}, {"layout_weight": 2.0},
    {"layout_weight": 4.0}, {"seg_weight": 0.0}, {"iterations": 2}, {"iterations": 3},
)


def sweep(model: ToyLDM, prompts, seeds, kinds, base: Any, steps: int, cfg_scale: float, configs=SWEEP,
          log=print, options: EngineOptions = EngineOptions()) -> dict[str, Any]:
    """A-STAR with the layout, one setting changed at a time from ``base``, on the same cases (tuning seeds)."""
    cases = make_cases(prompts, seeds, kinds)
    plain = run_cases(model, cases, None, steps, cfg_scale, with_layout=False)
    cases = with_contradictions(cases, plain)
    plain.in_box = judge_boxes(cases, plain)
    rows = [("all", "plain", summary(plain.in_box, plain.present))]
    log(f"sweep: {len(cases)} images per setting; plain both in box {rows[0][2]['both_in_box']:.1%}", flush=True)
    for overrides in configs:
        name = ", ".join(f"{k} {float(v):g}" for k, v in overrides.items()) or "base"
        judged = run_cases(model, cases, P.replace(base, **overrides), steps, cfg_scale, with_layout=True,
                           options=options)
        s = summary(judged.in_box, judged.present, judged.fit)
        s["s_per_image"] = judged.seconds / len(cases)
        rows.append(("all", name, s))
        log(f"{name}: both in box {s['both_in_box']:.1%}, all present {s['all_present']:.1%}, "
            f"fit {s.get('fit', math.nan):.2f}, {s['s_per_image']:.2f} s/img", flush=True)
    log("")
    log(table(rows))
    return {name: s for _, name, s in rows}


# --- the demo picture ---------------------------------------------------------------------------------------------
DEMO_PROMPTS = (
    "a red circle and a blue square", "a green star with a yellow ring", "a white cross and a purple triangle",
)


def _tile(image: torch.Tensor, px: int, boxes: Sequence[tuple[Box, tuple[int, int, int, int]]] = ()) -> Any:
    from PIL import Image, ImageDraw

    arr = (np.clip(T.to_numpy_image(image), 0, 1) * 255).astype(np.uint8)
    tile = Image.fromarray(arr).resize((px, px), Image.NEAREST)
    draw = ImageDraw.Draw(tile)
    for box, colour in boxes:
        x0, y0, x1, y1 = (round(v * (px - 1)) for v in box)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=2)
    return tile


def demo(model: ToyLDM, out: str, seed: int = REPORT_SEEDS[0], steps: int = DEFAULT_STEPS,
         cfg_scale: float = DEFAULT_CFG, base: Any = P.DEFAULTS, layout_settings: Any = None, px: int = 112,
         options: EngineOptions = EngineOptions()) -> str:
    """Columns: a prompt with one layout each (left/right, top/bottom, diagonal, small/large, twice each prompt
    list); rows: plain | A-STAR | A-STAR + layout at the same seed; every tile shows the boxes in the objects'
    colours, with a tick or a cross per object (centre inside its box or not)."""
    from PIL import Image, ImageDraw, ImageFont

    layout_settings = layout_settings or layout_defaults(base)
    kinds = ("left/right", "top/bottom", "diagonal", "small/large")
    columns = []
    for i, text in enumerate(DEMO_PROMPTS):
        objects = tuple(D.objects_in(text))
        for j, kind in enumerate(kinds[i % 2::2]):
            columns.append((text, objects, kind, kind_boxes(kind, i + j)))
    font = ImageFont.load_default()
    pad, head, label_w, foot = 6, 48, 92, 12
    width = label_w + len(columns) * (px + pad) + pad
    height = head + 3 * (px + foot + pad) + pad
    pic = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(pic)
    for r, name in enumerate(("plain", "A-STAR", "A-STAR +\nlayout")):
        draw.multiline_text((pad, head + r * (px + foot + pad) + px // 2 - 8), name, fill=(255, 210, 120), font=font)
    for c, (text, objects, kind, boxes) in enumerate(columns):
        x = label_w + c * (px + pad)
        for line, (colour, shape) in enumerate(objects):
            draw.text((x, 2 + 11 * line), f"{colour} {shape}", fill=tuple(int(v * 255) for v in D.COLOURS[colour]),
                      font=font)
        draw.text((x, 2 + 11 * len(objects) + 3), kind, fill=(170, 200, 255), font=font)
        concepts = ", ".join(f"{a} {b}" for a, b in objects)
        colours = [tuple(int(v * 255) for v in D.COLOURS[a]) for a, _ in objects]
        drawn = list(zip(boxes, colours))
        for r, settings in enumerate((None, base, layout_settings)):
            run_params = None if settings is None else P.replace(
                settings, concepts=concepts, layout=layout_text(objects, boxes) if r == 2 else "")
            run = generate(model, [text], [seed], [concepts], run_params, steps=steps, cfg_scale=cfg_scale,
                           options=options)
            y = head + r * (px + foot + pad)
            pic.paste(_tile(run.images[0], px, drawn), (x, y))
            dets = T.detect(T.to_numpy_image(run.images[0]))
            marks = ["in" if inside(centre_of(dets, a), b) else ("out" if centre_of(dets, a) else "missing")
                     for (a, _), b in zip(objects, boxes)]
            draw.text((x, y + px + 1), " / ".join(marks), fill=(150, 230, 150) if marks == ["in", "in"]
                      else (255, 140, 140), font=font)
    pic.save(out)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description="Layout benchmark (and demo) of A-STAR on the shipped toy model.")
    ap.add_argument("--sweep", action="store_true", help="layout settings one at a time, on the tuning seeds")
    ap.add_argument("--demo", default=None, nargs="?", const="layout_demo.png", metavar="OUT",
                    help="write the demo picture (plain | A-STAR | A-STAR + layout) instead")
    ap.add_argument("--prompts", type=int, default=12, help="number of two-object prompts")
    ap.add_argument("--seeds", type=int, nargs="*", default=None,
                    help=f"seeds (default: report {REPORT_SEEDS[0]}..{REPORT_SEEDS[-1]}, sweep "
                         f"{TUNING_SEEDS[0]}..{TUNING_SEEDS[-1]})")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    ap.add_argument("--configs", nargs="*", default=None, metavar="SETTINGS",
                    help="with --sweep: these settings instead of the built-in list, e.g. 'ret_weight=4,window=1'")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--cfg", type=float, default=DEFAULT_CFG)
    ap.add_argument("--set", default="", help="A-STAR settings without a layout, e.g. 'scale=40'")
    ap.add_argument("--layout-set", default=None, help="A-STAR settings with the layout (default: the layout mode's)")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--level", type=int, default=None,
                    help="level of the maps: 2 = image/32 (8x8, the WebUI's, the default), 1 = image/16 (16x16)")
    ap.add_argument("--layout-loss", choices=LAYOUT_LOSSES, default=EngineOptions.layout_loss,
                    help="the term that holds a concept to its box: the share of its attention outside the box, or "
                         "the paper's Eq. 3 with the box as the mask (the WebUI setting astar_layout_loss)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    options = EngineOptions(layout_loss=a.layout_loss)
    torch.set_num_threads(a.threads)
    model = load_model(a.weights)
    if a.level is not None:
        model.config = dataclasses.replace(model.config, capture_level=a.level)
    base = P.replace(P.DEFAULTS, **parse_overrides(a.set))
    layout_settings = (layout_defaults(base) if a.layout_set is None
                       else P.replace(base, **parse_overrides(a.layout_set)))
    if a.demo:
        seed = a.seeds[0] if a.seeds else REPORT_SEEDS[0]
        print(f"wrote {demo(model, a.demo, seed, a.steps, a.cfg, base, layout_settings, options=options)}")
        return {}
    prompts = benchmark_prompts(2, a.prompts)
    seeds = list(a.seeds) if a.seeds else list(TUNING_SEEDS if a.sweep else REPORT_SEEDS)
    print(f"toy model {a.weights or 'shipped'}; maps at level {model.config.capture_level}; Euler {a.steps} steps, "
          f"CFG {a.cfg}; seeds {seeds}; layout loss {a.layout_loss}; "
          f"A-STAR: {P.to_dict(base)}; with layout: {P.to_dict(layout_settings)}", flush=True)
    if a.sweep:
        configs = SWEEP if a.configs is None else [parse_overrides(c) for c in a.configs]
        results = sweep(model, prompts, seeds, a.kinds, layout_settings, a.steps, a.cfg, configs, options=options)
    else:
        results = evaluate(model, prompts, seeds, a.kinds, base, layout_settings, a.steps, a.cfg, options=options)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"argv": sys.argv[1:] if argv is None else argv, "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
