"""Benchmark: the same generation with and without A-STAR, through the WebUI's sampling path.

Run ``python -m astar_ext.bench`` (the tiny model on the CPU, about a minute on two cores) or, on a
GPU, ``python -m astar_ext.bench --config sd15`` / ``--config sdxl`` (full-size UNets with random
weights, fp16 autocast as in the WebUI). ``--help`` lists every option.

Every generation runs a real k-diffusion sampler function (DPM++ 2M with Karras sigmas, the WebUI's
default, unless ``--sampler``) on the CFG denoiser of :mod:`astar_ext.bench.host` (the main path of
WebUI 1.10.1's ``CFGDenoiser.forward``); the A-STAR generations attach the real
:class:`~astar_ext.passrun.PassRun` to the sampler object, so its ``functools.wraps`` wrapper and
its forward pre-hook on the denoiser are what is measured. The plain generation and the variants
alternate in one process (the order rotates at every repetition) after a warm-up; the report gives
medians and their ratios to the plain generation of the same batch size.

* Time: wall time of the sampler call (CUDA: synchronised before and after). A-STAR's share is split
  into the loss-pass forward (until the early exit), the maps and losses, the backward pass, and the
  rest of A-STAR (latent copy, update, the no-gradient measure after the window); everything else is
  the sampling itself (``EngineOptions.sync_timing`` makes the split exact on a GPU).
* Peak memory, including the model's weights: CUDA: ``torch.cuda.max_memory_allocated()`` over the
  sampler call. CPU (no allocator statistics there): the weights and conditioning plus the highest
  running total of the tensor allocations and frees that the PyTorch profiler records during one
  extra, untimed generation of each variant.
* Passes: loss-pass forwards and backward passes (gradient passes) of the A-STAR generation.
* Overlap: the mean Eq. 2 pair term of the concepts' maps at the first step after the window (what
  the infotext reports as the "after" overlap); for the plain generation it is measured on an
  extra, untimed run whose A-STAR step size is 0 (the same latents as plain sampling).
* ``max|dx|``: the largest difference of the final latent from the A-STAR generation as configured
  (the same batch), i.e. how much a setting changes the result.

The variants table toggles each optimisation (and a few settings) from the configuration given on
the command line; it is printed with ``--ablate``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from .. import params as P
from ..capture import LAYER_CHOICES, MAP_LEVELS, level_name, select_layers
from ..controller import EngineOptions, mean_overlap
from ..passconcepts import PassConcepts
from ..passrun import PassRun
from ..samplers import plan_for
from ..tokens import parse_concepts
from .host import CFGDenoiser, ClipTokens, Conditioning, PlainPrompts, Sampler, use_sdp_attention
from .models import SPECS, build_model, conditioning, parameter_bytes

MODEL_SEED = 0  # the weights and the full-size UNets' random conditioning; --seed sets the noise
NOISE_DX = 1e-2  # a max|dx| below this is float rounding (e.g. batch-1 vs batch-2 kernels), not a change
MEMORY_STEPS = 2  # the length of the profiled generations that give the CPU peak memory

SAMPLERS = {
    "dpmpp_2m": ("sample_dpmpp_2m", "karras"),
    "euler_a": ("sample_euler_ancestral", "normal"),
    "euler": ("sample_euler", "normal"),
    "dpmpp_2m_sde": ("sample_dpmpp_2m_sde", "exponential"),
    "heun": ("sample_heun", "normal"),
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One generation setting: plain sampling, or A-STAR with these params and engine options."""

    key: str
    label: str
    astar: bool
    params: Any = P.DEFAULTS
    options: EngineOptions = EngineOptions()
    batch: int = 1
    changes: str = ""
    level: int = 2  # the maps' level (2 = image/32, 1 = image/16: the WebUI setting astar_map_level)


