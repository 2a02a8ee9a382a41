"""Neglect benchmark on the shipped toy model: how often every object of the prompt is in the image.

    python -m astar_ext.toy.bench             # plain vs A-STAR and the loss ablation (report seeds)
    python -m astar_ext.toy.bench --quick     # a few prompts (what CI runs)
    python -m astar_ext.toy.bench --sweep     # step scale, window, mask threshold, loss weights (tuning seeds)
    python -m astar_ext.toy.bench --compare "" "ret_weight=2"   # chosen settings (report seeds)
    python -m astar_ext.toy.bench --layout    # the layout benchmark (astar_ext/toy/layout.py)

**Seeds.** Settings are chosen on the *tuning* seeds (0, 1, 2, ...: the sweep's default) and results are
reported on the *report* seeds (1000, 1001, ...: the default of the ablation and of ``--compare``); the two
sets never meet (``--seed-set``, or ``--first-seed`` to name another start).

A fixed set of two- and three-object prompts (distinct colours and shapes, e.g. "a red circle and a
blue square") is generated at fixed seeds, plain and with A-STAR (concepts: the objects, e.g.
``"red circle, blue square"``), at the same seeds. The learning-free detector of
:mod:`astar_ext.toy.detect` decides which objects are in each image. Reported per setting:

* **all present**: share of images in which every object of the prompt is drawn (a blob of its colour
  of at least half the smallest object's area, any shape): the measure of neglect;
* **only these**: share of images in which every object is drawn *and nothing else*: no second blob of a
  prompt's colour and no blob of another colour (:func:`extra_objects`). "All present" alone counts an image
  whose objects were drawn twice, or among debris, as a success; this column does not;
* **by position**: share of the first, second (third) objects of the prompts that are drawn;
* **all correct** / **correct**: share of images in which every object is drawn with its shape, and of
  objects drawn with their shape (the toy model draws rough shapes, so this is much lower);
* **fixed / broken**: images in which an object was missing plain and none is with the setting, and the
  reverse (paired by seed), with the two-sided sign test's p-value (:func:`sign_test`);
* **overlap**: the paper's segregation measure (Eq. 2, summed over pairs) of the concepts' attention
  maps, measured without gradient on the latent the sampler steps from, at the middle step (``mid``)
  and averaged over the first half of the steps (``mean``); **mask IoU**: step-to-step IoU of each
  concept's binary mask over the first half (the retention that Eq. 3 asks for);
* **s/img**: sampling time per image.

Rates carry 95 % Wilson score intervals (:func:`wilson`). A one-object prompt set (all 36 colour-shape pairs,
plain sampling only) measures how well the model draws what it is told: the share of objects drawn with the
right colour and shape.

The sweep varies one setting at a time around the base settings (the engine's defaults, or ``--set``);
chosen settings are then checked against plain on other seeds with ``--compare ... --first-seed 100``.
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
from . import data as D
from . import detect as T
from .model import ToyLDM, load_model
from .sample import DEFAULT_CFG, DEFAULT_STEPS, generate

TUNING_FIRST_SEED = 0  # settings are chosen on seeds 0, 1, ... (the sweep)
REPORT_FIRST_SEED = 1000  # results are reported on seeds 1000, 1001, ... (never used to choose settings)
Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval ``(low, high)`` of a rate of ``k`` successes in ``n`` trials (95 % by default):
    ``(p + z^2/2n -+ z sqrt(p (1 - p) / n + z^2 / 4n^2)) / (1 + z^2 / n)`` with ``p = k / n``."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    return max(0.0, (centre - half) / den), min(1.0, (centre + half) / den)


def sign_test(fixed: int, broken: int) -> float:
    """Two-sided exact sign test of paired changes: ``P(X <= min(fixed, broken)) * 2`` (at most 1) for
    ``X ~ Binomial(fixed + broken, 1/2)``; 1.0 when nothing changed."""
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(fixed, broken) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def benchmark_prompts(n_objects: int, count: int, seed: int = 2023) -> list[tuple[tuple[str, str], ...]]:
    """``count`` fixed prompts of ``n_objects`` objects ``(colour, shape)``, distinct colours and shapes.

    Colour sets cycle through every combination before repeating; shapes are drawn at random (fixed
    ``seed``), so every colour and shape occurs about equally often. One object: every colour-shape pair
    once (colours in turn), then again.
    """
    import itertools

    if n_objects == 1:
        pairs = [((c, s),) for i in range(len(D.SHAPES)) for j, c in enumerate(D.COLOURS)
                 for s in [D.SHAPES[(i + j) % len(D.SHAPES)]]]
        return [pairs[i % len(pairs)] for i in range(count)]
    rng = np.random.default_rng([seed, n_objects])
    combos = list(itertools.combinations(D.COLOURS, n_objects))
    out: list[tuple[tuple[str, str], ...]] = []
    while len(out) < count:
        order = rng.permutation(len(combos))
        for i in order:
            colours = list(combos[i])
            rng.shuffle(colours)
            shapes = rng.choice(D.SHAPES, size=n_objects, replace=False)
            out.append(tuple((str(c), str(s)) for c, s in zip(colours, shapes)))
            if len(out) == count:
                break
    return out


def prompt_text(objects: Sequence[tuple[str, str]], index: int = 0) -> str:
    """The caption of a benchmark prompt; every third two-object prompt uses "with" instead of "and"."""
    joiner = "with" if len(objects) == 2 and index % 3 == 2 else "and"
    return D.caption_for([f"{c} {s}" for c, s in objects], joiner)


@dataclasses.dataclass
class Scores:
    """Per-image results of one setting on one prompt set (rows = prompt x seed)."""

    present: np.ndarray  # [N, K] bool: object k drawn (its colour, any shape)
    correct: np.ndarray  # [N, K] bool: object k drawn with its shape
    overlap_mid: np.ndarray  # [N]
    overlap_mean: np.ndarray  # [N]
    mask_iou: np.ndarray  # [N]
    seconds: float
    prompt: np.ndarray  # [N] index of each image's prompt
    extra: np.ndarray  # [N] int: objects beyond the prompt's (:func:`extra_objects`)

    @property
    def all_present(self) -> np.ndarray:
        return self.present.all(1)

    @property
    def only_these(self) -> np.ndarray:
        """``[N]`` bool: every object drawn and nothing else."""
        return self.all_present & (self.extra == 0)

    def summary(self, plain: Scores | None = None) -> dict[str, Any]:
        n = len(self.present)
        out = {
            "images": n,
            "all_present": float(self.all_present.mean()),
            "all_present_ci": wilson(int(self.all_present.sum()), n),
            "only_these": float(self.only_these.mean()),
            "only_these_ci": wilson(int(self.only_these.sum()), n),
            "correct_ci": wilson(int(self.correct.sum()), self.correct.size),
            "object": float(self.present.mean()),
            "by_position": [float(v) for v in self.present.mean(0)],
            "all_correct": float(self.correct.all(1).mean()),
            "correct": float(self.correct.mean()),
            "overlap_mid": float(self.overlap_mid.mean()),
            "overlap_mean": float(self.overlap_mean.mean()),
            "mask_iou": float(self.mask_iou.mean()),
            "s_per_image": self.seconds / max(n, 1),
        }
        out["by_prompt"] = [float(self.all_present[self.prompt == i].mean()) for i in np.unique(self.prompt)]
        if plain is not None:
            out["fixed"] = int((~plain.all_present & self.all_present).sum())
            out["broken"] = int((plain.all_present & ~self.all_present).sum())
            out["p_sign"] = sign_test(out["fixed"], out["broken"])
            out["only_fixed"] = int((~plain.only_these & self.only_these).sum())
            out["only_broken"] = int((plain.only_these & ~self.only_these).sum())
        return out


def evaluate(model: ToyLDM, prompts: Sequence[tuple[tuple[str, str], ...]], seeds: Sequence[int],
             params: Any | None, steps: int = DEFAULT_STEPS, cfg_scale: float = DEFAULT_CFG,
             batch: int = 64, layers: str = "all") -> Scores:
    """Generate every prompt at every seed (plain when ``params`` is None) and detect the objects (on the scene
    grid of the final latents, :meth:`~astar_ext.toy.model.ToyLDM.to_grid`). ``layers``: the maps' layers."""
    rows = [(i, objs, s) for i, objs in enumerate(prompts) for s in seeds]
    present, correct, extra, o_mid, o_mean, iou = [], [], [], [], [], []
    t0 = time.perf_counter()
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        texts = [prompt_text(objs, i) for i, objs, _ in part]
        concepts = [", ".join(f"{c} {s}" for c, s in objs) for _, objs, _ in part]
        run = generate(model, texts, [s for _, _, s in part], concepts, params, steps=steps, cfg_scale=cfg_scale,
                       decode=False, layers=layers)
        for r, (_, objs, _) in enumerate(part):
            dets = T.detect(T.to_numpy_image(run.images[r]))
            present.append([T.drawn(dets, c) for c, _ in objs])
            correct.append([T.correct(dets, c, s) for c, s in objs])
            extra.append(extra_objects(dets, [c for c, _ in objs]))
        o_mid.append(run.overlap[-1].numpy())
        o_mean.append(run.overlap.mean(0).numpy())
        iou.append(run.mask_iou.mean(0).numpy())
    return Scores(np.array(present), np.array(correct), np.concatenate(o_mid), np.concatenate(o_mean),
                  np.concatenate(iou), time.perf_counter() - t0, np.array([i for i, _, _ in rows]), np.array(extra))


