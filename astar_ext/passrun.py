"""One corrected sampling run: the sampler-function wrapper and the denoiser pre-hook.

:meth:`PassRun.attach` wraps ``sampler.func`` (``functools.wraps`` keeps its signature, which the
WebUI inspects to pass ``sigmas``/``timesteps``). When the sampler starts, the wrapper reads the
schedule, installs the attention capture on the UNet and a forward pre-hook (with kwargs) on the
CFG denoiser, and removes both in ``finally`` when the sampler returns, raises or is interrupted:
no hook outlives the run.

The pre-hook receives the sampler's own latent ``x`` (first argument of ``CFGDenoiser.forward``).
On the main call of a step inside the window it asks the :class:`AStarController` for the update,
which runs the conditional-only pass through ``denoiser.inner_model`` (cond rows that hold a concept,
each image with its own columns) and writes the corrected latent into ``x`` in place; the same call
then denoises from it and the sampler steps from it. At the first step after the window it
measures the overlap once more (no gradient) for the summary.

The refiner: the WebUI swaps the model inside the denoiser call that reaches the switch point, after this
pre-hook has run. The next call (or the end of sampling, when the switch came at the last call) sees another
model (or, when the WebUI loaded the refiner's weights into the same model object, another checkpoint) and the
run stops there for good with a note that names the refiner and the step: A-STAR corrects the base model's steps
only. (Before each pass the WebUI reloads the pass's own model, so a pass always starts on it.)

An exception in the pre-hook never reaches the sampler: the run stops correcting, records the
error, and the image is still produced. ``InterruptedException`` (a ``BaseException``) is not
caught.
"""

from __future__ import annotations

import dataclasses
import functools
import traceback
from collections.abc import Callable
from typing import Any

import torch

from .capture import AttentionCapture
from .controller import AStarController, EngineOptions, mean_overlap
from .passconcepts import PassConcepts
from .regions import Layout
from .samplers import CallPlan
from .schedule import Schedule

_ATTACHED: dict[int, PassRun] = {}


def make_condition_dict(c_crossattn: Any, image_cond: torch.Tensor) -> dict:
    """The UNet conditioning the WebUI's CFG denoiser builds (``make_condition_dict`` there)."""
    if isinstance(c_crossattn, dict):
        return {**c_crossattn, "c_concat": [image_cond]}
    return {"c_crossattn": [c_crossattn], "c_concat": [image_cond]}


def subscript_rows(cond: Any, rows: torch.Tensor) -> Any:
    """Rows ``rows`` of a cond tensor, or of each tensor of an SDXL cond dict."""
    if isinstance(cond, dict):
        return {k: v[rows.to(v.device)] for k, v in cond.items()}
    return cond[rows.to(cond.device)]