@dataclasses.dataclass
class RunResult:
    seconds: float
    peak_bytes: int | None
    latent: torch.Tensor
    cpu_seconds: float = 0.0
    passes: int = 0
    gradients: int = 0
    updates: int = 0
    forward: float = 0.0
    loss: float = 0.0
    backward: float = 0.0
    astar: float = 0.0
    overlap_before: float | None = None
    overlap_after: float | None = None
    below_steps: int = 0
    step_overlaps: list[float | None] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class VariantResult:
    variant: Variant
    runs: list[RunResult] = dataclasses.field(default_factory=list)
    peak_bytes: int | None = None
    overlap_after: float | None = None
    max_dx: float | None = None

    def median(self, field: str) -> float:
        return statistics.median(getattr(r, field) for r in self.runs)

    @property
    def first(self) -> RunResult:
        """The first timed run (every run of a variant is the same generation: latent, passes, overlap)."""
        return self.runs[0]


class Setup:
    """The model, tokenizer, conditioning per batch size, sigmas and noise of one benchmark."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.dtype = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
        self.spec = SPECS[args.config]
        self.width, self.height = args.width, args.height
        self.tokens = ClipTokens()
        self.model = build_model(args.config, self.device, self.dtype, seed=MODEL_SEED)
        if args.attention == "sdp":
            use_sdp_attention(self.model.diffusion_model)
        import k_diffusion as K

        self.K = K
        self.inner = K.external.CompVisDenoiser(self.model)
        self.func_name, self.scheduler = SAMPLERS[args.sampler]
        self.func = getattr(K.sampling, self.func_name)
        self.sigmas = self._sigmas(args.steps)
        self.items = parse_concepts(args.concepts)
        self._conds: dict[int, tuple[Conditioning, Conditioning]] = {}
        self.weight_bytes = parameter_bytes(self.model)

    def _sigmas(self, steps: int) -> torch.Tensor:
        K = self.K
        lo, hi = float(self.inner.sigma_min), float(self.inner.sigma_max)
        if self.scheduler == "karras":
            s = K.sampling.get_sigmas_karras(steps, lo, hi)
        elif self.scheduler == "exponential":
            s = K.sampling.get_sigmas_exponential(steps, lo, hi)
        else:
            s = self.inner.get_sigmas(steps).cpu()
        return s.to(self.device)

    def conds(self, batch: int) -> tuple[Conditioning, Conditioning]:
        if batch not in self._conds:
            prompts = [self.args.prompt] * batch
            cond, uncond = conditioning(self.args.config, self.model, prompts, self.tokens.ids, self.device,
                                        seed=MODEL_SEED)
            self._conds[batch] = (Conditioning(cond), Conditioning(uncond))
        return self._conds[batch]

    def noise(self, batch: int, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(batch, 4, self.height // 8, self.width // 8, generator=gen).to(self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def generate(self, variant: Variant, profile_memory: bool = False, steps: int | None = None,
                 seed: int | None = None) -> RunResult:
        """One generation of ``variant``; with ``profile_memory`` (CPU) under the profiler, for the peak.

        ``steps``: stop after this many steps (the first ``steps`` noise levels of the schedule; the
        window is then a fraction of those steps). Every optimised step allocates the same, so the
        peak of a two-step generation is the peak of the whole one; the profiler multiplies the run
        time, the CPU peak is taken from such a short generation. ``seed``: of the noise (default ``--seed``).
        """
        seed = self.args.seed if seed is None else seed
        cond, uncond = self.conds(variant.batch)
        noise = self.noise(variant.batch, seed)
        sigmas = self.sigmas if steps is None else self.sigmas[:steps + 1]
        n_steps = len(sigmas) - 1
        denoiser = CFGDenoiser(self.inner, PlainPrompts)
        sampler = Sampler(self.func, denoiser)
        run = None
        if variant.astar:
            plan = plan_for(sampler.func)
            concepts = PassConcepts(self.items, [self.args.prompt] * variant.batch, PlainPrompts, n_steps,
                                    self.tokens.tokenizer(), normalize_eot=variant.options.normalize_eot)
            options = dataclasses.replace(variant.options, sync_timing=self.cuda)
            layers = None if self.args.layers == "all" else select_layers(self.model.diffusion_model,
                                                                           variant.level, self.args.layers)
            run = PassRun(params=variant.params, plan=plan, concepts=concepts, unet=self.model.diffusion_model,
                          layers=layers,
                          reconstruct=PlainPrompts.reconstruct_multicond_batch, current_model=lambda: self.model,
                          should_stop=lambda: False, options=options, level=variant.level, report=_report)
            run.attach(sampler)
        image_cond = noise.new_zeros(noise.shape[0], 5, 1, 1)
        torch.manual_seed(seed + 1)  # ancestral samplers draw their noise from the global RNG
        peak = None
        try:
            with self.autocast():
                self.sync()
                if self.cuda:
                    torch.cuda.reset_peak_memory_stats(self.device)
                with _cpu_memory_profile(profile_memory) as mem:
                    c0, t0 = time.process_time(), time.perf_counter()
                    latent = sampler.sample(noise, sigmas, cond, uncond, self.args.cfg_scale, image_cond)
                    self.sync()
                    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
                if self.cuda:
                    peak = torch.cuda.max_memory_allocated(self.device)
                elif profile_memory:
                    peak = self.weight_bytes + _tensor_bytes(cond.rows, uncond.rows, noise) + mem.peak
        finally:
            if run is not None:
                run.detach()
        result = RunResult(seconds, peak, latent.float().cpu(), cpu_seconds)
        if run is not None:
            if run.error:
                raise RuntimeError(f"A-STAR failed in the benchmark: {run.error}")
            records = run.controller.records
            result.passes = sum(r.passes for r in records)
            result.gradients = sum(r.gradients for r in records)
            result.updates = sum(r.updates for r in records)
            result.forward = sum(r.forward_seconds for r in records)
            result.loss = sum(r.loss_seconds for r in records)
            result.backward = sum(r.backward_seconds for r in records)
            result.astar = run.seconds
            result.below_steps = sum(1 for r in records if r.below and all(r.below))
            result.step_overlaps = [mean_overlap(r.overlap, r.pair_valid) for r in records]
            result.overlap_before, result.overlap_after = run.overlap_before_after()
        return result

    def plain_overlap(self, batch: int, seed: int | None = None, level: int | None = None) -> float | None:
        """The overlap at the end of the window on the plain trajectory (A-STAR with step size 0), on the maps at
        ``level`` (default ``--level``)."""
        probe = Variant("probe", "probe", True, P.replace(self.args.astar_params, scale=0.0),
                        self.args.engine_options, batch, level=self.args.level if level is None else level)
        return self.generate(probe, seed=seed).overlap_after


def _report(message: str) -> None:
    print(message, file=sys.stderr)


def _tensor_bytes(*items: Any) -> int:
    total = 0
    for it in items:
        for t in (it.values() if isinstance(it, dict) else [it]):
            total += t.numel() * t.element_size()
    return total


class _MemoryTotal:
    peak: int = 0


@contextlib.contextmanager
def _cpu_memory_profile(enabled: bool) -> Iterator[_MemoryTotal]:
    """Peak of the running total of CPU tensor allocations inside the block (PyTorch profiler)."""
    out = _MemoryTotal()
    if not enabled:
        yield out
        return
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        yield out
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    total = peak = 0
    for e in events:
        total += e.nbytes()
        peak = max(peak, total)
    out.peak = peak


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the profiler's C++ log lines (written to fd 2) while it starts and stops."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)


# --- variants ---------------------------------------------------------------------------------------------
def variants(args: argparse.Namespace) -> list[Variant]:
    """Plain, A-STAR as configured, with ``--compare-levels`` (or ``--ablate``) A-STAR with the maps at the other
    level, and with ``--ablate`` each optimisation and setting toggled."""
    params, opts, batch, level = args.astar_params, args.engine_options, args.batch, args.level

    base = Variant("", "", True, params, opts, batch, level=level)

    def make(key: str, label: str, astar: bool = True, **kw: Any) -> Variant:
        """A variant of this run: its params, options, batch and level unless ``kw`` names others."""
        return dataclasses.replace(base, key=key, label=label, astar=astar, **kw)

    out = [make("plain", "plain sampling", False), make("astar", "A-STAR as configured")]
    if args.compare_levels or args.ablate:
        other = 1 if level == 2 else 2
        out.append(make("maps", f"maps at {level_name(other)}", changes="setting (astar_map_level)", level=other))
    if not args.ablate:
        return out

    def flip(key: str, label: str, changes: str, **kw: Any) -> Variant:
        return make(key, label, changes=changes, options=dataclasses.replace(opts, **kw))

    out += [
        flip("freeze", f"freeze_weights {'off' if opts.freeze_weights else 'on'}", "engine option",
             freeze_weights=not opts.freeze_weights),
        flip("early_exit", f"early_exit {'off' if opts.early_exit else 'on'}", "engine option",
             early_exit=not opts.early_exit),
        flip("columns", "all context columns captured" if not opts.all_columns else "needed columns only",
             "engine option", all_columns=not opts.all_columns),
        flip("recompute", f"recompute_probs {'off' if opts.recompute_probs else 'on'}", "engine option",
             recompute_probs=not opts.recompute_probs),
        flip("checkpoint", f"checkpoint_blocks {'off' if opts.checkpoint_blocks else 'on'}", "engine option",
             checkpoint_blocks=not opts.checkpoint_blocks),
        flip("skip", f"skip_below {args.ablation_skip if opts.skip_below <= 0 else 0}", "engine option (adaptive)",
             skip_below=args.ablation_skip if opts.skip_below <= 0 else 0.0),
    ]
    window = 1.0 if params.window < 1.0 else 0.5
    out.append(make("window", f"window {window}", changes="user setting", params=P.replace(params, window=window)))
    out.append(make("iterations", f"iterations {params.iterations + 1}", changes="user setting",
                    params=P.replace(params, iterations=params.iterations + 1)))
    other = 2 if batch == 1 else batch
    if other != batch:
        out += [make(f"plain_b{other}", f"batch {other}: plain sampling", False, batch=other),
                make(f"astar_b{other}", f"batch {other}: A-STAR as configured", batch=other)]
    out.append(make(f"per_image_b{other}",
                    f"batch {other}: " + ("one pass per image" if opts.batch_pass else "one pass for the batch"),
                    changes="engine option", options=dataclasses.replace(opts, batch_pass=not opts.batch_pass),
                    batch=other))
    return out


def reference_key(v: Variant, all_variants: Sequence[Variant]) -> tuple[str, str]:
    """The plain and the A-STAR-as-configured variants of ``v``'s batch size."""
    plain = next(x.key for x in all_variants if not x.astar and x.batch == v.batch)
    astar = next(x.key for x in all_variants if x.astar and x.batch == v.batch
                 and (x.key == "astar" or x.key.startswith("astar_b")))
    return plain, astar