def extra_objects(dets: Sequence[Any], colours: Sequence[str]) -> int:
    """How many detected objects are not the prompt's: every detection beyond one per prompt colour that is
    drawn (a second blob of a prompt's colour, or a blob of a colour the prompt does not name). ``dets``: the
    detector's objects (anything with ``.colour``); ``colours``: the prompt's objects' colours (distinct)."""
    return len(dets) - sum(any(d.colour == c for d in dets) for c in colours)


def ground_truth(model: ToyLDM, count: int, n: int, seed: int = 7) -> tuple[int, int, int]:
    """The detector on ``n`` random training-style scenes of ``count`` objects, seen as the benchmark sees a sample:
    rendered at 256 px, encoded by the model's VAE, read on the latent's scene grid (:meth:`ToyLDM.to_grid`).
    Returns ``(objects, drawn in their colour, drawn with colour and shape)``: the ceiling of the metrics."""
    rng = np.random.default_rng(seed)
    scenes = [D.random_scene(rng, D.DataMix(), count=count) for _ in range(n)]
    objects = drawn = right = 0
    scale = model.config.image_size // D.IMAGE_SIZE
    for start in range(0, n, 16):
        part = scenes[start:start + 16]
        images = torch.from_numpy(np.stack([D.render_scene(s, scale) for s in part]).transpose(0, 3, 1, 2) * 2 - 1)
        with torch.no_grad():
            grid = (model.to_grid(model.to_latent(images)) + 1) / 2
        for scene, image in zip(part, grid):
            dets = T.detect(T.to_numpy_image(image))
            objects += len(scene.objects)
            drawn += sum(T.drawn(dets, o.colour) for o in scene.objects)
            right += sum(T.correct(dets, o.colour, o.shape) for o in scene.objects)
    return objects, drawn, right


