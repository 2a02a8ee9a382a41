"""Single-line changes of the engine's formulas, and which fast test notices each (a developer's check, not a test).

Each mutant replaces one exact piece of one engine module (it must occur exactly once), runs the fast tests of that
module's own test file in a scratch copy of the repository, and reports whether a test failed ("caught") or not
("MISSED"). The working tree is never modified. Run from the repository root::

    .venv/bin/python tests/mutate.py            # every mutant (a few minutes on two cores)
    .venv/bin/python tests/mutate.py smooth     # only mutants whose name contains "smooth"

Exit status 1 when a mutant is missed. A new formula in the engine gets a mutant here and a test in its own module
whose expected value is derived independently (by hand or from the paper), so that the mutant is caught.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MAPS = ("tests/test_maps.py",)
LOSSES = ("tests/test_losses.py",)
SCHEDULE = ("tests/test_schedule.py",)
CONTROLLER = ("tests/test_controller.py",)
CAPTURE = ("tests/test_capture.py",)
LAYOUT = ("tests/test_layout.py",)
TOY_BENCH = ("tests/test_toy_bench.py::test_extra_objects_and_only_these_by_hand",)
TOY_TRAIN = ("tests/test_toy_model.py::test_text_encoder_learning_rate_scale_and_one_group_checkpoints",)

MUTANTS = [
    # maps.py: A&E's map extraction
    Mutant("smooth: replicate padding instead of reflect", "astar_ext/maps.py",
           'mode = "reflect" if h > pad and w > pad else "replicate"', 'mode = "replicate"', MAPS),
    Mutant("concept_maps: no smoothing", "astar_ext/maps.py",
           "return smooth(maps) if smoothing else maps", "return maps", MAPS),
    Mutant("gaussian kernel: /(2 sigma^2) instead of A&E's /(2 sigma)", "astar_ext/maps.py",
           "w = torch.exp(-(((x - mean) / (2 * sigma)) ** 2))", "w = torch.exp(-((x - mean) ** 2) / (2 * sigma ** 2))",
           MAPS),
    Mutant("renormalisation: temperature 10 instead of 100", "astar_ext/maps.py",
           "SOFTMAX_TEMPERATURE = 100.0", "SOFTMAX_TEMPERATURE = 10.0", MAPS),
    Mutant("renormalisation: SOT kept", "astar_ext/maps.py",
           "keep[i, slot, 1:max(1, last) + 1] = True", "keep[i, slot, 0:max(1, last) + 1] = True", MAPS),
    Mutant("layers: sum instead of mean", "astar_ext/maps.py",
           "return torch.stack([t.float() for t in tensors]).mean(0)",
           "return torch.stack([t.float() for t in tensors]).sum(0)", MAPS),
    Mutant("concept in two chunks: not averaged over chunks", "astar_ext/maps.py",
           "member[i, m, slot_of[chunk] * CHUNK_TOKENS + j] = 1.0 / len(chunks)",
           "member[i, m, slot_of[chunk] * CHUNK_TOKENS + j] = 1.0", MAPS),
    Mutant("a word of several tokens: mean of its tokens instead of their sum", "astar_ext/maps.py",
           "member[i, m, slot_of[chunk] * CHUNK_TOKENS + j] = 1.0 / len(chunks)",
           "member[i, m, slot_of[chunk] * CHUNK_TOKENS + j] = 1.0 / len(concept.columns)", MAPS),
    Mutant("EOT rule ignored (always A&E's SD 1.x rule)", "astar_ext/maps.py",
           "last = length if normalize_eot else CHUNK_TOKENS - 2", "last = CHUNK_TOKENS - 2", MAPS),
    Mutant("AND rows: sum instead of mean per image", "astar_ext/maps.py",
           "return summed / count.clamp_min(1)[..., None, None], count > 0", "return summed, count > 0", MAPS),
    Mutant("map size: floor instead of ceil", "astar_ext/maps.py",
           "return math.ceil(h / f), math.ceil(w / f)", "return h // f, w // f", MAPS),
    # losses.py: Eq. 2, Eq. 3, the masks
    Mutant("Eq. 2: denominator max instead of sum", "astar_ext/losses.py",
           "total = (a + b).sum((-2, -1))", "total = torch.maximum(a, b).sum((-2, -1))", LOSSES),
    Mutant("Eq. 2: mean over pairs instead of sum", "astar_ext/losses.py",
           "return terms.sum(1), terms\n\n\ndef retention_loss", "return terms.mean(1), terms\n\n\ndef retention_loss",
           LOSSES),
    Mutant("Eq. 3: no '1 -'", "astar_ext/losses.py",
           "terms = 1.0 - _soft_overlap(maps, masks)", "terms = _soft_overlap(maps, masks)", LOSSES),
    Mutant("Eq. 3: mean over concepts instead of sum", "astar_ext/losses.py",
           "terms = terms * mask_ok.to(terms.dtype)\n    return terms.sum(1), terms",
           "terms = terms * mask_ok.to(terms.dtype)\n    return terms.mean(1), terms", LOSSES),
    Mutant("mask: min of the min-max normalisation dropped", "astar_ext/losses.py",
           "norm = (flat - lo) / rng.clamp_min(EPS)", "norm = flat / rng.clamp_min(EPS)", LOSSES),
    Mutant("mask: strict threshold", "astar_ext/losses.py",
           "masks = (norm >= tau).float()", "masks = (norm > tau).float()", LOSSES),
    Mutant("Eq. 4: retention weight ignored", "astar_ext/losses.py",
           "total = seg_weight * seg + ret_weight * ret", "total = seg_weight * seg + ret", LOSSES),
    Mutant("Eq. 4: weights swapped", "astar_ext/losses.py",
           "total = seg_weight * seg + ret_weight * ret", "total = ret_weight * seg + seg_weight * ret", LOSSES),
    Mutant("IoU: over the intersection's complement", "astar_ext/losses.py",
           "return inter / union.clamp_min(1)", "return inter / (a.sum((-2, -1)) + b.sum((-2, -1))).clamp_min(1)",
           LOSSES),
    # schedule.py: window, A&E's ramp, the sigma-space factor
    Mutant("sigma factor: sqrt(1 + sigma^2)", "astar_ext/schedule.py",
           "return 1.0 + float(sigma) ** 2", "return (1.0 + float(sigma) ** 2) ** 0.5", SCHEDULE),
    Mutant("sigma factor: 1", "astar_ext/schedule.py", "return 1.0 + float(sigma) ** 2", "return 1.0", SCHEDULE),
    Mutant("step size: no square root of the ramp", "astar_ext/schedule.py",
           "return self.scale * math.sqrt(self.ramp(step))", "return self.scale * self.ramp(step)", SCHEDULE),
    Mutant("ramp: over steps instead of steps - 1", "astar_ext/schedule.py",
           "return a + (b - a) * step / (self.steps - 1)", "return a + (b - a) * step / self.steps", SCHEDULE),
    Mutant("window: floor instead of rounding", "astar_ext/schedule.py",
           "max(1, math.floor(self.window * self.steps + 0.5))", "max(1, math.floor(self.window * self.steps))",
           SCHEDULE),
    # controller.py: the update
    Mutant("controller: the sigma factor not applied", "astar_ext/controller.py",
           "delta = grad * (record.step_size * factor)", "delta = grad * record.step_size", CONTROLLER),
    Mutant("controller: sqrt of the sigma factor", "astar_ext/controller.py",
           "factor = sigma_space_factor(s) if self.sigma_space else 1.0",
           "factor = sigma_space_factor(s) ** 0.5 if self.sigma_space else 1.0", CONTROLLER),
    Mutant("controller: ascent instead of descent", "astar_ext/controller.py",
           "x.copy_((x.float() - delta).to(x.dtype))", "x.copy_((x.float() + delta).to(x.dtype))", CONTROLLER),
    Mutant("controller: retention masks from the threshold 0.5 whatever the setting", "astar_ext/controller.py",
           "masks, ok = retention_masks(maps, self.params.mask_threshold, self.options.mask_method)",
           "masks, ok = retention_masks(maps, 0.5, self.options.mask_method)", CONTROLLER),
    # regions.py, and layout mode in losses.py / controller.py
    Mutant("region coverage: not per cell (no * n)", "astar_ext/regions.py",
           "    return inside * n\n", "    return inside\n", LAYOUT),
    Mutant("region: x and y swapped", "astar_ext/regions.py",
           "return np.outer(coverage_1d(y0, y1, h), coverage_1d(x0, x1, w))",
           "return np.outer(coverage_1d(x0, x1, h), coverage_1d(y0, y1, w))", LAYOUT),
    Mutant("region threshold: more than half instead of at least half", "astar_ext/regions.py",
           "inside = coverage >= threshold - _TOL", "inside = coverage > threshold + _TOL", LAYOUT),
    Mutant("region: a box under half a cell is lost", "astar_ext/regions.py",
           "        inside = coverage >= top - _TOL\n", "        pass\n", LAYOUT),
    Mutant("mask resize: nearest instead of area average", "astar_ext/regions.py",
           "out[:, j] = coverage_1d(j / src, (j + 1) / src, dst)",
           "out[min(dst - 1, int((j + 0.5) * dst / src)), j] = 1.0", LAYOUT),
    Mutant("fit: over the region's area instead of the map's mass", "astar_ext/regions.py",
           "total = maps.sum((-2, -1))", "total = masks.expand_as(maps).sum((-2, -1))", LAYOUT),
    Mutant("layout: the region's concept gets no retention at the first step", "astar_ext/regions.py",
           "return out, prev_ok.to(pick.device) | pick[None]", "return out, prev_ok.to(pick.device)", LAYOUT),
    Mutant("layout weight ignored in the loss", "astar_ext/losses.py",
           "total = seg_weight * seg + (retention * ret_weights.to(retention)[None]).sum(1)",
           "total = seg_weight * seg + ret_weight * ret", LAYOUT),
    Mutant("controller: the retention weight for the regions' concepts", "astar_ext/controller.py",
           'float(getattr(p, "layout_weight", p.ret_weight))', "float(p.ret_weight)", LAYOUT),
    Mutant("share: Eq. 3's denominator (the region's area added)", "astar_ext/losses.py",
           "terms = 1.0 - inside / total.clamp_min(EPS)",
           "terms = 1.0 - inside / (total + regions.sum((-2, -1))).clamp_min(EPS)", LAYOUT),
    Mutant("share: the region's concepts keep Eq. 3", "astar_ext/losses.py",
           "retention = torch.where(share.to(retention.device)[None], shared, retention)", "pass", LAYOUT),
    Mutant("controller: the layout loss setting ignored", "astar_ext/controller.py",
           'share = has if self.options.layout_loss == "share" else None', "share = None", LAYOUT),
    Mutant("controller: regions not used", "astar_ext/controller.py",
           "prev_masks, prev_ok = with_regions(prev_masks, prev_ok, regions, has, maps.shape)", "pass", LAYOUT),
    # capture.py: the recomputed probabilities
    Mutant("capture: no attention scale", "astar_ext/capture.py",
           "probs = (q @ k.transpose(-1, -2) * scale).softmax(-1).mean(1)  # [B, N, T]",
           "probs = (q @ k.transpose(-1, -2)).softmax(-1).mean(1)  # [B, N, T]", CAPTURE),
    Mutant("capture: first head instead of the head mean", "astar_ext/capture.py",
           "probs = (q @ k.transpose(-1, -2) * scale).softmax(-1).mean(1)  # [B, N, T]",
           "probs = (q @ k.transpose(-1, -2) * scale).softmax(-1)[:, 0]  # [B, N, T]", CAPTURE),
    Mutant("toy benchmark: only other colours count as extra (duplicates missed)", "astar_ext/toy/bench.py",
           "return len(dets) - sum(any(d.colour == c for d in dets) for c in colours)",
           "return sum(d.colour not in colours for d in dets)", TOY_BENCH),
    Mutant("toy training: the text encoder's learning-rate scale ignored", "astar_ext/toy/train.py",
           'group["lr"] = lr_at(cfg, step) * group["lr_scale"]', 'group["lr"] = lr_at(cfg, step)', TOY_TRAIN),
]


def run(mutant: Mutant, scratch: pathlib.Path) -> tuple[bool, str]:
    """Apply ``mutant`` in ``scratch`` (a copy of the repository), run its tests, restore; ``(caught, last line)``."""
    target = scratch / mutant.path
    original = target.read_text()
    count = original.count(mutant.old)
    if count != 1:
        raise SystemExit(f"{mutant.name}: the text to change occurs {count} times in {mutant.path}")
    target.write_text(original.replace(mutant.old, mutant.new))
    try:
        res = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                              *mutant.tests], cwd=scratch, capture_output=True, text=True, timeout=1800)
    finally:
        target.write_text(original)
    last = (res.stdout.strip().splitlines() or [""])[-1]
    return res.returncode != 0, last


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or any(a in m.name for a in argv)]
    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        scratch = pathlib.Path(tmp) / "repo"
        shutil.copytree(ROOT, scratch, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "runs", "*.pt"))
        toy = ROOT / "astar_ext" / "toy"
        for pt in toy.glob("*.pt"):
            shutil.copy2(pt, scratch / "astar_ext" / "toy" / pt.name)
        base = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                               *sorted({t for m in chosen for t in m.tests})], cwd=scratch, capture_output=True,
                              text=True, timeout=1800)
        if base.returncode != 0:
            print(base.stdout[-3000:])
            raise SystemExit("the unmutated tests fail: fix them first")
        for m in chosen:
            caught, last = run(m, scratch)
            missed += not caught
            print(f"{'caught' if caught else 'MISSED'}  {m.name}  [{' '.join(m.tests)}: {last}]", flush=True)
    print(f"{len(chosen) - missed} of {len(chosen)} mutants caught by their own module's tests")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
