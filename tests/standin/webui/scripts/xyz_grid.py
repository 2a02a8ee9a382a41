"""STAND-IN of the WebUI 1.10.1 script ``scripts/xyz_grid.py`` ("X/Y/Z plot").

Loaded like a WebUI script file (module name ``"xyz_grid.py"``), so an extension finds it as in the WebUI:
``[x for x in scripts.scripts_data if x.script_class.__module__ == "xyz_grid.py"][0].module``. Provides
``AxisOption(label, type, apply, format_value=format_value_add_label, confirm=None, cost=0.0, choices=None,
prepare=None)``, ``AxisOptionTxt2Img``, ``AxisOptionImg2Img``, ``axis_options`` (the WebUI's options that need no
external models), ``apply_field``, ``apply_override``, ``apply_prompt``, ``format_value``,
``format_value_add_label``, ``format_nothing``, ``do_nothing``, ``boolean_choice`` and a selectable ``Script`` whose
``ui`` returns the WebUI's 18 controls. ``run`` parses the axis values (comma-separated; int ranges ``a-b`` and
``a-b (step)``; dropdown values for options with ``choices``), calls ``confirm``, then processes every cell like
the WebUI's ``cell``: a shallow ``copy(p)`` per cell, ``styles`` copied, each axis' ``apply(pc, value, values)``,
``process_images(pc)`` (errors displayed, an empty ``Processed`` returned). Grid drawing is a plain image grid (no
legends, sub-grids or seed variation); ``processed.xyz_cells`` lists ``((x, y, z), Processed)`` per cell.
``run_grid(p, axes)`` runs the same cells for ``axes = [(AxisOption, [values...]), ...]`` without the UI.
"""

import itertools
import re
from copy import copy

import gradio as gr
import modules.scripts as scripts
from modules import errors, images, processing, sd_models, sd_samplers, sd_schedulers
from modules.processing import Processed, process_images
from modules.shared import opts


def apply_field(field):
    def fun(p, x, xs):
        setattr(p, field, x)

    return fun


def apply_prompt(p, x, xs):
    if xs[0] not in p.prompt and xs[0] not in p.negative_prompt:
        raise RuntimeError(f"Prompt S/R did not find {xs[0]} in prompt or negative prompt.")
    p.prompt = p.prompt.replace(xs[0], x)
    p.negative_prompt = p.negative_prompt.replace(xs[0], x)


def confirm_samplers(p, xs):
    for x in xs:
        if x.lower() not in sd_samplers.samplers_map:
            raise RuntimeError(f"Unknown sampler: {x}")


def apply_checkpoint(p, x, xs):
    info = sd_models.get_closet_checkpoint_match(x)
    if info is None:
        raise RuntimeError(f"Unknown checkpoint: {x}")
    p.override_settings['sd_model_checkpoint'] = info.name


def confirm_checkpoints_or_none(p, xs):
    for x in xs:
        if x not in (None, "", "None", "none") and sd_models.get_closet_checkpoint_match(x) is None:
            raise RuntimeError(f"Unknown checkpoint: {x}")


def apply_override(field, boolean: bool = False):
    def fun(p, x, xs):
        if boolean:
            x = x.lower() == "true"
        p.override_settings[field] = x

    return fun


def boolean_choice(reverse: bool = False):
    def choice():
        return ["False", "True"] if reverse else ["True", "False"]

    return choice


def format_value_add_label(p, opt, x):
    if type(x) is float:
        x = round(x, 8)
    return f"{opt.label}: {x}"


def format_value(p, opt, x):
    if type(x) is float:
        x = round(x, 8)
    return x


def format_value_join_list(p, opt, x):
    return ", ".join(x)


def do_nothing(p, x, xs):
    pass


def format_nothing(p, opt, x):
    return ""


class AxisOption:
    def __init__(self, label, type, apply, format_value=format_value_add_label, confirm=None, cost=0.0, choices=None,
                 prepare=None):
        self.label = label
        self.type = type
        self.apply = apply
        self.format_value = format_value
        self.confirm = confirm
        self.cost = cost
        self.prepare = prepare
        self.choices = choices


class AxisOptionImg2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = True


class AxisOptionTxt2Img(AxisOption):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_img2img = False