class PassRun:
    """The A-STAR correction of one sampling pass (first pass, hires pass or img2img).

    Args:
        params: the generation's ``AStarParams``.
        plan: the sampler's :class:`~astar_ext.samplers.CallPlan`.
        concepts: the pass's :class:`~astar_ext.passconcepts.PassConcepts`.
        unet: the UNet whose ``attn2`` layers are captured.
        reconstruct: ``prompt_parser.reconstruct_multicond_batch``.
        current_model: returns the loaded model (a change means the refiner took over).
        should_stop: True when the user pressed Interrupt or Skip.
        options: engine options; ``level`` the capture level; ``layers`` the captured layers (None: all
            at ``level``); ``context_transform`` the hypernetwork hook; ``label`` names the pass in messages.
        layout: the decoded regions of ``params.layout`` (default: the controller decodes them itself).
    """

    def __init__(self, *, params: Any, plan: CallPlan, concepts: PassConcepts, unet: torch.nn.Module,
                 reconstruct: Callable, current_model: Callable[[], Any], should_stop: Callable[[], bool],
                 options: EngineOptions = EngineOptions(), level: int = 2, layers: list[str] | None = None,
                 context_transform: Callable | None = None, label: str = "first pass",
                 report: Callable[[str], None] = print, layout: Layout | None = None):
        self.params = params
        self.plan = plan
        self.concepts = concepts
        self.unet = unet
        self.reconstruct = reconstruct
        self.current_model = current_model
        self.should_stop = should_stop
        self.options = options
        self.level = level
        self.layers = layers
        self.context_transform = context_transform
        self.label = label
        self.report = report
        self.layout = layout
        self.model = current_model()
        self.checkpoint = checkpoint_of(self.model)
        self._last_step: int | None = None
        self.collect_maps = bool(getattr(params, "heatmaps", False))
        if self.collect_maps:
            self.options = dataclasses.replace(self.options, keep_maps=True)
        # (step, batch images of the record's rows, maps [I, K, h, w]) for every corrected or measured step
        self.maps_log: list[tuple[int, tuple[int, ...], torch.Tensor]] = []
        self.step_images: dict[int, tuple[int, ...]] = {}
        self.controller: AStarController | None = None
        self.schedule: Schedule | None = None
        self.sigmas: list[float] = []
        self.error: str | None = None
        self.notes: list[str] = []
        self.stopped = False
        self.started = False
        self.finished = False
        self._sampler: Any = None
        self._original: Callable | None = None
        self._hook: Any = None

    # --- attaching to a sampler --------------------------------------------------------------------
    def attach(self, sampler: Any) -> None:
        """Wrap ``sampler.func`` so that the run starts and ends with the sampler's run."""
        previous = _ATTACHED.pop(id(sampler), None)
        if previous is not None:
            previous.detach()
        original = sampler.func
        run = self

        @functools.wraps(original)
        def astar_sampler_func(model, x, *args, **kwargs):
            run._begin(model, kwargs)
            try:
                return original(model, x, *args, **kwargs)
            finally:
                run._end()

        sampler.func = astar_sampler_func
        self._sampler, self._original = sampler, original
        _ATTACHED[id(sampler)] = self

    def detach(self) -> None:
        """Undo :meth:`attach` and remove any hook (safe to call at any time, any number of times)."""
        self._end()
        sampler, original = self._sampler, self._original
        if sampler is not None and original is not None and getattr(sampler.func, "__wrapped__", None) is original:
            sampler.func = original
        if _ATTACHED.get(id(sampler)) is self:
            del _ATTACHED[id(sampler)]
        self._sampler = self._original = None

    # --- the sampler's run ---------------------------------------------------------------------------
    def _begin(self, denoiser: torch.nn.Module, kwargs: dict) -> None:
        self.started = True
        schedule = kwargs.get(self.plan.schedule_key)
        if schedule is None:
            self._fail(f"the sampler was not given its {self.plan.schedule_key}")
            return
        self.sigmas = [float(v) for v in torch.as_tensor(schedule).flatten().tolist()]
        p = self.params
        self.schedule = Schedule(self.plan.steps(self.sigmas), p.window, p.scale, p.iterations)
        try:
            capture = AttentionCapture(self.unet, level=self.level, layers=self.layers,
                                       context_transform=self.context_transform)
            self.controller = AStarController(capture, self.schedule, p, sigma_space=self.plan.sigma_space,
                                              options=self.options, should_stop=self.should_stop,
                                              layout=self.layout)
            self.controller.labels = tuple(self.concepts.labels)
            self.controller.open()
            self._hook = denoiser.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        except Exception as e:  # noqa: BLE001 - any failure here must leave sampling untouched
            self._end()
            self._fail(f"could not attach: {e}")

    def _end(self) -> None:
        if self._hook is not None and not self.stopped and self.model_changed():
            self._stop(self._refiner_note(None))  # the refiner took over at the last denoiser call
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.controller is not None:
            self.controller.close()
        if self.started:
            self.finished = True

    def _fail(self, message: str) -> None:
        self.error = f"{self.label}: {message}"
        self.stopped = True
        self.report(f"A-STAR: {self.error}")

    def _stop(self, note: str) -> None:
        self.stopped = True
        if note not in self.notes:
            self.notes.append(note)

    def _pre_hook(self, denoiser: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        if self.stopped or self.controller is None or self.schedule is None:
            return None
        try:
            self._on_call(denoiser, args, kwargs)
        except Exception as e:  # noqa: BLE001 - the image must still be produced
            self.report(traceback.format_exc())
            self._fail(f"stopped after an error: {type(e).__name__}: {e}")
        return None

    def model_changed(self) -> bool:
        """Has the loaded model changed since the run was made (the refiner took over)?"""
        model = self.current_model()
        return model is not self.model or checkpoint_of(model) != self.checkpoint

    def _on_call(self, denoiser: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        call = int(getattr(denoiser, "step", 0))
        schedule = self.schedule
        step = self.plan.step_of(call, schedule.steps)
        if self.model_changed():
            self._stop(self._refiner_note(step))
            return
        if step is not None:
            self._last_step = step
        if step is None:
            return
        if step >= schedule.optimised_steps:
            # after the window: one measurement at its end (for the summary), every step when collecting maps
            first_after = step == schedule.optimised_steps and self.controller.records and not self.controller.measures
            if not (first_after or self.collect_maps):
                return
        x = args[0] if args else kwargs["x"]
        sigma = args[1] if len(args) > 1 else kwargs["sigma"]
        received = float(torch.as_tensor(sigma).flatten()[0])
        if not self.plan.matches(self.sigmas, step, received):
            self._stop(f"{self.label}: the denoiser calls did not follow the {self.plan.name} pattern at step {step} "
                       f"(another extension may call the denoiser); A-STAR stopped there")
            return
        if self.should_stop():
            return
        at = self.concepts.layout_at(call)
        if at is None:
            return
        denoise = self._cond_pass(denoiser, kwargs, call, list(at.rows))
        if step < schedule.optimised_steps:
            record = self.controller.step(x, sigma, step, at.layout, denoise)
        else:
            record = self.controller.measure(x, sigma, step, at.layout, denoise)
        self.step_images[step] = at.images
        if record is not None and record.maps is not None:
            self.maps_log.append((step, at.images, record.maps))

    def _refiner_note(self, step: int | None) -> str:
        """The note of a model change: which model took over, at which step, and what A-STAR did."""
        name = checkpoint_name(self.current_model())
        # the WebUI switched inside the previous denoiser call, which belonged to the last step seen
        at = self._last_step if self._last_step is not None else (step or 0)
        window = self.schedule.optimised_steps if self.schedule is not None else 0
        if at < window:
            return (f"{self.label}: the refiner {name} took over at step {at + 1} of {self.schedule.steps}, inside "
                    f"A-STAR's window of {window} steps: A-STAR corrected the base model's steps only")
        return (f"{self.label}: the refiner {name} took over at step {at + 1} of {self.schedule.steps}, after "
                f"A-STAR's window of {window} steps: A-STAR ran on the base model only")

    def _cond_pass(self, denoiser: torch.nn.Module, kwargs: dict, call: int, rows: list[int]) -> Callable:
        """``denoise_fn(x, sigma)`` for the controller: the cond rows that hold a concept, through the
        denoiser's inner model, as the CFG denoiser would run them at this call."""
        conds_list, tensor = self.reconstruct(kwargs["cond"], call)
        image_of_row = [0] * sum(len(c) for c in conds_list)
        for image, parts in enumerate(conds_list):
            for row, _weight in parts:
                image_of_row[row] = image
        images = torch.tensor([image_of_row[r] for r in rows], dtype=torch.long)
        row_index = torch.tensor(rows, dtype=torch.long)
        image_cond = kwargs.get("image_cond")
        inner = denoiser.inner_model

        def denoise(x: torch.Tensor, sigma: torch.Tensor, subset: list[int] | None = None) -> Any:
            """``subset``: only these of the rows (indexes into ``rows``; the controller's per-image passes)."""
            dev = x.device
            pick = torch.arange(len(rows)) if subset is None else torch.tensor(subset, dtype=torch.long)
            idx = images[pick].to(dev)
            c = subscript_rows(tensor, row_index[pick])
            ic = image_cond[idx.to(image_cond.device)] if image_cond is not None else None
            s = torch.as_tensor(sigma, device=dev)
            s = s[idx] if s.dim() else s.expand(len(pick))
            return inner(x[idx], s, cond=make_condition_dict(c, ic))

        return denoise

    # --- what happened ---------------------------------------------------------------------------------
    @property
    def passes(self) -> int:
        return self.controller.passes if self.controller is not None else 0

    @property
    def seconds(self) -> float:
        return self.controller.seconds if self.controller is not None else 0.0

    def overlap_before_after(self) -> tuple[float | None, float | None]:
        """Mean pair overlap at the first optimised step (before its update) and at the end of the window
        (the first step after it; with a window of all steps, the last optimised step before its update)."""
        ctrl = self.controller
        if ctrl is None or not ctrl.records:
            return None, None
        first = ctrl.records[0]
        before = mean_overlap(first.overlap, first.pair_valid)
        last = ctrl.measures[0] if ctrl.measures else ctrl.records[-1]
        return before, mean_overlap(last.overlap, last.pair_valid)

    def pair_overlaps(self) -> list[tuple[str, float | None, float | None]]:
        """Per concept pair: ``(label, before, after)``, the mean Eq. 2 term over the images that hold both
        concepts, at the first corrected step (before its update) and at the end of the window."""
        ctrl = self.controller
        if ctrl is None or not ctrl.records:
            return []
        first = ctrl.records[0]
        last = ctrl.measures[0] if ctrl.measures else ctrl.records[-1]
        out = []
        for p, (a, b) in enumerate(ctrl.pairs):
            out.append((f"{a}/{b}", _mean_col(first.overlap, first.pair_valid, p),
                        _mean_col(last.overlap, last.pair_valid, p)))
        return out

    def retention_iou(self) -> list[tuple[str, float | None]]:
        """Per concept: the mean IoU of its binary mask between consecutive corrected steps."""
        ctrl = self.controller
        if ctrl is None:
            return []
        out = []
        for m, label in enumerate(ctrl.labels):
            vals = [row[m] for r in ctrl.records for row in r.retention_iou if m < len(row) and row[m] is not None]
            out.append((label, sum(vals) / len(vals) if vals else None))
        return out

    def layout_fit(self) -> list[tuple[str, float | None]]:
        """Per concept: the share of its attention inside its region at the end of the window (the first step
        after it; with a window of all steps, the last corrected step), mean over the images that hold it;
        ``None`` for a concept without a region. Empty without a layout."""
        ctrl = self.controller
        if ctrl is None or ctrl.layout is None or not ctrl.records:
            return []
        last = ctrl.measures[0] if ctrl.measures else ctrl.records[-1]
        out = []
        for m, label in enumerate(ctrl.labels):
            vals = [row[m] for row in last.fit if m < len(row) and row[m] is not None]
            out.append((label, sum(vals) / len(vals) if vals else None))
        return out

    def heatmap_data(self, image: int) -> dict | None:
        """Maps and loss series of batch image ``image`` for :func:`astar_ext.heatmaps.render`:
        ``{"maps": {concept: {column: map}}, "steps": [...], "losses": {...}, "window_end": int}``, and with a
        layout ``"regions": {concept: [h, w] bool}``."""
        ctrl = self.controller
        if ctrl is None or not self.maps_log:
            return None
        per_step = [(step, maps[images.index(image)]) for step, images, maps in self.maps_log if image in images]
        if not per_step:
            return None
        n_opt = self.schedule.optimised_steps if self.schedule is not None else 0
        first = next((m for s, m in per_step if s < n_opt), per_step[0][1])
        end = next((m for s, m in per_step if s == n_opt), None)
        if end is None:
            end = [m for s, m in per_step if s < n_opt][-1] if n_opt else per_step[-1][1]
        mean = torch.stack([m for _, m in per_step]).mean(0)
        maps = {label: {"first step": first[k], "end of window": end[k], "mean over steps": mean[k]}
                for k, label in enumerate(ctrl.labels)}
        steps, seg, ret = [], [], []
        for r in ctrl.records:
            images = self.step_images.get(r.step, ())
            if image not in images:
                continue
            i = images.index(image)
            steps.append(r.step)
            seg.append(sum(o for o, ok in zip(r.overlap[i], r.pair_valid[i]) if ok))
            ret.append(sum(v for v in r.retention[i] if v is not None))
        data = {"maps": maps, "steps": steps, "losses": {"segregation": seg, "retention": ret}, "window_end": n_opt}
        if ctrl.layout is not None:
            grids, has = ctrl.layout.grids(ctrl.labels, tuple(first.shape[-2:]))
            data["regions"] = {label: grids[k].numpy() for k, label in enumerate(ctrl.labels) if bool(has[k])}
        return data

    @property
    def skipped_updates(self) -> list[str]:
        out: list[str] = []
        if self.controller is not None:
            for r in self.controller.records:
                out.extend(f"step {r.step}: {s}" for s in r.skipped if s != "interrupted")
        return out


def checkpoint_of(model: Any) -> Any:
    """What identifies the weights of a loaded model (its checkpoint file; the WebUI may load another checkpoint's
    weights into the same model object)."""
    return getattr(model, "sd_model_checkpoint", None)


def checkpoint_name(model: Any) -> str:
    info = getattr(model, "sd_checkpoint_info", None)
    name = getattr(info, "name_for_extra", None) or getattr(info, "title", None) or checkpoint_of(model)
    return repr(str(name)) if name else "(unknown checkpoint)"


def _mean_col(rows: list[list[float]], valid: list[list[bool]], col: int) -> float | None:
    vals = [row[col] for row, ok in zip(rows, valid) if col < len(row) and ok[col]]
    return sum(vals) / len(vals) if vals else None


def detach_all() -> int:
    """Detach every attached run (for a UI reload); returns how many there were."""
    runs = list(_ATTACHED.values())
    for run in runs:
        run.detach()
    return len(runs)
