"""STAND-IN of ``modules/scripts.py`` of WebUI 1.10.1: ``Script``, ``ScriptRunner``, ``scripts_data``.

What matches the WebUI:

* ``Script`` has the 1.10.1 attributes (``name``, ``section``, ``filename``, ``args_from``, ``args_to``, ``alwayson``,
  ``is_txt2img``, ``is_img2img``, ``tabname``, ``group``, ``create_group``, ``infotext_fields``,
  ``paste_field_names``, ``api_info``, ``setup_for_ui_only``, ``controls`` ...) and every hook with its signature.
* ``ScriptRunner.initialize_scripts`` instantiates every class of ``scripts_data`` for one tab and sorts it into
  ``alwayson_scripts`` / ``selectable_scripts`` by ``show``; ``create_script_ui`` sets ``args_from`` to
  ``len(self.inputs)`` before ``ui()`` and ``args_to`` after (``inputs[0]`` is the selectable-script dropdown),
  collects ``infotext_fields``/``paste_field_names`` and builds ``api_info``; ``setup_ui_for_section`` and
  ``setup_ui`` place the scripts as ``modules/ui.py`` does (``build_ui`` runs the whole tab in ``gr.Blocks()``).
* Every processing dispatcher passes ``p.script_args[args_from:args_to]`` positionally, only to always-on scripts
  whose class overrides the hook, in order, each call in try/except that reports and swallows the error.
* ``load_scripts``/``load_script_file`` execute script files as modules named after the file's base name (not put
  in ``sys.modules``), with the extension root first on ``sys.path`` and as ``basedir()`` during the import; the
  built-in ``modules/processing_scripts`` (Sampler, Refiner, Seed: always-on with UI sections before the scripts
  area, so extension scripts' ``args_from`` is not 1; Comments) are loaded after them, as in the WebUI.

Left out: the auto postprocessing scripts, ``metadata.ini`` ordering, ``reload_sources`` edge cases.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
from collections import namedtuple
from dataclasses import dataclass

import gradio as gr
from modules import errors, paths, script_callbacks, shared

AlwaysVisible = object()


class MaskBlendArgs:
    def __init__(self, current_latent, nmask, init_latent, mask, blended_latent, denoiser=None, sigma=None):
        self.current_latent = current_latent
        self.nmask = nmask
        self.init_latent = init_latent
        self.mask = mask
        self.blended_latent = blended_latent
        self.denoiser = denoiser
        self.is_final_blend = denoiser is None
        self.sigma = sigma


class PostSampleArgs:
    def __init__(self, samples):
        self.samples = samples


class PostprocessImageArgs:
    def __init__(self, image):
        self.image = image


class PostProcessMaskOverlayArgs:
    def __init__(self, index, mask_for_overlay, overlay_image):
        self.index = index
        self.mask_for_overlay = mask_for_overlay
        self.overlay_image = overlay_image


class PostprocessBatchListArgs:
    def __init__(self, images):
        self.images = images


@dataclass
class OnComponent:
    component: gr.blocks.Block


class Script:
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None
    on_before_component_elem_id = None
    on_after_component_elem_id = None
    setup_for_ui_only = False
    controls = None

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def after_extra_networks_activate(self, p, *args, **kwargs):
        pass

    def process_before_every_sampling(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs):
        pass

    def on_mask_blend(self, p, mba: MaskBlendArgs, *args):
        pass

    def post_sample(self, p, ps: PostSampleArgs, *args):
        pass

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs, *args):
        pass

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_component(self, component, **kwargs):
        pass

    def after_component(self, component, **kwargs):
        pass

    def on_before_component(self, callback, *, elem_id):
        if self.on_before_component_elem_id is None:
            self.on_before_component_elem_id = []
        self.on_before_component_elem_id.append((elem_id, callback))

    def on_after_component(self, callback, *, elem_id):
        if self.on_after_component_elem_id is None:
            self.on_after_component_elem_id = []
        self.on_after_component_elem_id.append((elem_id, callback))

    def describe(self):
        return ""

    def elem_id(self, item_id):
        """``script_[<tab>_]<title with spaces as _ and other non [a-z_0-9] removed>_<item_id>``."""
        with_tab = self.show(True) == self.show(False)
        tab = ('img2img' if self.is_img2img else 'txt2img') + "_" if with_tab else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f'script_{tab}{title}_{item_id}'

    def before_hr(self, p, *args):
        pass


class ScriptBuiltinUI(Script):
    setup_for_ui_only = True

    def elem_id(self, item_id):
        with_tab = self.show(True) == self.show(False)
        tab = ('img2img' if self.is_img2img else 'txt2img') + "_" if with_tab else ""
        return f'{tab}{item_id}'

    def show(self, is_img2img):
        return AlwaysVisible


current_basedir = paths.script_path


def basedir():
    """The extension directory while its script files are being imported; the WebUI root otherwise."""
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])

scripts_data: list[ScriptClassData] = []
postprocessing_scripts_data: list = []
script_files: list[ScriptFile] = []
"""Files ``load_scripts`` executes (the stand-in's replacement of ``list_scripts("scripts", ".py")``)."""
script_classes: list = []
"""``Script`` classes (e.g. defined in a test) registered after ``script_files``, as if loaded from such a file."""
include_builtin_scripts = True
"""Whether ``load_scripts`` also loads ``modules/processing_scripts`` (Comments, Refiner, Sampler, Seed)."""


def load_module(path):
    """``script_loading.load_module``: run a file as a module named after its base name (not in sys.modules)."""
    spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def register_scripts_from_module(module, scriptfile: ScriptFile):
    for value in list(module.__dict__.values()):
        if inspect.isclass(value) and issubclass(value, Script):
            scripts_data.append(ScriptClassData(value, scriptfile.path, scriptfile.basedir, module))


def load_script_file(path, basedir=None):
    """Executes one script file as ``load_scripts`` does and registers its ``Script`` classes; returns the module."""
    global current_basedir
    path = os.path.abspath(path)
    if basedir is None:
        parent = os.path.dirname(path)
        basedir = os.path.dirname(parent) if os.path.basename(parent) == "scripts" else parent
    scriptfile = ScriptFile(basedir, os.path.basename(path), path)
    saved_path = sys.path
    try:
        if basedir != paths.script_path:
            sys.path = [basedir] + sys.path
        current_basedir = basedir
        module = load_module(path)
        register_scripts_from_module(module, scriptfile)
        return module
    finally:
        sys.path = saved_path
        current_basedir = paths.script_path


def load_scripts():
    """Clears ``scripts_data`` and all callbacks, executes ``script_files``, registers ``script_classes``, loads the
    built-in processing scripts and creates the two runners."""
    global scripts_txt2img, scripts_img2img
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    script_callbacks.clear_callbacks()

    for scriptfile in script_files:
        try:
            load_script_file(scriptfile.path, scriptfile.basedir)
        except Exception:
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)

    for cls in script_classes:
        path = inspect.getfile(cls)
        scripts_data.append(ScriptClassData(cls, path, os.path.dirname(path), sys.modules.get(cls.__module__)))

    if include_builtin_scripts:  # the WebUI appends these after all script files
        builtin_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "processing_scripts")
        for filename in sorted(os.listdir(builtin_dir)):
            if filename.endswith(".py") and not filename.startswith("__"):
                load_script_file(os.path.join(builtin_dir, filename), paths.script_path)

    scripts_txt2img = ScriptRunner()
    scripts_img2img = ScriptRunner()