axis_options = [
    AxisOption("Nothing", str, do_nothing, format_value=format_nothing),
    AxisOption("Seed", int, apply_field("seed")),
    AxisOption("Var. seed", int, apply_field("subseed")),
    AxisOption("Var. strength", float, apply_field("subseed_strength")),
    AxisOption("Steps", int, apply_field("steps")),
    AxisOptionTxt2Img("Hires steps", int, apply_field("hr_second_pass_steps")),
    AxisOption("CFG Scale", float, apply_field("cfg_scale")),
    AxisOptionImg2Img("Image CFG Scale", float, apply_field("image_cfg_scale")),
    AxisOption("Prompt S/R", str, apply_prompt, format_value=format_value),
    AxisOptionTxt2Img("Sampler", str, apply_field("sampler_name"), format_value=format_value, confirm=confirm_samplers,
                      choices=lambda: [x.name for x in sd_samplers.samplers if x.name not in opts.hide_samplers]),
    AxisOptionTxt2Img("Hires sampler", str, apply_field("hr_sampler_name"), confirm=confirm_samplers,
                      choices=lambda: [x.name for x in sd_samplers.samplers_for_img2img
                                       if x.name not in opts.hide_samplers]),
    AxisOptionImg2Img("Sampler", str, apply_field("sampler_name"), format_value=format_value, confirm=confirm_samplers,
                      choices=lambda: [x.name for x in sd_samplers.samplers_for_img2img
                                       if x.name not in opts.hide_samplers]),
    AxisOption("Checkpoint name", str, apply_checkpoint, format_value=format_value, cost=1.0,
               choices=lambda: sorted(sd_models.checkpoints_list, key=str.casefold)),
    AxisOption("Negative Guidance minimum sigma", float, apply_field("s_min_uncond")),
    AxisOption("Sigma Churn", float, apply_field("s_churn")),
    AxisOption("Sigma min", float, apply_field("s_tmin")),
    AxisOption("Sigma max", float, apply_field("s_tmax")),
    AxisOption("Sigma noise", float, apply_field("s_noise")),
    AxisOption("Schedule type", str, apply_field("scheduler"),
               choices=lambda: [x.label for x in sd_schedulers.schedulers]),
    AxisOption("Schedule min sigma", float, apply_override("sigma_min")),
    AxisOption("Schedule max sigma", float, apply_override("sigma_max")),
    AxisOption("Schedule rho", float, apply_override("rho")),
    AxisOption("Eta", float, apply_field("eta")),
    AxisOption("Clip skip", int, apply_override('CLIP_stop_at_last_layers')),
    AxisOption("Denoising", float, apply_field("denoising_strength")),
    AxisOption("Initial noise multiplier", float, apply_field("initial_noise_multiplier")),
    AxisOption("Extra noise", float, apply_override("img2img_extra_noise")),
    AxisOption("Always discard next-to-last sigma", str,
               apply_override('always_discard_next_to_last_sigma', boolean=True), choices=boolean_choice(reverse=True)),
    AxisOption("SGM noise multiplier", str, apply_override('sgm_noise_multiplier', boolean=True),
               choices=boolean_choice(reverse=True)),
    AxisOption("Refiner checkpoint", str, apply_field('refiner_checkpoint'), format_value=format_value,
               confirm=confirm_checkpoints_or_none, cost=1.0,
               choices=lambda: ['None'] + sorted(sd_models.checkpoints_list, key=str.casefold)),
    AxisOption("Refiner switch at", float, apply_field('refiner_switch_at')),
]

_INT_RANGE = re.compile(r"\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*")


def _parse_values(opt, text, dropdown, csv_mode):
    if opt.label == 'Nothing':
        return [0]
    if opt.choices is not None and not csv_mode:
        values = list(dropdown or [])
    elif opt.prepare is not None:
        values = opt.prepare(text)
    else:
        values = [v.strip() for v in str(text or "").split(",") if v.strip()]

    if opt.type is int:
        expanded = []
        for v in values:
            m = _INT_RANGE.fullmatch(v) if isinstance(v, str) else None
            if m:
                step = int(m.group(3)) if m.group(3) else 1
                expanded += list(range(int(m.group(1)), int(m.group(2)) + 1, step))
            else:
                expanded.append(v)
        values = expanded

    values = [opt.type(v) for v in values]
    if opt.confirm:
        opt.confirm(None, values)
    return values