# --- the benchmark ------------------------------------------------------------------------------------------
def run_benchmark(args: argparse.Namespace, out: Any = sys.stdout) -> dict:
    """Run the benchmark described by ``args`` (see :func:`parse_args`); print the report to ``out`` and
    return it as a dict (also written to ``--json``)."""
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    setup = Setup(args)
    vs = variants(args)
    results = {v.key: VariantResult(v) for v in vs}

    # warm-up (plain and A-STAR as configured, untimed); the CPU peak memory of every variant from a
    # profiled two-step generation (see Setup.generate); then the timed rounds, the order rotating
    for _ in range(args.warmup):
        for v in vs[:2]:
            setup.generate(v)
    if not setup.cuda:
        for v in vs:
            results[v.key].peak_bytes = setup.generate(v, profile_memory=True, steps=MEMORY_STEPS).peak_bytes
    for rep in range(args.reps):
        k = rep % len(vs)
        for v in vs[k:] + vs[:k]:
            run = setup.generate(v)
            results[v.key].runs.append(run)
            if args.progress:
                print(f"round {rep + 1}/{args.reps}: {v.label}: {run.seconds:.2f} s", file=sys.stderr, flush=True)
    for v in vs:
        r = results[v.key]
        if setup.cuda:
            r.peak_bytes = max(x.peak_bytes for x in r.runs)
        if v.astar:
            r.overlap_after = r.first.overlap_after
        elif v.batch == args.batch:
            r.overlap_after = setup.plain_overlap(v.batch)
    for v in vs:
        _, ref = reference_key(v, vs)
        results[v.key].max_dx = float((results[v.key].first.latent - results[ref].first.latent).abs().max())
    quality = quality_study(args, setup, vs, results) if args.quality_seeds else None
    report = make_report(args, setup, vs, results, quality, time.perf_counter() - t_start)
    print_report(report, out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


def quality_study(args: argparse.Namespace, setup: Setup, vs: Sequence[Variant],
                  results: dict[str, VariantResult]) -> dict:
    """The mean overlap at the end of the window over ``--quality-seeds`` noise seeds (untimed), for plain
    sampling and for every variant of the configured batch size that changes the result."""
    seeds = [args.seed + i for i in range(args.quality_seeds)]
    chosen = [v for v in vs if v.batch == args.batch and (not v.astar or v.key == "astar"
                                                          or (results[v.key].max_dx or 0) > NOISE_DX)]
    # the plain trajectory's overlap on the maps of every other level a variant reads (the overlaps of two levels
    # are not comparable)
    for level in sorted({v.level for v in chosen if v.astar and v.level != args.level}, reverse=True):
        chosen.append(Variant(f"plain_{level_name(level)}", f"plain sampling, maps at {level_name(level)}", False,
                              args.astar_params, args.engine_options, args.batch, level=level))
    out = {}
    for v in chosen:
        values = [setup.plain_overlap(v.batch, seed, v.level) if not v.astar
                  else setup.generate(v, seed=seed).overlap_after for seed in seeds]
        out[v.key] = {"label": v.label, "overlaps": values, "mean": statistics.fmean(values)}
    return {"seeds": seeds, "variants": out}


def hardware(setup: Setup) -> str:
    if setup.cuda:
        return torch.cuda.get_device_name(setup.device)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    return f"{name} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def make_report(args: argparse.Namespace, setup: Setup, vs: Sequence[Variant], results: dict[str, VariantResult],
                quality: dict | None, seconds: float) -> dict:
    rows = []
    for v in vs:
        r = results[v.key]
        plain = results[reference_key(v, vs)[0]]
        t = r.median("seconds")
        rows.append({
            "key": v.key, "label": v.label, "changes": v.changes, "astar": v.astar, "batch": v.batch,
            "seconds": t, "time_ratio": t / plain.median("seconds"),
            "cpu_seconds": r.median("cpu_seconds"), "cpu_ratio": r.median("cpu_seconds") / plain.median("cpu_seconds"),
            "peak_mb": r.peak_bytes / 2 ** 20 if r.peak_bytes is not None else None,
            "memory_ratio": (r.peak_bytes / plain.peak_bytes) if r.peak_bytes and plain.peak_bytes else None,
            "passes": r.first.passes, "gradients": r.first.gradients, "updates": r.first.updates,
            "below_steps": r.first.below_steps, "step_overlaps": r.first.step_overlaps,
            "overlap_after": r.overlap_after, "max_dx": r.max_dx,
            "forward": r.median("forward"), "loss": r.median("loss"), "backward": r.median("backward"),
            "astar_seconds": r.median("astar"),
            "sampling": statistics.median(x.seconds - x.astar for x in r.runs),
            "times": [x.seconds for x in r.runs], "cpu_times": [x.cpu_seconds for x in r.runs],
        })
    params = args.astar_params
    by_key = {r["key"]: r for r in rows}
    main, plain = by_key["astar"], by_key["plain"]
    return {
        "config": args.config, "description": SPECS[args.config].description,
        "size": f"{setup.width}x{setup.height}", "steps": args.steps,
        "device": str(setup.device), "cuda": setup.cuda, "hardware": hardware(setup),
        "dtype": str(setup.dtype).replace("torch.", ""), "attention": args.attention,
        "sampler": f"{setup.func_name} ({setup.scheduler})", "cfg_scale": args.cfg_scale,
        "batch": args.batch, "prompt": args.prompt, "concepts": args.concepts, "seed": args.seed,
        "maps": level_name(args.level), "layers": args.layers,
        "params": {k: v for k, v in P.to_dict(params).items() if k not in ("enabled", "concepts")},
        "options": dataclasses.asdict(args.engine_options),
        "warmup": args.warmup, "reps": args.reps, "torch": torch.__version__,
        "main": main, "plain": plain, "rows": rows, "quality": quality, "wall_seconds": seconds,
        "astar_vs_plain_dx": float((results["astar"].first.latent - results["plain"].first.latent).abs().max()),
        "memory_method": ("torch.cuda.max_memory_allocated() over the sampler call" if setup.cuda else
                          "weights + conditioning + the peak running total of the CPU allocation events the "
                          "PyTorch profiler records in a two-step generation"),
    }