ABLATION = (
    ("plain", None),
    ("A-STAR (seg + ret)", {}),
    ("seg only (ret_weight 0)", {"ret_weight": 0.0}),
    ("ret only (seg_weight 0)", {"seg_weight": 0.0}),
)


def settings(overrides: dict[str, Any] | None, base: Any = P.DEFAULTS) -> Any | None:
    return None if overrides is None else P.replace(base, **overrides)


def table(rows: Sequence[tuple[str, dict[str, Any]]], k: int) -> str:
    """A Markdown table of summaries."""
    pos = " / ".join(f"#{i + 1}" for i in range(k))
    head = (f"| setting | all present [95% CI] | object | by position ({pos}) | fixed / broken (p) "
            "| only these [95% CI] (fixed / broken) | all correct | correct [95% CI] | overlap mid | overlap mean "
            "| mask IoU | s/img |")
    lines = [head, "|" + " --- |" * 12]
    for name, s in rows:
        fb = f"{s['fixed']} / {s['broken']} ({s['p_sign']:.2g})" if "fixed" in s else "-"
        only = f"{s['only_these']:.1%} {_ci(s['only_these_ci'])}"
        if "only_fixed" in s:
            only += f" ({s['only_fixed']} / {s['only_broken']})"
        by = " / ".join(f"{v:.0%}" for v in s["by_position"])
        lines.append(f"| {name} | {s['all_present']:.1%} {_ci(s['all_present_ci'])} | {s['object']:.1%} | {by} | {fb} "
                     f"| {only} "
                     f"| {s['all_correct']:.1%} | {s['correct']:.1%} {_ci(s['correct_ci'])} | {s['overlap_mid']:.3f} "
                     f"| {s['overlap_mean']:.3f} | {s['mask_iou']:.3f} | {s['s_per_image']:.2f} |")
    return "\n".join(lines)


def _ci(interval: Sequence[float]) -> str:
    return f"[{interval[0]:.0%}, {interval[1]:.0%}]"