def wrap_call(func, filename, funcname, *args, default=None, **kwargs):
    try:
        return func(*args, **kwargs)
    except Exception:
        errors.report(f"Error calling: {filename}/{funcname}", exc_info=True)
    return default


UI_CATEGORIES_BUILTIN = ["prompt", "image", "inpaint", "sampler", "accordions", "checkboxes", "dimensions", "cfg",
                         "denoising", "seed", "batch", "override_settings"]


class ScriptRunner:
    def __init__(self):
        self.scripts = []
        self.selectable_scripts = []
        self.alwayson_scripts = []
        self.titles = []
        self.title_map = {}
        self.infotext_fields = []
        self.paste_field_names = []
        self.inputs = [None]
        self.callback_map = {}
        self.callback_names = [
            'before_process', 'process', 'before_process_batch', 'after_extra_networks_activate', 'process_batch',
            'postprocess', 'postprocess_batch', 'postprocess_batch_list', 'post_sample', 'on_mask_blend',
            'postprocess_image', 'postprocess_maskoverlay', 'postprocess_image_after_composite', 'before_component',
            'after_component',
        ]
        self.on_before_component_elem_id = {}
        self.on_after_component_elem_id = {}

    def initialize_scripts(self, is_img2img):
        self.scripts.clear()
        self.alwayson_scripts.clear()
        self.selectable_scripts.clear()

        for data in scripts_data:
            try:
                script = data.script_class()
            except Exception:
                errors.report(f"Error # failed to initialize Script {data.module}: ", exc_info=True)
                continue

            script.filename = data.path
            script.is_txt2img = not is_img2img
            script.is_img2img = is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"

            visibility = script.show(script.is_img2img)
            if visibility == AlwaysVisible:
                self.scripts.append(script)
                self.alwayson_scripts.append(script)
                script.alwayson = True
            elif visibility:
                self.scripts.append(script)
                self.selectable_scripts.append(script)

        self.callback_map.clear()
        self.apply_on_before_component_callbacks()

    def apply_on_before_component_callbacks(self):
        for script in self.scripts:
            before = script.on_before_component_elem_id or []
            after = script.on_after_component_elem_id or []
            for elem_id, callback in before:
                self.on_before_component_elem_id.setdefault(elem_id, []).append((callback, script))
            for elem_id, callback in after:
                self.on_after_component_elem_id.setdefault(elem_id, []).append((callback, script))
            before.clear()
            after.clear()

    def create_script_ui(self, script):
        script.args_from = len(self.inputs)
        script.args_to = len(self.inputs)
        try:
            self.create_script_ui_inner(script)
        except Exception:
            errors.report(f"Error creating UI for {script.name}: ", exc_info=True)

    def create_script_ui_inner(self, script):
        from modules.api import models as api_models

        controls = wrap_call(script.ui, script.filename, "ui", script.is_img2img)
        script.controls = controls
        if controls is None:
            return

        script.name = wrap_call(script.title, script.filename, "title", default=script.filename).lower()

        api_args = []
        for control in controls:
            control.custom_script_source = os.path.basename(script.filename)
            arg = api_models.ScriptArg(label=control.label or "")
            for field in ("value", "minimum", "maximum", "step"):
                v = getattr(control, field, None)
                if v is not None:
                    setattr(arg, field, v)
            choices = getattr(control, 'choices', None)
            if choices is not None:
                arg.choices = [c[0] if isinstance(c, tuple) else c for c in choices]
            api_args.append(arg)

        script.api_info = api_models.ScriptInfo(name=script.name, is_img2img=script.is_img2img,
                                                is_alwayson=script.alwayson, args=api_args)

        if script.infotext_fields is not None:
            self.infotext_fields += script.infotext_fields
        if script.paste_field_names is not None:
            self.paste_field_names += script.paste_field_names

        self.inputs += controls
        script.args_to = len(self.inputs)

    def setup_ui_for_section(self, section, scriptlist=None):
        for script in (self.alwayson_scripts if scriptlist is None else scriptlist):
            if script.alwayson and script.section != section:
                continue
            if script.create_group:
                with gr.Group(visible=script.alwayson) as group:
                    self.create_script_ui(script)
                script.group = group
            else:
                self.create_script_ui(script)

    def prepare_ui(self):
        self.inputs = [None]

    def setup_ui(self):
        titles = [wrap_call(s.title, s.filename, "title") or s.filename for s in self.scripts]
        self.title_map = {title.lower(): s for title, s in zip(titles, self.scripts)}
        self.titles = [wrap_call(s.title, s.filename, "title") or f"{s.filename} [error]"
                       for s in self.selectable_scripts]

        self.setup_ui_for_section(None)

        dropdown = gr.Dropdown(label="Script", elem_id="script_list", choices=["None"] + self.titles, value="None",
                               type="index")
        self.inputs[0] = dropdown

        self.setup_ui_for_section(None, self.selectable_scripts)

        def select_script(script_index):
            selected = self.selectable_scripts[script_index - 1] if script_index else None
            return [gr.update(visible=selected == s) for s in self.selectable_scripts]

        dropdown.change(fn=select_script, inputs=[dropdown], outputs=[s.group for s in self.selectable_scripts])

        self.infotext_fields.append((dropdown, lambda x: gr.update(value=x.get('Script', 'None'))))
        self.infotext_fields.extend([(s.group, lambda params: gr.update(visible=False))
                                     for s in self.selectable_scripts])

        self.apply_on_before_component_callbacks()
        return self.inputs

    def ui_categories(self):
        """``modules/ui.py`` ``ordered_ui_categories`` with the default order (no user reordering)."""
        custom = []
        for script in self.scripts:
            if isinstance(script.section, str) and script.section not in UI_CATEGORIES_BUILTIN + custom:
                custom.append(script.section)
        return UI_CATEGORIES_BUILTIN + custom + ["scripts"]

    def build_ui(self):
        """Stand-in of the script part of ``modules/ui.py`` ``create_ui`` for one tab: returns the inputs.

        Runs inside ``gr.Blocks()``: ``prepare_ui``, then for every UI category in order the always-on scripts of
        that ``section`` (and ``setup_ui`` — section ``None``, the dropdown, the selectable scripts — for the
        ``scripts`` category), then registers ``self.infotext_fields`` as the tab's paste fields.
        """
        from modules import infotext_utils

        tabname = "img2img" if self.scripts and self.scripts[0].is_img2img else "txt2img"
        with gr.Blocks() as demo:
            self.prepare_ui()
            for category in self.ui_categories():
                if category == "scripts":
                    self.setup_ui()
                self.setup_ui_for_section(category)
        self.demo = demo
        infotext_utils.add_paste_fields(tabname, None, list(self.infotext_fields))
        return self.inputs

    def run(self, p, *args):
        script_index = args[0]
        if script_index == 0 or script_index is None:
            return None

        script = self.selectable_scripts[script_index - 1]
        if script is None:
            return None

        processed = script.run(p, *args[script.args_from:script.args_to])
        shared.total_tqdm.clear()
        return processed

    def list_scripts_for_method(self, method_name):
        if method_name in ('before_component', 'after_component'):
            return self.scripts
        return self.alwayson_scripts

    def create_ordered_callbacks_list(self, method_name, *, enable_user_sort=True):
        category = f'script_{method_name}'
        callbacks = []
        for script in self.list_scripts_for_method(method_name):
            if getattr(script.__class__, method_name, None) == getattr(Script, method_name, None):
                continue
            script_callbacks.add_callback(callbacks, script, category=category, name=script.__class__.__name__,
                                          filename=script.filename)
        return script_callbacks.sort_callbacks(category, callbacks, enable_user_sort=enable_user_sort)

    def ordered_callbacks(self, method_name, *, enable_user_sort=True):
        script_list = self.list_scripts_for_method(method_name)
        category = f'script_{method_name}'
        count, callbacks = self.callback_map.get(category, (-1, None))
        if callbacks is None or count != len(script_list):
            callbacks = self.create_ordered_callbacks_list(method_name, enable_user_sort=enable_user_sort)
            self.callback_map[category] = len(script_list), callbacks
        return callbacks

    def ordered_scripts(self, method_name):
        return [c.callback for c in self.ordered_callbacks(method_name)]

    def _dispatch(self, method_name, p, *leading, label=None, **kwargs):
        for script in self.ordered_scripts(method_name):
            try:
                script_args = p.script_args[script.args_from:script.args_to]
                getattr(script, method_name)(p, *leading, *script_args, **kwargs)
            except Exception:
                errors.report(f"Error running {label or method_name}: {script.filename}", exc_info=True)

    def before_process(self, p):
        self._dispatch('before_process', p)

    def process(self, p):
        self._dispatch('process', p)

    def process_before_every_sampling(self, p, **kwargs):
        self._dispatch('process_before_every_sampling', p, **kwargs)

    def before_process_batch(self, p, **kwargs):
        self._dispatch('before_process_batch', p, **kwargs)

    def after_extra_networks_activate(self, p, **kwargs):
        self._dispatch('after_extra_networks_activate', p, **kwargs)

    def process_batch(self, p, **kwargs):
        self._dispatch('process_batch', p, **kwargs)

    def postprocess(self, p, processed):
        self._dispatch('postprocess', p, processed)

    def postprocess_batch(self, p, images, **kwargs):
        self._dispatch('postprocess_batch', p, images=images, **kwargs)

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, **kwargs):
        self._dispatch('postprocess_batch_list', p, pp, **kwargs)

    def post_sample(self, p, ps: PostSampleArgs):
        self._dispatch('post_sample', p, ps)

    def on_mask_blend(self, p, mba: MaskBlendArgs):
        self._dispatch('on_mask_blend', p, mba, label="post_sample")

    def postprocess_image(self, p, pp: PostprocessImageArgs):
        self._dispatch('postprocess_image', p, pp)

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs):
        self._dispatch('postprocess_maskoverlay', p, ppmo, label="postprocess_image")

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs):
        self._dispatch('postprocess_image_after_composite', p, pp)

    def before_hr(self, p):
        self._dispatch('before_hr', p)

    def setup_scrips(self, p, *, is_ui=True):
        for script in self.ordered_scripts('setup'):
            if not is_ui and script.setup_for_ui_only:
                continue
            try:
                script_args = p.script_args[script.args_from:script.args_to]
                script.setup(p, *script_args)
            except Exception:
                errors.report(f"Error running setup: {script.filename}", exc_info=True)

    def before_component(self, component, **kwargs):
        for callback, script in self.on_before_component_elem_id.get(kwargs.get("elem_id"), []):
            try:
                callback(OnComponent(component=component))
            except Exception:
                errors.report(f"Error running on_before_component: {script.filename}", exc_info=True)
        for script in self.ordered_scripts('before_component'):
            try:
                script.before_component(component, **kwargs)
            except Exception:
                errors.report(f"Error running before_component: {script.filename}", exc_info=True)

    def after_component(self, component, **kwargs):
        for callback, script in self.on_after_component_elem_id.get(component.elem_id, []):
            try:
                callback(OnComponent(component=component))
            except Exception:
                errors.report(f"Error running on_after_component: {script.filename}", exc_info=True)
        for script in self.ordered_scripts('after_component'):
            try:
                script.after_component(component, **kwargs)
            except Exception:
                errors.report(f"Error running after_component: {script.filename}", exc_info=True)

    def script(self, title):
        return self.title_map.get(title.lower())

    def set_named_arg(self, args, script_name, arg_elem_id, value, fuzzy=False):
        script = next((s for s in self.scripts if s.name == script_name), None)
        if script is None:
            raise RuntimeError(f"script {script_name} not found")

        for i, control in enumerate(script.controls):
            matches = arg_elem_id in control.elem_id if fuzzy else arg_elem_id == control.elem_id
            if not matches:
                continue
            index = script.args_from + i
            if isinstance(args, tuple):
                return args[:index] + (value,) + args[index + 1:]
            if isinstance(args, list):
                args[index] = value
                return args
            raise RuntimeError(f"args is not a list or tuple, but {type(args)}")
        raise RuntimeError(f"arg_elem_id {arg_elem_id} not found in script {script_name}")


scripts_txt2img: ScriptRunner = None
scripts_img2img: ScriptRunner = None
scripts_postproc = None
scripts_current: ScriptRunner = None

reload_scripts = load_scripts