def _fmt(value: float | None, spec: str, width: int) -> str:
    return f"{'-':>{width}s}" if value is None else format(value, f"{width}{spec}")


def print_report(rep: dict, out: Any = sys.stdout) -> None:
    w = out.write
    p = rep["params"]
    cpu = not rep["cuda"]
    w(f"A-STAR benchmark: {rep['config']} - {rep['description']}\n")
    w(f"hardware: {rep['hardware']}; device {rep['device']}, {rep['dtype']}, attention {rep['attention']}, "
      f"torch {rep['torch']}\n")
    w(f"generation: {rep['size']}, {rep['steps']} steps, {rep['sampler']}, CFG {rep['cfg_scale']}, "
      f"batch {rep['batch']}, seed {rep['seed']}, prompt {rep['prompt']!r}, concepts {rep['concepts']!r}\n")
    w(f"A-STAR: scale {p['scale']}, window {p['window']}, iterations {p['iterations']}, maps at {rep['maps']} "
      f"({rep['layers']} layers); engine: "
      + ", ".join(f"{k}={v}" for k, v in rep["options"].items() if k not in ("keep_maps", "sync_timing")) + "\n")
    w(f"timing: {rep['warmup']} warm-up round(s), then {rep['reps']} timed round(s) of every variant, the order "
      f"rotating; medians\n\n")
    m, pl = rep["main"], rep["plain"]
    w(f"{'':30s}{'plain':>10s}{'A-STAR':>10s}{'ratio':>9s}\n")
    w(f"{'wall time (s)':30s}{pl['seconds']:10.3f}{m['seconds']:10.3f}{m['time_ratio']:8.2f}x\n")
    if cpu:
        w(f"{'process CPU time (s)':30s}{pl['cpu_seconds']:10.3f}{m['cpu_seconds']:10.3f}{m['cpu_ratio']:8.2f}x\n")
    w(f"{'peak memory (MiB)':30s}{_fmt(pl['peak_mb'], '.1f', 10)}{_fmt(m['peak_mb'], '.1f', 10)}"
      f"{_fmt(m['memory_ratio'], '.2f', 8)}x\n")
    w(f"{'loss passes (forward)':30s}{'':10s}{m['passes']:10d}\n")
    w(f"{'gradient passes (backward)':30s}{'':10s}{m['gradients']:10d}\n")
    w(f"{'overlap at end of window':30s}{_fmt(pl['overlap_after'], '.3f', 10)}{_fmt(m['overlap_after'], '.3f', 10)}\n")
    w(f"{'max |A-STAR - plain| latent':30s}{'':10s}{rep['astar_vs_plain_dx']:10.3g}\n")
    w(f"peak memory: {rep['memory_method']}\n\n")
    total = m["seconds"]
    other = max(0.0, m["astar_seconds"] - m["forward"] - m["loss"] - m["backward"])
    w("where the time goes (A-STAR generation, wall time, medians):\n")
    for label, value in (("sampling (the normal CFG steps)", m["sampling"]),
                         ("loss-pass forward (to the early exit)", m["forward"]),
                         ("maps and losses", m["loss"]),
                         ("backward (autograd.grad)", m["backward"]),
                         ("other A-STAR (copies, updates, measure)", other)):
        w(f"  {label:42s}{value:9.3f} s {100 * value / total:5.1f} %\n")
    w(f"  {'plain generation, for comparison':42s}{pl['seconds']:9.3f} s\n")
    if len(rep["rows"]) > 2:
        w("\nvariants: each changes one thing from 'A-STAR as configured'; ratios to plain sampling of the same "
          "batch size;\nmax|dx| = largest difference of the final latent from 'A-STAR as configured' of the same "
          "batch size\n")
        head = f"  {'variant':34s}{'passes':>7s}{'grads':>6s}{'time s':>8s}{'x plain':>8s}"
        head += f"{'cpu x':>7s}" if cpu else ""
        head += f"{'peak MiB':>10s}{'x plain':>8s}{'overlap':>8s}{'max|dx|':>9s}\n"
        w(head)
        for r in rep["rows"]:
            passes = f"{r['passes']:7d}{r['gradients']:6d}" if r["astar"] else f"{'-':>7s}{'-':>6s}"
            line = f"  {r['label'][:34]:34s}{passes}{r['seconds']:8.3f}{r['time_ratio']:7.2f}x"
            line += f"{r['cpu_ratio']:6.2f}x" if cpu else ""
            line += (f"{_fmt(r['peak_mb'], '.1f', 10)}{_fmt(r['memory_ratio'], '.2f', 7)}x"
                     f"{_fmt(r['overlap_after'], '.3f', 8)}{_fmt(r['max_dx'], '.2g', 9)}\n")
            w(line)
    q = rep.get("quality")
    if q:
        w(f"\noverlap at the end of the window over {len(q['seeds'])} noise seeds (mean; lower = concepts apart):\n")
        for item in q["variants"].values():
            w(f"  {item['label'][:34]:34s}{item['mean']:8.3f}   ("
              + " ".join(f"{v:.2f}" if v is not None else "-" for v in item["overlaps"]) + ")\n")
    w(f"\nbenchmark wall time: {rep['wall_seconds']:.1f} s\n")