def compare(model: ToyLDM, prompts, seeds, configs, base: Any, steps: int, cfg_scale: float,
            progress=None) -> list[tuple[str, dict[str, Any]]]:
    """``(name, summary)`` per ``(name, overrides)`` of ``configs``, all on the same prompts and seeds; the
    ``None`` overrides (plain sampling) must come first: the others' fixed/broken counts are against it."""
    rows, plain = [], None
    for name, overrides in configs:
        scores = evaluate(model, prompts, seeds, settings(overrides, base), steps, cfg_scale)
        plain = scores if overrides is None else plain
        rows.append((name, scores.summary(None if overrides is None else plain)))
        if progress is not None:
            progress(name, rows[-1][1])
    return rows


def run_ablation(model: ToyLDM, prompts2, prompts3, seeds, base: Any, steps: int, cfg_scale: float,
                 log=print, prompts1=()) -> dict[str, Any]:
    """Plain (only plain, for one object) and :data:`ABLATION` on each prompt set."""
    results: dict[str, Any] = {}
    for label, prompts in (("one object", prompts1), ("two objects", prompts2), ("three objects", prompts3)):
        if not prompts:
            continue
        configs = ABLATION[:1] if label == "one object" else ABLATION
        rows = compare(model, prompts, seeds, configs, base, steps, cfg_scale)
        n = len(prompts) * len(seeds)
        log(f"\n### {label}: {len(prompts)} prompts x {len(seeds)} seeds = {n} images\n")
        log(table(rows, len(prompts[0])))
        results[label] = dict(rows)
    return results


SWEEP: tuple[dict[str, Any], ...] = (
    {"scale": 5.0}, {"scale": 10.0}, {"scale": 40.0}, {"scale": 80.0}, {"scale": 100.0},
    {"window": 0.25}, {"window": 0.75}, {"window": 1.0},
    {"mask_threshold": 0.3}, {"mask_threshold": 0.7},
    {"seg_weight": 2.0}, {"ret_weight": 2.0}, {"seg_weight": 0.5}, {"ret_weight": 0.5},
    {"iterations": 2},
)


def run_sweep(model: ToyLDM, prompt_sets: dict[str, Sequence], seeds, base: Any, steps: int, cfg_scale: float,
              log=print) -> dict[str, Any]:
    """Plain, ``base``, then one setting of :data:`SWEEP` changed at a time from ``base``, on each prompt set."""
    configs = [("plain", None), ("base", {})] + [(", ".join(f"{k} {v:g}" for k, v in o.items()), o) for o in SWEEP]
    for _, overrides in configs:
        settings(overrides, base)  # fail before the first run, not in the middle
    results: dict[str, Any] = {}
    for label, prompts in prompt_sets.items():
        if not prompts:
            continue
        def progress(name: str, summary: dict[str, Any], label: str = label) -> None:
            log(f"{label}, {name}: all present {summary['all_present']:.1%}", flush=True)

        rows = compare(model, prompts, seeds, configs, base, steps, cfg_scale, progress=progress)
        n = len(prompts) * len(seeds)
        log(f"\n### sweep, {label}: {len(prompts)} prompts x {len(seeds)} seeds = {n} images "
            "(one setting changed at a time from the base)\n")
        log(table(rows, len(prompts[0])))
        results[label] = dict(rows)
    return results


def run_compare(model: ToyLDM, prompt_sets: dict[str, Sequence], seeds, candidates: Sequence[str], steps: int,
                cfg_scale: float, log=print) -> dict[str, Any]:
    """Plain and each candidate setting (``"ret_weight=2,window=0.75"``; ``""``: the defaults; ``layers=up`` picks
    the maps' layers as the WebUI's ``astar_layers`` setting does) on each prompt set."""
    configs = [("plain", None)] + [(c or "defaults", parse_overrides(c)) for c in candidates]
    layer_choice = {name: (o or {}).pop("layers", "all") for name, o in configs}
    for _, overrides in configs:
        settings(overrides)
    results: dict[str, Any] = {}
    for label, prompts in prompt_sets.items():
        if not prompts:
            continue
        rows, plain = [], None
        for name, overrides in configs:
            scores = evaluate(model, prompts, seeds, settings(overrides), steps, cfg_scale, layers=layer_choice[name])
            plain = scores if overrides is None else plain
            rows.append((name, scores.summary(None if overrides is None else plain)))
        log(f"\n### {label}: {len(prompts)} prompts x {len(seeds)} seeds = {len(prompts) * len(seeds)} images\n")
        log(table(rows, len(prompts[0])))
        results[label] = dict(rows)
    return results


