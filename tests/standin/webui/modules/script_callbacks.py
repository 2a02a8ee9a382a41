"""STAND-IN of ``modules/script_callbacks.py`` of WebUI 1.10.1.

Same registry (``callback_map`` with the real ``callbacks_<category>`` keys, ``ScriptCallback`` records whose
``script`` is the registering file), the same ``on_*`` registration functions, ``remove_current_script_callbacks``,
``remove_callbacks_for_function``, ``clear_callbacks`` and ``*_callback`` invokers that run every callback inside
try/except and report errors without raising (``script_unloaded`` and ``before_ui`` run in reverse order).
Ordering: registration order plus the user's ``opts.prioritized_callbacks_<category>`` list; ``metadata.ini``
Before/After instructions are not read (the stand-in has no extension metadata).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from modules import errors

extension_dirs: list[str] = []
"""Extension roots known to the stand-in (the harness adds the directory of every script file it loads)."""


def report_exception(c, job):
    errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)


class ImageSaveParams:
    def __init__(self, image, p, filename, pnginfo):
        self.image = image
        self.p = p
        self.filename = filename
        self.pnginfo = pnginfo


class ExtraNoiseParams:
    def __init__(self, noise, x, xi):
        self.noise = noise
        self.x = x
        self.xi = xi


class CFGDenoiserParams:
    def __init__(self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond,
                 denoiser=None):
        self.x = x
        """the batched latent ``x_in`` built by ``CFGDenoiser.forward`` (a new tensor, not the sampler's own)"""
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


class CFGDenoisedParams:
    def __init__(self, x, sampling_step, total_sampling_steps, inner_model):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.inner_model = inner_model


class AfterCFGCallbackParams:
    def __init__(self, x, sampling_step, total_sampling_steps):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps


class UiTrainTabParams:
    def __init__(self, txt2img_preview_params):
        self.txt2img_preview_params = txt2img_preview_params


class ImageGridLoopParams:
    def __init__(self, imgs, cols, rows):
        self.imgs = imgs
        self.cols = cols
        self.rows = rows


@dataclasses.dataclass
class BeforeTokenCounterParams:
    prompt: str
    steps: int
    styles: list
    is_positive: bool = True


@dataclasses.dataclass
class ScriptCallback:
    script: str
    callback: Any
    name: str = "unnamed"


def _caller_filename() -> str:
    """File name of the first stack frame that is not in this file (as ``inspect.stack()`` would give it)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else 'unknown file'


def _extension_name(filename: str) -> str:
    path = os.path.abspath(filename)
    for root in sorted(extension_dirs, key=len, reverse=True):
        root = os.path.abspath(root)
        if path.startswith(root + os.sep):
            return os.path.basename(root).lower()
    return 'base'


def add_callback(callbacks, fun, *, name=None, category='unknown', filename=None):
    if filename is None:
        filename = _caller_filename()

    base_name = f"{_extension_name(filename)}/{os.path.basename(filename)}/{category}"
    if name is not None:
        base_name += f"/{name}"

    unique = base_name
    taken = {c.name for c in callbacks}
    suffix = 0
    while unique in taken and suffix < 1000:
        suffix += 1
        unique = f"{base_name}-{suffix}"

    callbacks.append(ScriptCallback(filename, fun, unique))


def sort_callbacks(category, unordered_callbacks, *, enable_user_sort=True):
    callbacks = list(unordered_callbacks)
    if enable_user_sort:
        from modules import shared

        preferred = list(getattr(shared.opts, 'prioritized_callbacks_' + category, None) or [])
        for wanted in reversed(preferred):
            found = [i for i, c in enumerate(callbacks) if c.name == wanted]
            if found:
                callbacks.insert(0, callbacks.pop(found[0]))
    return callbacks


def ordered_callbacks(category, unordered_callbacks=None, *, enable_user_sort=True):
    if unordered_callbacks is None:
        unordered_callbacks = callback_map.get('callbacks_' + category, [])

    if not enable_user_sort:
        return sort_callbacks(category, unordered_callbacks, enable_user_sort=False)

    cached = ordered_callbacks_map.get(category)
    if cached is not None and len(cached) == len(unordered_callbacks):
        return cached

    cached = sort_callbacks(category, unordered_callbacks)
    ordered_callbacks_map[category] = cached
    return cached


def enumerate_callbacks():
    for category, callbacks in callback_map.items():
        yield category.removeprefix('callbacks_'), callbacks


_CATEGORIES = (
    "app_started", "model_loaded", "ui_tabs", "ui_train_tabs", "ui_settings", "before_image_saved", "image_saved",
    "extra_noise", "cfg_denoiser", "cfg_denoised", "cfg_after_cfg", "before_component", "after_component",
    "image_grid", "infotext_pasted", "script_unloaded", "before_ui", "on_reload", "list_optimizers", "list_unets",
    "before_token_counter",
)

callback_map = {f"callbacks_{c}": [] for c in _CATEGORIES}
ordered_callbacks_map = {}


def clear_callbacks():
    for callbacks in callback_map.values():
        callbacks.clear()
    ordered_callbacks_map.clear()


def _run_all(category, job, *args, reverse=False, **kwargs):
    callbacks = ordered_callbacks(category)
    for c in (reversed(callbacks) if reverse else callbacks):
        try:
            c.callback(*args, **kwargs)
        except Exception:
            report_exception(c, job)


def app_started_callback(demo, app):
    _run_all('app_started', 'app_started_callback', demo, app)


def app_reload_callback():
    _run_all('on_reload', 'callbacks_on_reload')


def model_loaded_callback(sd_model):
    _run_all('model_loaded', 'model_loaded_callback', sd_model)


def ui_tabs_callback():
    res = []
    for c in ordered_callbacks('ui_tabs'):
        try:
            res += c.callback() or []
        except Exception:
            report_exception(c, 'ui_tabs_callback')
    return res


def ui_train_tabs_callback(params: UiTrainTabParams):
    _run_all('ui_train_tabs', 'callbacks_ui_train_tabs', params)


def ui_settings_callback():
    _run_all('ui_settings', 'ui_settings_callback')


def before_image_saved_callback(params: ImageSaveParams):
    _run_all('before_image_saved', 'before_image_saved_callback', params)


def image_saved_callback(params: ImageSaveParams):
    _run_all('image_saved', 'image_saved_callback', params)


def extra_noise_callback(params: ExtraNoiseParams):
    _run_all('extra_noise', 'callbacks_extra_noise', params)


def cfg_denoiser_callback(params: CFGDenoiserParams):
    _run_all('cfg_denoiser', 'cfg_denoiser_callback', params)


def cfg_denoised_callback(params: CFGDenoisedParams):
    _run_all('cfg_denoised', 'cfg_denoised_callback', params)


def cfg_after_cfg_callback(params: AfterCFGCallbackParams):
    _run_all('cfg_after_cfg', 'cfg_after_cfg_callback', params)


def before_component_callback(component, **kwargs):
    _run_all('before_component', 'before_component_callback', component, **kwargs)


def after_component_callback(component, **kwargs):
    _run_all('after_component', 'after_component_callback', component, **kwargs)


def image_grid_callback(params: ImageGridLoopParams):
    _run_all('image_grid', 'image_grid', params)


def infotext_pasted_callback(infotext: str, params: dict[str, Any]):
    _run_all('infotext_pasted', 'infotext_pasted', infotext, params)


def script_unloaded_callback():
    _run_all('script_unloaded', 'script_unloaded', reverse=True)


def before_ui_callback():
    _run_all('before_ui', 'before_ui', reverse=True)


def list_optimizers_callback():
    res = []
    _run_all('list_optimizers', 'list_optimizers', res)
    return res


def list_unets_callback():
    res = []
    _run_all('list_unets', 'list_unets', res)
    return res


def before_token_counter_callback(params: BeforeTokenCounterParams):
    _run_all('before_token_counter', 'before_token_counter', params)


def _remove_where(predicate):
    for callbacks in list(callback_map.values()) + list(ordered_callbacks_map.values()):
        callbacks[:] = [c for c in callbacks if not predicate(c)]


def remove_current_script_callbacks():
    filename = _caller_filename()
    if filename == 'unknown file':
        return
    _remove_where(lambda c: c.script == filename)


def remove_callbacks_for_function(callback_func):
    _remove_where(lambda c: c.callback == callback_func)


def _register(category):
    def register(callback, *, name=None):
        add_callback(callback_map['callbacks_' + category], callback, name=name, category=category,
                     filename=_caller_filename())

    register.__name__ = f"on_{category}"
    register.__doc__ = f"Registers ``callback`` in the ``{category}`` category (stand-in of ``on_{category}``)."
    return register


on_app_started = _register('app_started')
"""``callback(demo, app)`` after the UI/API app started."""
on_before_reload = _register('on_reload')
on_model_loaded = _register('model_loaded')
"""``callback(sd_model)`` after a model was loaded (the stand-in calls it from ``sd_models.reload_model_weights``)."""
on_ui_tabs = _register('ui_tabs')
on_ui_train_tabs = _register('ui_train_tabs')
on_ui_settings = _register('ui_settings')
on_before_image_saved = _register('before_image_saved')
on_image_saved = _register('image_saved')
on_extra_noise = _register('extra_noise')
on_cfg_denoiser = _register('cfg_denoiser')
on_cfg_denoised = _register('cfg_denoised')
on_cfg_after_cfg = _register('cfg_after_cfg')
on_before_component = _register('before_component')
on_after_component = _register('after_component')
on_image_grid = _register('image_grid')
on_infotext_pasted = _register('infotext_pasted')
on_script_unloaded = _register('script_unloaded')
on_before_ui = _register('before_ui')
on_list_optimizers = _register('list_optimizers')
on_list_unets = _register('list_unets')
on_before_token_counter = _register('before_token_counter')