# --- command line -------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m astar_ext.bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--config", choices=sorted(SPECS), default="tiny",
                    help="tiny: the tiny model (CPU); sd15 / sdxl: full-size UNets with random weights (GPU)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda for sd15/sdxl, else cpu)")
    ap.add_argument("--dtype", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                    help="UNet weights and autocast dtype (auto: fp16 on cuda like the WebUI, fp32 on cpu)")
    ap.add_argument("--force", action="store_true", help="run sd15/sdxl on the CPU anyway")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run of the code path (for CI): 4 steps, 128x128 (tiny), no warm-up, 1 repetition")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the config's)")
    ap.add_argument("--size", default=None, help="WIDTHxHEIGHT in pixels (default: the config's)")
    ap.add_argument("--batch", type=int, default=1, help="images per batch")
    ap.add_argument("--sampler", choices=sorted(SAMPLERS), default="dpmpp_2m")
    ap.add_argument("--cfg-scale", type=float, default=7.0)
    ap.add_argument("--attention", choices=("sdp", "ldm"), default="sdp",
                    help="sdp: the WebUI's scaled-dot-product optimisation; ldm: ldm's own (materialised softmax)")
    ap.add_argument("--layers", choices=LAYER_CHOICES, default="all",
                    help="the captured layers at the --level (the WebUI setting astar_layers; all = the default)")
    ap.add_argument("--level", type=int, choices=sorted(MAP_LEVELS.values()), default=2,
                    help="the maps' level: 2 = image/32 (default, the paper's), 1 = image/16 (the WebUI setting "
                         "astar_map_level)")
    ap.add_argument("--compare-levels", action="store_true",
                    help="also run A-STAR with the maps at the other level (a row of the variants table)")
    ap.add_argument("--prompt", default="a cat and a dog")
    ap.add_argument("--concepts", default="cat, dog")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed rounds of plain and A-STAR as configured before the timed rounds "
                         "(default 1; --quick 0)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions per variant (default 3; --quick 1)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default on the CPU: 1, the tiny model's operations are too small to "
                         "gain from more; on CUDA: torch's choice)")
    ap.add_argument("--progress", action="store_true", help="print each timed generation to stderr")
    ap.add_argument("--json", default=None, help="also write the report as JSON to this file")
    ap.add_argument("--ablate", action="store_true",
                    help="also measure each optimisation and setting toggled (the variants table)")
    ap.add_argument("--quality-seeds", type=int, default=0,
                    help="also report the mean overlap over this many noise seeds for plain sampling and each "
                         "variant that changes the result (untimed)")
    g = ap.add_argument_group("A-STAR settings (the configuration under test)")
    g.add_argument("--scale", type=float, default=P.DEFAULTS.scale)
    g.add_argument("--window", type=float, default=P.DEFAULTS.window)
    g.add_argument("--iterations", type=int, default=P.DEFAULTS.iterations)
    d = EngineOptions()
    e = ap.add_argument_group("engine options (the configuration under test; the variants table toggles each)")
    e.add_argument("--no-freeze-weights", dest="freeze_weights", action="store_false", default=d.freeze_weights,
                   help="leave requires_grad on the UNet's weights during the loss pass")
    e.add_argument("--no-early-exit", dest="early_exit", action="store_false", default=d.early_exit,
                   help="run the whole UNet in the loss pass")
    e.add_argument("--all-columns", dest="all_columns", action="store_true", default=d.all_columns,
                   help="capture every context column, pick the concepts' afterwards")
    e.add_argument("--per-image", dest="batch_pass", action="store_false", default=d.batch_pass,
                   help="one loss pass per image instead of one for the batch")
    e.add_argument("--recompute-probs", dest="recompute_probs", action="store_true", default=d.recompute_probs)
    e.add_argument("--no-recompute-probs", dest="recompute_probs", action="store_false")
    e.add_argument("--checkpoint-blocks", dest="checkpoint_blocks", action="store_true", default=d.checkpoint_blocks,
                   help="activation checkpointing of the UNet blocks before the captured layers in the loss pass")
    e.add_argument("--skip-below", type=float, default=d.skip_below,
                   help="adaptive skip: no update for an image whose overlap is below this (0: off)")
    e.add_argument("--no-smoothing", dest="smoothing", action="store_false", default=d.smoothing)
    e.add_argument("--ablation-skip", type=float, default=0.15, help="the skip_below of the adaptive-skip variant")
    args = ap.parse_args(argv)

    spec = SPECS[args.config]
    if args.device is None:
        args.device = "cuda" if spec.gpu_only and torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available")
    if args.dtype == "auto":
        args.dtype = "fp16" if args.device.startswith("cuda") else "fp32"
    if spec.gpu_only and not args.device.startswith("cuda") and not args.force:
        ap.exit(2, f"the {args.config} configuration ({spec.description}) is meant for a GPU and no CUDA device "
                   f"is available (torch.cuda.is_available() is False); use --force to run it on the CPU anyway "
                   f"(slow; try --steps and --size)\n")
    size = args.size or ("128x128" if args.quick and args.config == "tiny" else f"{spec.width}x{spec.height}")
    try:
        args.width, args.height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        ap.error(f"--size must be WIDTHxHEIGHT, got {size!r}")
    if args.width % 64 or args.height % 64:
        ap.error("--size: width and height must be multiples of 64")
    args.steps = args.steps or (4 if args.quick else spec.steps)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    args.reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    if args.threads is None and args.device == "cpu":
        args.threads = 1
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    args.astar_params = P.replace(P.DEFAULTS, enabled=True, concepts=args.concepts, scale=args.scale,
                                  window=args.window, iterations=args.iterations)
    args.engine_options = dataclasses.replace(
        d, freeze_weights=args.freeze_weights, early_exit=args.early_exit, all_columns=args.all_columns,
        batch_pass=args.batch_pass, recompute_probs=args.recompute_probs, skip_below=args.skip_below,
        checkpoint_blocks=args.checkpoint_blocks,
        smoothing=args.smoothing)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run_benchmark(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