def run_grid(p, axes):
    """Runs ``process_images`` on a ``copy(p)`` per cell of the cartesian product of ``axes`` (first axis fastest).

    ``axes``: ``[(AxisOption, [values...]), ...]``; returns ``[((value per axis...), Processed), ...]``.
    """
    from modules import shared

    results = []
    for combo in itertools.product(*[values for _, values in reversed(axes)]):
        combo = tuple(reversed(combo))
        if shared.state.interrupted or shared.state.stopping_generation:
            results.append((combo, Processed(p, [], p.seed, "")))
            continue
        pc = copy(p)
        pc.styles = pc.styles[:]
        for (opt, values), value in zip(axes, combo):
            opt.apply(pc, value, values)
        try:
            res = process_images(pc)
        except Exception as e:
            errors.display(e, "generating image for xyz plot")
            res = Processed(p, [], p.seed, "")
        results.append((combo, res))
    return results


class Script(scripts.Script):
    def title(self):
        return "X/Y/Z plot"

    def ui(self, is_img2img):
        self.current_axis_options = [x for x in axis_options if type(x) is AxisOption or x.is_img2img == is_img2img]
        labels = [x.label for x in self.current_axis_options]

        controls = []
        for axis, default in (("x", 1), ("y", 0), ("z", 0)):
            controls += [
                gr.Dropdown(label=f"{axis.upper()} type", choices=labels, value=labels[default], type="index",
                            elem_id=self.elem_id(f"{axis}_type")),
                gr.Textbox(label=f"{axis.upper()} values", lines=1, elem_id=self.elem_id(f"{axis}_values")),
                gr.Dropdown(label=f"{axis.upper()} values", visible=False, multiselect=True, interactive=True),
            ]
        checkbox = [("Draw legend", True, "draw_legend"), ("Include Sub Images", False, "include_lone_images"),
                    ("Include Sub Grids", False, "include_sub_grids"), ("Keep -1 for seeds", False, "no_fixed_seeds"),
                    ("Vary seeds for X", False, "vary_seeds_x"), ("Vary seeds for Y", False, "vary_seeds_y"),
                    ("Vary seeds for Z", False, "vary_seeds_z")]
        controls += [gr.Checkbox(label=label, value=value, elem_id=self.elem_id(name))
                     for label, value, name in checkbox]
        controls += [
            gr.Slider(label="Grid margins (px)", minimum=0, maximum=500, value=0, step=2,
                      elem_id=self.elem_id("margin_size")),
            gr.Checkbox(label='Use text inputs instead of dropdowns', value=False, elem_id=self.elem_id("csv_mode")),
        ]
        return controls  # in run()'s argument order, as in the WebUI

    def run(self, p, x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown, z_type, z_values,
            z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, vary_seeds_x,
            vary_seeds_y, vary_seeds_z, margin_size, csv_mode):
        if not no_fixed_seeds:
            processing.fix_seed(p)
        if not opts.return_grid:
            p.batch_size = 1

        axes = []
        for type_index, text, dropdown in ((x_type, x_values, x_values_dropdown), (y_type, y_values, y_values_dropdown),
                                           (z_type, z_values, z_values_dropdown)):
            opt = self.current_axis_options[type_index or 0]
            axes.append((opt, _parse_values(opt, text, dropdown, csv_mode)))

        cells = run_grid(p, axes)
        cell_images = [res.images[0] for _, res in cells if res.images]
        if not cell_images:
            return Processed(p, [])

        grid = images.image_grid(cell_images, rows=len(axes[1][1]) * len(axes[2][1]))
        first = next(res for _, res in cells if res.images)
        image_list = [grid] + (cell_images if include_lone_images else [])
        infotexts = [first.infotexts[0]] + ([res.infotexts[0] for _, res in cells if res.images]
                                            if include_lone_images else [])
        processed = Processed(p, image_list, first.seed, first.info, infotexts=infotexts)
        processed.xyz_cells = cells
        return processed
