"""The A-STAR script of the AUTOMATIC1111 WebUI (1.10.x): UI, processing hooks, infotext, API, XYZ.

Data flow of one generation (``webui-host.md`` §1.3 gives the WebUI's call order):

* ``process``: one immutable ``AStarParams`` from the UI list, an API dict in the first slot, or
  ``p.astar_<field>`` overrides (XYZ plot). Invalid input: A-STAR is off for the job, the infotext
  says why (``A-STAR error``), the image is still generated. Host and model checks.
* ``before_process_batch``: a new batch starts with an empty summary.
* ``process_before_every_sampling``: for the pass about to run (first pass; the hires pass only
  when asked), check the sampler, match the concepts against the pass's prompts with the loaded
  model's tokenizer, and attach a :class:`~astar_ext.passrun.PassRun` to ``p.sampler``.
* ``postprocess_batch``: detach the runs (they detach themselves when sampling ends; this is the
  safety net) and write the summary into the infotext before the images are saved.

Only this package imports the WebUI's ``modules`` and ``gradio``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gradio as gr
from modules import prompt_parser, script_callbacks, scripts, sd_samplers, shared

from .. import params as P
from ..capture import (
    DEFAULT_MAP_LEVEL,
    LAYER_CHOICES,
    MAP_LEVELS,
    CaptureError,
    level_name,
    parse_map_level,
    remove_all,
    select_layers,
)
from ..controller import LAYOUT_LOSSES, EngineOptions
from ..passconcepts import PassConcepts
from ..passrun import PassRun, detach_all
from ..regions import Layout
from ..samplers import plan_for
from ..tokens import parse_concepts
from .hosting import current_host, use_host  # noqa: F401  (use_host: scripts/astar.py)
from .route import on_app_started as add_token_route

try:  # WebUI >= 1.8
    from modules.infotext_utils import PasteField
except ImportError:  # pragma: no cover - older WebUI
    PasteField = None

TITLE = "A-STAR"
SETTINGS_SECTION = ("astar", "A-STAR")
LAYOUT_LOSS_KEY = "A-STAR layout loss"
"""The infotext key of the ``astar_layout_loss`` setting (written when a layout used a term other than the default;
a paste restores it as an override setting, through the option's ``infotext``)."""
SUMMARY_KEYS = ("A-STAR skipped", "A-STAR warnings", "A-STAR overlap", "A-STAR pairs", "A-STAR retention IoU",
                "A-STAR layout fit", "A-STAR passes", "A-STAR time", "A-STAR hires overlap", "A-STAR notes",
                "A-STAR layers", LAYOUT_LOSS_KEY)
ERROR_KEY = "A-STAR error"
MASK_METHODS = ("threshold", "otsu")
EOT_RULES = ("automatic", "keep", "exclude")
LAYER_SETTINGS = ("automatic",) + LAYER_CHOICES
MAPS_KEY = "A-STAR maps"
"""The infotext key of the ``astar_map_level`` setting (written when it is not the default; a paste restores it as
an override setting, through the option's ``infotext``)."""


@dataclasses.dataclass
class GenerationState:
    """A-STAR's state for one ``p`` (one generation; an XYZ cell is its own generation)."""

    params: Any
    items: list
    layout: Layout | None = None  # the decoded regions of params.layout
    skipped: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    runs: list[PassRun] = dataclasses.field(default_factory=list)
    sampling_seen: bool = False
    layers: str | None = None  # which layers, when not all the layers of the map level
    level: int = MAP_LEVELS[DEFAULT_MAP_LEVEL]  # the capture level (astar_map_level)
    # (index of the image among the generation's outputs, heatmap data) for postprocess
    heatmaps: list[tuple[int, dict]] = dataclasses.field(default_factory=list)

    def skip(self, reason: str) -> None:
        if reason not in self.skipped:
            self.skipped.append(reason)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def _opt(name: str, default: Any) -> Any:
    return getattr(shared.opts, name, default) if hasattr(shared, "opts") else default


def settings_defaults() -> Any:
    """The params whose defaults the user chose in Settings > A-STAR (table defaults otherwise)."""
    values = {}
    for f in P.FIELDS:
        if f.minimum is not None:
            value = _opt(f"astar_default_{f.name}", f.default)
            try:
                values[f.name] = P._coerce(f, value, strict=False)
            except P.ParamError:
                values[f.name] = f.default
    return P.AStarParams(**values)


def engine_options(sd_model: Any) -> EngineOptions:
    rule = _opt("astar_eot_rule", "automatic")
    normalize_eot = current_host().excludes_eot(sd_model) if rule == "automatic" else rule == "exclude"
    method = _opt("astar_mask_method", "threshold")
    layout_loss = _opt("astar_layout_loss", LAYOUT_LOSSES[0])
    return EngineOptions(normalize_eot=normalize_eot, mask_method=method if method in MASK_METHODS else "threshold",
                         layout_loss=layout_loss if layout_loss in LAYOUT_LOSSES else LAYOUT_LOSSES[0],
                         early_exit=bool(_opt("astar_early_exit", True)))


def xyz_overrides(p: Any) -> dict[str, Any]:
    """``p.astar_<field>`` values set by the XYZ plot's A-STAR axes."""
    return {f.name: getattr(p, f"astar_{f.name}") for f in P.FIELDS if hasattr(p, f"astar_{f.name}")}


def parse_script_args(args: tuple | list, p: Any = None) -> Any:
    """``AStarParams`` from the script's argument slice and any XYZ overrides; raises ``ParamError``.

    An A-STAR axis of the XYZ plot turns A-STAR on for its cells.
    """
    params = P.from_args(args, base=settings_defaults())
    overrides = xyz_overrides(p) if p is not None else {}
    if overrides:
        overrides.setdefault("enabled", True)
        params = P.replace(params, **overrides)
    return params


def _explicitly_off(args: tuple | list) -> bool:
    """True when the arguments say "disabled" even though another field is malformed."""
    if not args:
        return True
    first = args[0]
    if isinstance(first, dict):
        return first.get("enabled", True) is False
    return first is False


PLACEHOLDERS = {"concepts": "cat, dog", "layout": "cat 0.05 0.10 0.50 0.90; dog 0.55 0.10 0.95 0.90"}


def _component(f: P.Field, value: Any, elem_id: str, visible: bool = True):
    if f.type is bool:
        return gr.Checkbox(value=value, label=f.label, elem_id=elem_id, visible=visible, info=f.help)
    if f.type is str:
        return gr.Textbox(value=value, label=f.label, elem_id=elem_id, lines=1, max_lines=1 if f.name == "concepts"
                          else 4, info=f.help, placeholder=PLACEHOLDERS.get(f.name, ""),
                          elem_classes=[f"astar-{f.name}"])
    return gr.Slider(value=value, label=f.label, minimum=f.minimum, maximum=f.maximum, step=f.step,
                     elem_id=elem_id, info=f.help)


class AStarScript(scripts.Script):
    """A-STAR: test-time attention segregation and retention (ICCV 2023), as an always-on script."""

    sorting_priority = 15
    section = "accordions"
    create_group = False

    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list:
        from modules.ui_components import InputAccordion

        defaults = settings_defaults()
        fields = {f.name: f for f in P.FIELDS}
        comps: dict[str, Any] = {}
        with InputAccordion(False, label=TITLE, elem_id=self.elem_id("enabled")) as enabled:
            comps["enabled"] = enabled
            comps["concepts"] = _component(fields["concepts"], "", self.elem_id("concepts"))
            # Token picker (javascript/astar.js fills it from POST /astar/v1/tokens); not script arguments.
            gr.HTML("", elem_id=self.elem_id("picker"), elem_classes=["astar-picker"])
            with gr.Row(elem_classes=["astar-picker-actions"]):
                gr.Button("Suggest", elem_id=self.elem_id("suggest"), elem_classes=["astar-suggest"], size="sm",
                          scale=0, min_width=90)
            with gr.Row(elem_classes=["astar-row"]):
                for name in ("scale", "window"):
                    comps[name] = _component(fields[name], getattr(defaults, name), self.elem_id(name))
            with gr.Accordion("Advanced", open=False, elem_id=self.elem_id("advanced")):
                with gr.Row(elem_classes=["astar-row"]):
                    for name in ("seg_weight", "ret_weight"):
                        comps[name] = _component(fields[name], getattr(defaults, name), self.elem_id(name))
                with gr.Row(elem_classes=["astar-row"]):
                    for name in ("iterations", "mask_threshold"):
                        comps[name] = _component(fields[name], getattr(defaults, name), self.elem_id(name))
                with gr.Row(elem_classes=["astar-row"]):
                    comps["hires"] = _component(fields["hires"], defaults.hires, self.elem_id("hires"),
                                                visible=not is_img2img)
                    comps["heatmaps"] = _component(fields["heatmaps"], defaults.heatmaps, self.elem_id("heatmaps"))
            with gr.Accordion("Layout", open=False, elem_id=self.elem_id("layout_panel")):
                # The box editor (astarLayout in javascript/astar.js draws it here); the text field below is the script
                # argument, and the editor and the field follow each other.
                gr.HTML("", elem_id=self.elem_id("layout_editor"), elem_classes=["astar-layout-editor"])
                comps["layout"] = _component(fields["layout"], "", self.elem_id("layout"))
                comps["layout_weight"] = _component(fields["layout_weight"], defaults.layout_weight,
                                                    self.elem_id("layout_weight"))
        ordered = [comps[f.name] for f in P.FIELDS]
        self.infotext_fields = [self._paste_field(comps[f.name], f) for f in P.FIELDS]
        self.paste_field_names = [f.infotext for f in P.FIELDS]
        return ordered

    @staticmethod
    def _paste_field(component: Any, f: P.Field) -> Any:
        # "enabled" is pasted as False from an infotext without A-STAR, so that pasting a plain image's
        # parameters turns A-STAR off instead of keeping whatever the UI had; the layout fields, which the
        # infotext leaves out without a layout (at their defaults), are pasted as their defaults.
        missing = {"enabled": "False", "layout": "", "layout_weight": P._format_value(P.FIELD_BY_NAME[
            "layout_weight"].default)}
        target: Any = ((lambda d, key=f.infotext, default=missing[f.name]: d.get(key, default))
                       if f.name in missing else f.infotext)
        return PasteField(component, target) if PasteField is not None else (component, target)

    # --- processing hooks ------------------------------------------------------------------------
    def process(self, p: Any, *args: Any) -> None:
        p.astar_state = None
        try:
            params = parse_script_args(args, p)
            items = parse_concepts(params.concepts) if params.enabled else []
            layout = Layout.parse(params.layout) if params.enabled and params.layout else None
        except P.ParamError as e:
            if not _explicitly_off(args) or xyz_overrides(p):
                p.extra_generation_params[ERROR_KEY] = f"A-STAR is off for this job: {e}"
                print(f"A-STAR: invalid arguments, A-STAR is off for this job: {e}")
            return
        if not params.enabled:
            return
        if layout is not None and any(r.mask is not None for r in layout.regions):
            params = dataclasses.replace(params, layout=layout.to_text())  # masks as compact 1-bit PNGs
        p.extra_generation_params.update(P.to_infotext(params))
        state = GenerationState(params, items, layout)
        p.astar_state = state
        setting = _opt("astar_map_level", DEFAULT_MAP_LEVEL)
        try:
            state.level = parse_map_level(setting)
        except ValueError as e:
            p.extra_generation_params[MAPS_KEY] = str(setting)
            state.skip(f"setting astar_map_level: {e}")
            return
        if state.level != MAP_LEVELS[DEFAULT_MAP_LEVEL]:
            p.extra_generation_params[MAPS_KEY] = level_name(state.level)
        if not items:
            state.skip("no concepts given")
            return
        reason = current_host().refusal(shared, p)
        if reason:
            state.skip(reason)

    def before_process_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        state = getattr(p, "astar_state", None)
        if state is None:
            return
        for run in state.runs:
            run.detach()
        state.runs = []
        state.warnings = []
        state.layers = None
        for key in SUMMARY_KEYS:
            p.extra_generation_params.pop(key, None)

    def process_before_every_sampling(self, p: Any, *args: Any, **kwargs: Any) -> None:
        state = getattr(p, "astar_state", None)
        if state is None:
            return
        state.sampling_seen = True
        if state.skipped:
            return
        is_hr = bool(getattr(p, "is_hr_pass", False))
        if is_hr and not state.params.hires:
            return
        label = "hires pass" if is_hr else "first pass"
        sampler = getattr(p, "sampler", None)
        plan = plan_for(getattr(sampler, "func", None)) if sampler is not None else "no sampler"
        if isinstance(plan, str):
            state.skip(plan if not is_hr else f"{label}: {plan}")
            return
        sd_model = shared.sd_model
        host = current_host()
        reason = host.model_refusal(sd_model)
        if reason:
            state.skip(reason)
            return
        unet = host.unet(sd_model)
        choice = host.layer_choice(sd_model, _opt("astar_layers", "automatic"))
        try:
            layers = select_layers(unet, state.level, choice)
            all_layers = select_layers(unet, state.level, "all")
        except (CaptureError, ValueError) as e:
            state.skip(f"{label}: {e}")
            return
        options = engine_options(sd_model)
        try:
            concepts = self._concepts(p, state, sd_model, is_hr, options.normalize_eot)
        except Exception as e:  # noqa: BLE001 - a tokenizer failure must not stop the generation
            state.skip(f"{label}: could not read the prompt's tokens: {e}")
            return
        if not concepts.found_any:
            for w in concepts.warnings():
                state.warn(w)
            state.skip("none of the concepts is in the prompt")
            return
        run = PassRun(
            params=state.params, plan=plan, concepts=concepts, unet=unet,
            reconstruct=prompt_parser.reconstruct_multicond_batch, current_model=lambda: shared.sd_model,
            should_stop=lambda: bool(shared.state.interrupted or shared.state.skipped),
            options=options, level=state.level, layers=layers, label=label, layout=state.layout,
            **host.run_options(shared, sd_model),
        )
        if len(layers) < len(all_layers):
            state.layers = f"{choice}, {len(layers)} of the {len(all_layers)} {level_name(state.level)} layers"
        run.attach(sampler)
        state.runs.append(run)

    def _concepts(self, p: Any, state: GenerationState, sd_model: Any, is_hr: bool,
                  normalize_eot: bool) -> PassConcepts:
        prompts = list(p.hr_prompts if is_hr else p.prompts)
        steps = int(getattr(p, "firstpass_steps", None) or p.steps)
        hires_steps = None
        if is_hr:
            config = sd_samplers.find_sampler_config(getattr(p, "hr_sampler_name", None) or p.sampler_name)
            n = getattr(p, "hr_second_pass_steps", 0) or p.steps
            hires_steps = config.total_steps(n) if config is not None else n
        return PassConcepts(
            state.items, prompts, prompt_parser, steps, current_host().tokenizer(sd_model), hires_steps=hires_steps,
            use_old_scheduling=bool(_opt("use_old_scheduling", False)),
            normalize_eot=normalize_eot,
        )

    def postprocess_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        state = getattr(p, "astar_state", None)
        if state is None:
            return
        for run in state.runs:
            run.detach()
            for w in run.concepts.warnings():
                state.warn(w)
        if not state.sampling_seen and not state.skipped:
            state.skip("this WebUI has no process_before_every_sampling hook: A-STAR needs WebUI 1.10 or newer")
        write_summary(p.extra_generation_params, state)
        if state.params.heatmaps:
            batch = int(kwargs.get("batch_number", getattr(p, "iteration", 0)) or 0)
            first_pass = next((run for run in state.runs if run.label == "first pass"), None)
            run = first_pass or (state.runs[0] if state.runs else None)
            for i in range(run.concepts.num_images if run is not None else 0):
                data = run.heatmap_data(i)
                if data is not None:
                    data["title"] = f"A-STAR: image {batch * p.batch_size + i + 1}, {run.label}"
                    state.heatmaps.append((batch * p.batch_size + i, data))

    def postprocess(self, p: Any, processed: Any, *args: Any) -> None:
        state = getattr(p, "astar_state", None)
        if state is None:
            return
        for run in state.runs:
            run.detach()
        if state.heatmaps:
            append_heatmaps(processed, state.heatmaps)
        state.heatmaps = []


def append_heatmaps(processed: Any, entries: list[tuple[int, dict]]) -> None:
    """Add a heatmap picture per image after the outputs, each with an infotext entry (so that the
    gallery's info panel and Save work); they are not saved as outputs."""
    from ..heatmaps import render

    first = int(getattr(processed, "index_of_first_image", 0) or 0)
    outputs = list(processed.images)
    for index, data in entries:
        position = first + index
        if position >= len(outputs):
            continue
        image = outputs[position]
        picture = render(image, data["maps"], data["steps"], data["losses"], data["window_end"], data["title"],
                         regions=data.get("regions"))
        processed.images.append(picture)
        source = ""
        infotexts = getattr(processed, "infotexts", None)
        if infotexts is not None and position < len(infotexts):
            source = infotexts[position]
        text = source + (", " if source else "") + f"A-STAR heatmap: {data['title']}"
        if infotexts is not None:
            infotexts.append(text)
        if _opt("enable_pnginfo", True):
            # like the WebUI's own outputs: the API's PNG and PNG Info then carry the text too
            picture.info["parameters"] = text


def write_summary(extra: dict, state: GenerationState) -> None:
    """Infotext keys that say what A-STAR did in this batch (all start with ``A-STAR``)."""
    for key in SUMMARY_KEYS:
        extra.pop(key, None)
    errors = [run.error for run in state.runs if run.error]
    if errors:
        extra[ERROR_KEY] = "; ".join(errors)
    if state.skipped:
        extra["A-STAR skipped"] = "; ".join(state.skipped)
    if state.warnings:
        extra["A-STAR warnings"] = "; ".join(state.warnings)
    notes = [n for run in state.runs for n in run.notes + run.skipped_updates]
    if notes:
        extra["A-STAR notes"] = "; ".join(notes)
    if not state.runs:
        return
    for run in state.runs:
        before, after = run.overlap_before_after()
        if before is not None:
            key = "A-STAR hires overlap" if run.label == "hires pass" else "A-STAR overlap"
            extra[key] = f"{before:.3f} -> {after:.3f}" if after is not None else f"{before:.3f}"
    if state.layers:
        extra["A-STAR layers"] = state.layers
    first = next((run for run in state.runs if run.label != "hires pass"), None)
    if first is not None:
        pairs = [f"{label} {_num(b)} -> {_num(a)}" for label, b, a in first.pair_overlaps() if b is not None]
        if len(pairs) > 1:  # with one pair, "A-STAR overlap" says it all
            extra["A-STAR pairs"] = "; ".join(pairs)
        ious = [f"{label} {_num(v)}" for label, v in first.retention_iou() if v is not None]
        if ious:
            extra["A-STAR retention IoU"] = ", ".join(ious)
        fits = [f"{label} {v:.2f}" for label, v in first.layout_fit() if v is not None]
        if fits:
            extra["A-STAR layout fit"] = ", ".join(fits)
            if first.options.layout_loss != LAYOUT_LOSSES[0]:
                extra[LAYOUT_LOSS_KEY] = first.options.layout_loss
    extra["A-STAR passes"] = sum(run.passes for run in state.runs)
    extra["A-STAR time"] = f"{sum(run.seconds for run in state.runs):.2f} s"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


# --- callbacks: settings, XYZ plot, reload --------------------------------------------------------------
def on_ui_settings() -> None:
    section = SETTINGS_SECTION
    for f in P.FIELDS:
        if f.minimum is None:
            continue
        shared.opts.add_option(f"astar_default_{f.name}", shared.OptionInfo(
            f.default, f"Default {f.label.lower()}", gr.Slider,
            {"minimum": f.minimum, "maximum": f.maximum, "step": f.step}, section=section))
    shared.opts.add_option("astar_mask_method", shared.OptionInfo(
        "threshold", "Retention mask: threshold the min-max normalised map, or Otsu's threshold", gr.Radio,
        {"choices": list(MASK_METHODS)}, section=section))
    shared.opts.add_option("astar_layout_loss", shared.OptionInfo(
        LAYOUT_LOSSES[0], "Layout: what holds a concept to its box (share: the share of its attention outside the "
                          "box; eq3: the paper's Eq. 3 with the box as the mask, which moves objects less)",
        gr.Radio, {"choices": list(LAYOUT_LOSSES)}, section=section, infotext=LAYOUT_LOSS_KEY))
    shared.opts.add_option("astar_eot_rule", shared.OptionInfo(
        "automatic", "EOT and padding in the x100 re-normalisation (automatic: kept on SD 1.x, excluded on SD 2.x "
                     "and SDXL)",
        gr.Radio, {"choices": list(EOT_RULES)}, section=section))
    shared.opts.add_option("astar_map_level", shared.OptionInfo(
        DEFAULT_MAP_LEVEL, "Attention map resolution (image/32: the paper's, 16x16 maps at 512 px; image/16: finer, "
                           "4x the map cells, for small images and layouts)", gr.Radio,
        {"choices": list(MAP_LEVELS)}, section=section, infotext=MAPS_KEY))
    automatic = current_host().layer_defaults_text
    shared.opts.add_option("astar_layers", shared.OptionInfo(
        "automatic", "Cross-attention layers at that resolution whose maps A-STAR uses (automatic: " + automatic
        + "; down = encoder, mid = middle block, up = decoder)", gr.Radio, {"choices": list(LAYER_SETTINGS)},
        section=section))
    shared.opts.add_option("astar_early_exit", shared.OptionInfo(
        True, "Stop the loss pass after the last attention layer it needs", section=section))


def _xyz_module() -> Any:
    for data in scripts.scripts_data:
        if data.script_class.__module__ in ("xyz_grid.py", "xyz_grid"):
            return data.module
    return None


def on_before_ui() -> None:
    """Add ``[A-STAR] <field>`` axes (numeric fields and the concepts) to the XYZ plot."""
    xyz = _xyz_module()
    if xyz is None:
        return
    known = {getattr(o, "label", None) for o in xyz.axis_options}
    for f in P.FIELDS:
        if f.type is bool:
            continue
        label = f"[A-STAR] {f.label}"
        if label in known:
            continue

        def apply(p, x, xs, name=f.name):
            setattr(p, f"astar_{name}", x)

        # the default format ("label: value") is the same everywhere; Forge Classic's xyz_grid.py does not have
        # the WebUI's format_value_add_label in its namespace (it lives in its lib_xyz/axis_format.py)
        xyz.axis_options.append(xyz.AxisOption(label, f.type, apply))


def on_script_unloaded() -> None:
    detach_all()
    remove_all()


CALLBACKS = (
    ("on_ui_settings", on_ui_settings),
    ("on_before_ui", on_before_ui),
    ("on_script_unloaded", on_script_unloaded),
    ("on_app_started", add_token_route),
)


def register_callbacks() -> None:
    """Register the module-level callbacks once (idempotent: a script reload does not duplicate them)."""
    for name, fn in CALLBACKS:
        script_callbacks.remove_callbacks_for_function(fn)
        getattr(script_callbacks, name)(fn)
