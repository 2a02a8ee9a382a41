"""The ``webui`` pytest fixture: installs the stand-in WebUI 1.10.1 (``tests/standin/webui/modules``) for one test.

Usage (the fixture is registered in ``tests/conftest.py``)::

    def test_something(webui):
        from astar_ext.webui import script as ext          # import adapter code INSIDE the test
        run = webui.run_txt2img([ext.AStarScript], args=[True, "cat, dog"], prompt="a cat and a dog",
                                sampler_name="Euler", steps=4, width=256, height=256, seed=1)
        processed, calls = run                             # Processed, [HookCall(hook, script, args, kwargs, ...)]

What the fixture does: puts ``tests/standin/webui`` first on ``sys.path``, removes ``modules``/``modules.*`` (and
``astar_ext.webui*``) from ``sys.modules``, imports the stand-ins, builds ``shared.sd_model`` around the session
``TinyLDM`` (``StandinLatentDiffusion``, registered as checkpoint ``tiny-sd1.safetensors``); afterwards it restores
``sys.path`` (its own entries), ``sys.modules``, ``k_diffusion.sampling.torch`` (the WebUI's ``TorchHijack``) and
ldm's ``openaimodel.th`` (the WebUI's resizing ``cat``, ``modules/sd_hijack_unet.py``).

``webui.start(*scripts)`` reproduces start-up: ``load_scripts`` (the stand-in ``xyz_grid.py`` plus script files
given as paths), the classes given directly are added to ``scripts_data``, then ``model_loaded``, ``before_ui`` and
``ui_settings`` callbacks, the txt2img and img2img ``ScriptRunner`` s with their UI built in ``gr.Blocks``
(``args_from``/``args_to``, paste fields), and ``app_started``. ``run_txt2img``/``run_img2img``/``run_xyz`` start
it on demand (again whenever the script set changes), build ``p`` like the UI (``txt2img_create_processing``: UI
default values, ``p.script_args`` a tuple, ``runner.run`` then ``process_images``, ``p.close()``) or, with
``api=True``, like ``text2imgapi`` (``init_default_script_args`` + ``init_script_args``, ``p.is_api = True``), and
record every dispatched always-on hook call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import inspect
import os
import sys
from typing import Any

import pytest

STANDIN_ROOT = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(STANDIN_ROOT)))
XYZ_PATH = os.path.join(STANDIN_ROOT, "scripts", "xyz_grid.py")

MODULE_NAMES = (
    "paths", "errors", "devices", "options", "shared_state", "shared", "script_callbacks", "ui_components",
    "api.models", "api.api", "scripts", "prompt_parser", "extra_networks", "rng", "sd_unet", "sd_hijack_unet",
    "lowvram", "sd_vae",
    "images", "sd_models", "sd_schedulers", "sd_samplers_common", "sd_samplers_cfg_denoiser", "sd_samplers_extra",
    "sd_samplers_kdiffusion", "sd_samplers_timesteps_impl", "sd_samplers_timesteps", "sd_samplers_lcm",
    "sd_samplers", "processing", "infotext_utils",
)

HOOKS = (
    "setup", "before_process", "process", "before_process_batch", "after_extra_networks_activate", "process_batch",
    "process_before_every_sampling", "before_hr", "post_sample", "on_mask_blend", "postprocess_batch",
    "postprocess_batch_list", "postprocess_image", "postprocess_maskoverlay", "postprocess_image_after_composite",
    "postprocess",
)

DEFAULTS = dict(prompt="", negative_prompt="", steps=4, cfg_scale=7.0, sampler_name="Euler", scheduler="Automatic",
                width=256, height=256,
                seed=1, batch_size=1, n_iter=1)
"""Processing arguments the harness uses unless a test passes others (the WebUI UI defaults are 20 steps of
"DPM++ 2M" at 512x512; these keep CPU tests fast: 256 px = a 32x32 latent)."""

UI_TXT2IMG_DEFAULTS = dict(denoising_strength=0.7, hr_scale=2.0, hr_upscaler="Latent")
"""Where the txt2img UI's controls default to other values than the processing dataclass (the API's defaults)."""

_tiny_by_seed: dict = {}
_tiny_sdxl: dict = {}


def tiny_sdxl(seed=0, ssd=False):
    """The session's tiny model with the SDXL block layout (``astar_ext.bench.tiny.sdxl_config``), one per seed;
    ``ssd``: another one, with the blocks of SSD-1B deleted (``astar_ext.bench.tiny.ssd_layout``)."""
    from astar_ext.bench.tiny import TinyLDM, sdxl_config, ssd_layout

    if (seed, ssd) not in _tiny_sdxl:
        model = TinyLDM(sdxl_config(seed=seed))
        if ssd:
            ssd_layout(model.diffusion_model)
        _tiny_sdxl[seed, ssd] = model
    return _tiny_sdxl[seed, ssd]


@dataclasses.dataclass
class HookCall:
    """One dispatched ``Script`` hook: ``args`` are the positional arguments after ``p`` (including leading objects
    such as ``pp``/``processed``), ``kwargs`` the keyword arguments (e.g. ``x``/``noise``/``c``/``uc``)."""

    hook: str
    script: Any
    args: tuple
    kwargs: dict
    is_hr_pass: bool
    iteration: int | None


@dataclasses.dataclass
class Run:
    processed: Any
    calls: list[HookCall]
    p: Any
    runner: Any
    script_args: tuple

    def __iter__(self):
        return iter((self.processed, self.calls))

    def hooks(self, script=None) -> list[str]:
        """Hook names in call order (of one script instance or class, if given)."""
        return [c.hook for c in self.calls
                if script is None or c.script is script or (inspect.isclass(script) and isinstance(c.script, script))]


def _submitted_value(component):
    """The value the gradio UI submits for ``component`` at its default (``type="index"`` -> the index)."""
    value = getattr(component, "value", None)
    if getattr(component, "type", None) == "index" and hasattr(component, "choices"):
        choices = [c[0] if isinstance(c, tuple) else c for c in component.choices]
        return choices.index(value) if value in choices else None
    return value


class WebUI:
    """Handle on the installed stand-in WebUI; ``webui.<module>`` gives the stand-in ``modules.<module>``."""

    purge_prefixes = ("modules", "astar_ext.webui")
    xyz_path = XYZ_PATH

    def __init__(self, tiny):
        self.tiny = tiny
        self.calls: list[HookCall] = []
        self.xyz = None
        self._started = None
        self._installed = False

    # installation -----------------------------------------------------------------------------------------------
    def _purged(self, name):
        return any(name == prefix or name.startswith(prefix + ".") for prefix in self.purge_prefixes)

    def install(self):
        import k_diffusion.sampling

        self._saved_modules = {k: sys.modules.pop(k) for k in list(sys.modules) if self._purged(k)}
        self._kd_torch = k_diffusion.sampling.torch
        self._added_paths = [STANDIN_ROOT] + ([REPO_ROOT] if REPO_ROOT not in sys.path else [])
        sys.path[:0] = self._added_paths
        self._installed = True

        for name in MODULE_NAMES:
            setattr(self, name.replace("api.", "api_"), importlib.import_module(f"modules.{name}"))
        self.sd_hijack_unet.install()

        self.sd_model = self.make_model("sd1")
        self.shared.sd_model = self.sd_model
        self.shared.opts.data["sd_model_checkpoint"] = self.sd_model.sd_checkpoint_info.title
        return self

    def uninstall(self):
        if not self._installed:
            return
        import k_diffusion.sampling

        k_diffusion.sampling.torch = self._kd_torch
        self.sd_hijack_unet.uninstall()
        for name in list(sys.modules):
            if self._purged(name):
                del sys.modules[name]
        sys.modules.update(self._saved_modules)
        for path in self._added_paths:
            if path in sys.path:
                sys.path.remove(path)
        self._installed = False

    def import_module(self, name):
        return importlib.import_module(name)

    # models -----------------------------------------------------------------------------------------------------
    def make_model(self, variant="sd1", *, name=None, tiny=None, embeddings=None, use=False):
        """A registered stand-in model: ``"sd1"``, ``"sd2"`` (v-prediction), ``"sd2-base"`` (SD 2.x 512-base, eps),
        ``"sdxl"`` (the tiny SDXL layout, two text encoders, ``vector``) or ``"ssd"`` (SSD-1B: SDXL minus the blocks
        the WebUI's ``convert_sdxl_to_ssd`` deletes; a model of its own, the session's SDXL model is left whole).

        ``use=True`` loads it (``use_model``). Assigning ``shared.sd_model`` directly is undone by the next
        ``process_images``, which (re)loads ``opts.sd_model_checkpoint`` as the WebUI does.
        ``embeddings``: ``tests.standin.prompt.Embedding`` s known to its tokenizer (placeholder ids 0)."""
        from tests.standin.webui.model import StandinLatentDiffusion

        if tiny is None and variant in ("sdxl", "ssd"):
            tiny = tiny_sdxl(0, ssd=variant == "ssd")
        model = StandinLatentDiffusion(tiny or self.tiny, variant=variant, embeddings=embeddings)
        model.lowvram = self.shared.cmd_opts.lowvram or self.shared.cmd_opts.medvram
        info = self.sd_models.CheckpointInfo(name or f"tiny-{variant}.safetensors")
        self.sd_models.register_model(model, info)
        if use:
            self.use_model(model)
        return model

    def use_model(self, model):
        """Loads ``model`` as the WebUI would when the checkpoint is selected (``model_loaded`` callbacks run)."""
        self.shared.opts.data["sd_model_checkpoint"] = model.sd_checkpoint_info.title
        return self.sd_models.reload_model_weights(info=model.sd_checkpoint_info)

    def add_refiner(self, seed=1, variant="sd1"):
        """A second model (a ``TinyLDM`` with other weights) registered as ``tiny-refiner.safetensors``; pass its
        ``sd_checkpoint_info.title`` as ``refiner_checkpoint``. ``variant="sdxl"``: a tiny SDXL-layout model."""
        from astar_ext.bench.tiny import TinyConfig, TinyLDM

        if variant == "sdxl":
            return self.make_model("sdxl", name="tiny-refiner.safetensors", tiny=tiny_sdxl(seed))
        if seed not in _tiny_by_seed:
            _tiny_by_seed[seed] = TinyLDM(TinyConfig(seed=seed))
        return self.make_model("sd1", name="tiny-refiner.safetensors", tiny=_tiny_by_seed[seed])

    # scripts ----------------------------------------------------------------------------------------------------
    def load_script(self, path):
        """Executes an extension script file like ``load_scripts`` (module named after the file, its extension root
        on ``sys.path`` and as ``scripts.basedir()`` during the import) and registers its ``Script`` classes."""
        path = os.path.abspath(path)
        parent = os.path.dirname(path)
        root = os.path.dirname(parent) if os.path.basename(parent) == "scripts" else parent
        if root not in self.script_callbacks.extension_dirs:
            self.script_callbacks.extension_dirs.append(root)
        return self.scripts.load_script_file(path, root)

    def start(self, *scripts, with_xyz=True, builtin_scripts=True):
        """WebUI start-up with the given ``Script`` classes and/or script file paths; returns the txt2img runner.

        ``builtin_scripts=False`` leaves out the built-in Sampler/Refiner/Seed/Comments scripts (then the first
        always-on script gets ``args_from == 1`` and ``steps``/``sampler_name``/``seed`` go straight to ``p``).
        """
        from fastapi import FastAPI

        sc = self.scripts
        sc.include_builtin_scripts = builtin_scripts
        sc.script_classes[:] = [item for item in scripts if inspect.isclass(item)]
        files = [sc.ScriptFile(self.paths.script_path, "xyz_grid.py", self.xyz_path)] if with_xyz else []
        for item in scripts:
            if isinstance(item, (str, os.PathLike)):
                path = os.path.abspath(item)
                parent = os.path.dirname(path)
                root = os.path.dirname(parent) if os.path.basename(parent) == "scripts" else parent
                self.script_callbacks.extension_dirs.append(root)
                files.append(sc.ScriptFile(root, os.path.basename(path), path))
        sc.script_files[:] = files
        sc.load_scripts()

        self.xyz = next((d.module for d in sc.scripts_data if d.script_class.__module__ == "xyz_grid.py"), None)

        self.script_callbacks.model_loaded_callback(self.shared.sd_model)
        self.script_callbacks.before_ui_callback()
        self.script_callbacks.ui_settings_callback()

        for is_img2img in (False, True):
            runner = sc.scripts_img2img if is_img2img else sc.scripts_txt2img
            sc.scripts_current = runner
            runner.initialize_scripts(is_img2img=is_img2img)
            runner.build_ui()
            self._instrument(runner)
        sc.scripts_current = None

        self.script_callbacks.app_started_callback(sc.scripts_txt2img.demo, FastAPI())
        self._started = tuple(scripts)
        return sc.scripts_txt2img

    def _instrument(self, runner):
        base = self.scripts.Script
        for script in runner.alwayson_scripts:
            for hook in HOOKS:
                if getattr(type(script), hook, None) is getattr(base, hook, None):
                    continue
                setattr(script, hook, self._recorder(hook, script, getattr(script, hook)))

    def _recorder(self, hook, script, original):
        @functools.wraps(original)
        def record(p, *args, **kwargs):
            self.calls.append(HookCall(hook, script, args, dict(kwargs), bool(getattr(p, "is_hr_pass", False)),
                                       getattr(p, "iteration", None)))
            return original(p, *args, **kwargs)

        return record

    def script(self, cls_or_title, is_img2img=False):
        """The runner's instance of a script (by class or case-insensitive title)."""
        runner = self.scripts.scripts_img2img if is_img2img else self.scripts.scripts_txt2img
        for s in runner.scripts:
            if (inspect.isclass(cls_or_title) and isinstance(s, cls_or_title)) or \
                    (isinstance(cls_or_title, str) and s.title().lower() == cls_or_title.lower()):
                return s
        raise KeyError(cls_or_title)

    # script arguments -------------------------------------------------------------------------------------------
    def ui_args(self, runner, args=None, values=None):
        """What the UI submits: the dropdown index 0 and every component's default, with ``args`` overwritten."""
        values = list(values) if values is not None else [0] + [_submitted_value(c) for c in runner.inputs[1:]]
        for script, given in self._targets(runner, args):
            for i in range(min(script.args_to - script.args_from, len(given))):
                values[script.args_from + i] = given[i]
        return values

    def api_args(self, runner, alwayson_scripts=None, args=None):
        """``init_default_script_args`` + ``init_script_args`` for ``alwayson_scripts`` (title -> ``{"args": []}``)."""
        request = self.api_models.ScriptRequest(alwayson_scripts=dict(alwayson_scripts or {}))
        for script, given in self._targets(runner, args):
            request.alwayson_scripts[script.title()] = {"args": list(given)}
        defaults = self.api_api.init_default_script_args(runner)
        return self.api_api.init_script_args(request, defaults, None, None, runner)

    def _targets(self, runner, args):
        if args is None:
            return []
        if isinstance(args, dict):
            return [(key if isinstance(key, self.scripts.Script) else self._find(runner, key), given)
                    for key, given in args.items()]
        started = [s for s in (self._started or ()) if inspect.isclass(s)]
        first = next((s for s in runner.alwayson_scripts if started and isinstance(s, started[0])), None)
        first = first or next(s for s in runner.alwayson_scripts
                              if s.args_from is not None and not isinstance(s, self.scripts.ScriptBuiltinUI))
        return [(first, args)]

    def _find(self, runner, key):
        for s in runner.scripts:
            if inspect.isclass(key) and isinstance(s, key):
                return s
            if isinstance(key, str) and s.title().lower() == key.lower():
                return s
        raise KeyError(key)

    # generation -------------------------------------------------------------------------------------------------
    def _ensure_started(self, scripts):
        if scripts is None:
            if self._started is None:
                self.start()
            return
        scripts = tuple(scripts) if isinstance(scripts, (list, tuple)) else (scripts,)
        if self._started != scripts:
            self.start(*scripts)

    def run_txt2img(self, scripts=None, args=None, *, alwayson_scripts=None, script_args=None, api=False, **kwargs):
        """One txt2img generation; ``scripts``: Script classes/paths (a single one or a list); ``args``: the first
        script's arguments (a list; missing trailing ones keep the UI defaults) or ``{class or title: list}``;
        ``script_args``: the complete submitted list; ``kwargs``: ``StableDiffusionProcessingTxt2Img`` fields (in the
        UI path ``steps``/``sampler_name``/``scheduler``/``seed``/``subseed(_strength)``/``seed_resize_from_w/h``/
        ``refiner_checkpoint``/``refiner_switch_at`` are submitted through the built-in scripts' controls)."""
        self._ensure_started(scripts)
        return self._generate(False, args, alwayson_scripts, script_args, api, kwargs)

    def run_img2img(self, scripts=None, args=None, *, alwayson_scripts=None, script_args=None, api=False,
                    init_latent=None, **kwargs):
        """One img2img generation from ``init_images`` (PIL) or ``init_latent`` (``[1 or B, 4, h, w]``)."""
        self._ensure_started(scripts)
        return self._generate(True, args, alwayson_scripts, script_args, api, kwargs, init_latent=init_latent)

    def run_xyz(self, scripts=None, args=None, *, x=None, y=None, z=None, include_lone_images=True, **kwargs):
        """txt2img through the stand-in X/Y/Z plot script: ``x=("Steps", "2,3")`` etc. (values as text)."""
        self._ensure_started(scripts)
        runner = self.scripts.scripts_txt2img
        xyz = next(s for s in runner.selectable_scripts if s.title() == "X/Y/Z plot")
        labels = [o.label for o in xyz.current_axis_options]

        def select_xyz(values):
            values[0] = runner.selectable_scripts.index(xyz) + 1
            for offset, axis in ((0, x), (3, y), (6, z)):
                label, text = axis if axis is not None else ("Nothing", "")
                values[xyz.args_from + offset] = labels.index(label)
                values[xyz.args_from + offset + 1] = text
            values[xyz.args_from + 10] = include_lone_images
            values[xyz.args_to - 1] = True  # csv_mode: read the text values

        return self._generate(False, args, None, None, False, kwargs, edit_values=select_xyz)

    def _builtin_values(self, runner, fields):
        """Moves the fields the built-in scripts own from ``fields`` into their submitted control values."""
        out = {}
        present = {s.title(): s for s in runner.alwayson_scripts if isinstance(s, self.scripts.ScriptBuiltinUI)}
        if "Sampler" in present:
            out[present["Sampler"]] = [fields.pop("steps", 20), fields.pop("sampler_name", None) or "DPM++ 2M",
                                       fields.pop("scheduler", None) or "Automatic"]
        if "Seed" in present:
            seed, subseed = fields.pop("seed", -1), fields.pop("subseed", -1)
            strength = fields.pop("subseed_strength", 0.0)
            w, h = fields.pop("seed_resize_from_w", 0), fields.pop("seed_resize_from_h", 0)
            extra = strength > 0 or (w > 0 and h > 0)
            out[present["Seed"]] = [seed, extra, subseed, strength, max(w, 0), max(h, 0)]
        if "Refiner" in present:
            checkpoint = fields.pop("refiner_checkpoint", None)
            switch_at = fields.pop("refiner_switch_at", None)
            switch_at = 0.8 if switch_at is None else switch_at
            out[present["Refiner"]] = [checkpoint is not None, checkpoint or "", switch_at]
        return out

    def _generate(self, is_img2img, args, alwayson_scripts, script_args, api, kwargs, init_latent=None,
                  edit_values=None):
        sc, processing, shared = self.scripts, self.processing, self.shared
        runner = sc.scripts_img2img if is_img2img else sc.scripts_txt2img
        cls = processing.StableDiffusionProcessingImg2Img if is_img2img else processing.StableDiffusionProcessingTxt2Img
        fields = {**DEFAULTS, **({} if api or is_img2img else UI_TXT2IMG_DEFAULTS), **kwargs}

        if script_args is not None:
            values = list(script_args)
        elif api:
            values = self.api_args(runner, alwayson_scripts, args)
        else:
            builtin = self._builtin_values(runner, fields)
            values = self.ui_args(runner, builtin)
            values = self.ui_args(runner, args, values)
        if edit_values is not None:
            edit_values(values)

        self.calls = []
        shared.state.begin(job="scripts_img2img" if is_img2img else "scripts_txt2img")
        try:
            p = cls(sd_model=shared.sd_model, **fields)
            if init_latent is not None:
                p.init_latent = init_latent
            if api:
                p.is_api = True
            p.scripts = runner
            p.script_args = tuple(values)
            with contextlib.closing(p):
                processed = runner.run(p, *p.script_args)
                if processed is None:
                    processed = processing.process_images(p)
            shared.total_tqdm.clear()
        finally:
            shared.state.end()
        return Run(processed, self.calls, p, runner, tuple(values))

    # infotext ---------------------------------------------------------------------------------------------------
    def paste(self, infotext, tab="txt2img", fields=None):
        """``[(component, gr.update), ...]`` that pasting ``infotext`` into ``tab`` would apply (all paste fields of
        the tab, i.e. the scripts' ``infotext_fields``, unless ``fields`` are given)."""
        fields = fields if fields is not None else self.infotext_utils.paste_fields[tab]["fields"]
        updates = self.infotext_utils.paste_infotext(fields, infotext)
        return [(field[0], update) for field, update in zip(fields, updates)]


@pytest.fixture
def webui(tiny):
    """The stand-in WebUI 1.10.1 (see :class:`WebUI`), installed for one test."""
    handle = WebUI(tiny)
    try:
        yield handle.install()
    finally:
        handle.uninstall()