def parse_overrides(text: str) -> dict[str, Any]:
    """``"scale=40,window=0.75"`` -> ``{"scale": "40", "window": "0.75"}`` (validated by ``params.replace``)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--layout" in argv:  # the layout benchmark (astar_ext/toy/layout.py) takes the other options
        from .layout import main as layout_main

        return layout_main([a for a in argv if a != "--layout"])
    ap = argparse.ArgumentParser(description="Neglect benchmark of A-STAR on the shipped toy model.")
    ap.add_argument("--layout", action="store_true", help="run the layout benchmark instead (python -m "
                                                          "astar_ext.toy.layout, whose options follow)")
    ap.add_argument("--ground-truth", type=int, default=0, metavar="N",
                    help="only check the detector on N training-style scenes of one and of two objects, encoded by "
                         "the VAE and read as a sample is")
    ap.add_argument("--quick", action="store_true", help="4 two-object prompts x 2 seeds, no three-object prompts")
    ap.add_argument("--sweep", action="store_true", help="sweep the settings (one at a time from --set) instead of "
                                                         "the ablation")
    ap.add_argument("--prompts2", type=int, default=24, help="number of two-object prompts")
    ap.add_argument("--prompts3", type=int, default=12, help="number of three-object prompts")
    ap.add_argument("--prompts1", type=int, default=36, help="number of one-object prompts (plain only; 0: none)")
    ap.add_argument("--seeds", type=int, default=4, help="seeds per prompt")
    ap.add_argument("--seed-set", choices=("tuning", "report"), default=None,
                    help=f"tuning: seeds from {TUNING_FIRST_SEED} (the sweep's default); report: from "
                         f"{REPORT_FIRST_SEED} (the default otherwise)")
    ap.add_argument("--first-seed", type=int, default=None, help="start the seeds here instead")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--cfg", type=float, default=DEFAULT_CFG)
    ap.add_argument("--compare", nargs="*", default=None, metavar="SETTINGS",
                    help="compare plain with these settings ('' = the defaults), e.g. '' 'ret_weight=2'")
    ap.add_argument("--set", default="", help="A-STAR settings for the ablation, e.g. 'scale=40,window=0.75'")
    ap.add_argument("--weights", default=None, help="toy model weights (default: the shipped ones)")
    ap.add_argument("--level", type=int, default=None,
                    help="level of the maps (latent / 2**level): 2 = image/32, 8x8, what the WebUI uses (the "
                         "default); 1 = image/16, 16x16, where the paper's SD 1.x maps are at 512 px")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the model is small: 1 is fastest "
                                                           "on a busy machine)")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.quick:
        a.prompts1, a.prompts2, a.prompts3, a.seeds = 0, 4, 0, 2
    model = load_model(a.weights)
    if a.ground_truth:
        out = {}
        for count in (1, 2):
            objects, drawn, right = ground_truth(model, count, a.ground_truth)
            print(f"{a.ground_truth} scenes of {count} object(s): {objects} objects, drawn {drawn} "
                  f"({drawn / objects:.1%}), right colour and shape {right} ({right / objects:.1%})")
            out[count] = {"objects": objects, "drawn": drawn, "right": right}
        return out
    if a.level is not None:
        model.config = dataclasses.replace(model.config, capture_level=a.level)
    seed_set = a.seed_set or ("tuning" if a.sweep else "report")
    first = a.first_seed if a.first_seed is not None else (
        TUNING_FIRST_SEED if seed_set == "tuning" else REPORT_FIRST_SEED)
    seeds = list(range(first, first + a.seeds))
    prompts1 = benchmark_prompts(1, a.prompts1) if a.prompts1 and a.compare is None and not a.sweep else []
    prompts2 = benchmark_prompts(2, a.prompts2)
    prompts3 = benchmark_prompts(3, a.prompts3) if a.prompts3 else []
    base = P.replace(P.DEFAULTS, **parse_overrides(a.set))
    print(f"toy model {a.weights or 'shipped'}; maps at level {model.config.capture_level}; Euler {a.steps} steps, "
          f"CFG {a.cfg}; seeds {seeds[0]}..{seeds[-1]}; "
          f"A-STAR settings: {P.to_dict(base)}", flush=True)
    if a.compare is not None:
        results = run_compare(model, {"two objects": prompts2, "three objects": prompts3}, seeds, a.compare, a.steps,
                              a.cfg)
    elif a.sweep:
        results = run_sweep(model, {"two objects": prompts2, "three objects": prompts3}, seeds, base, a.steps, a.cfg)
    else:
        results = run_ablation(model, prompts2, prompts3, seeds, base, a.steps, a.cfg, prompts1=prompts1)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"argv": argv, "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
