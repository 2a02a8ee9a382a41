"""STAND-IN of ``modules/infotext_utils.py`` of WebUI 1.10.1: infotext quoting, parsing and pasting.

``quote``/``unquote``, ``re_param_code``/``re_param``, ``PasteField(component, target, *, api=None)`` (a tuple
subclass with ``.component``, ``.label``, ``.function``, ``.api``), ``paste_fields`` per tab (``add_paste_fields``),
``parse_generation_parameters(x, skip_fields=None)`` (prompt lines, ``Negative prompt:`` lines, the last line's
``Key: value`` pairs if it has at least 3, ``WxH`` values split into ``Key-1``/``Key-2``, and the WebUI's defaults
for keys missing from the text; styles and old hires-fix/version back-compat are left out) and the pure
``apply_paste(fields, params)`` reproducing ``connect_paste``'s ``paste_func`` value conversion: callable targets
are called with ``params``, ``None`` -> ``gr.update()``, a ``gr.update`` dict passes through, otherwise the value
is cast to the type of the component's current value (bool: ``"False"`` -> False; int: via ``float``).
``paste_infotext(fields, infotext)`` = parse + ``infotext_pasted_callback`` + ``apply_paste``.
"""

from __future__ import annotations

import json
import re

import gradio as gr
from modules import errors, prompt_parser, script_callbacks, shared

re_param_code = r'\s*(\w[-\w /]+):\s*("(?:[^"\\]|\\.)+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")
type_of_gr_update = type(gr.update())


class PasteField(tuple):
    def __new__(cls, component, target, *, api=None):
        return super().__new__(cls, (component, target))

    def __init__(self, component, target, *, api=None):
        super().__init__()
        self.api = api
        self.component = component
        self.label = target if isinstance(target, str) else None
        self.function = target if callable(target) else None


paste_fields: dict[str, dict] = {}
registered_param_bindings: list = []


def reset():
    paste_fields.clear()
    registered_param_bindings.clear()


def quote(text):
    """JSON-quotes a value that contains ``,``, ``:`` or a newline; other values are returned unchanged."""
    s = str(text)
    if ',' in s or '\n' in s or ':' in s:
        return json.dumps(text, ensure_ascii=False)
    return text


def unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def add_paste_fields(tabname, init_img, fields, override_settings_component=None):
    if fields:
        fields = [f if isinstance(f, PasteField) else PasteField(*f) for f in fields]
    paste_fields[tabname] = {"init_img": init_img, "fields": fields,
                             "override_settings_component": override_settings_component}


_DEFAULTS = {
    "Clip skip": "1",
    "Hires resize-1": 0,
    "Hires resize-2": 0,
    "Hires sampler": "Use same sampler",
    "Hires schedule type": "Use same scheduler",
    "Hires checkpoint": "Use same checkpoint",
    "Hires prompt": "",
    "Hires negative prompt": "",
    "Mask mode": "Inpaint masked",
    "Masked content": "original",
    "Inpaint area": "Whole picture",
    "Masked area padding": 32,
    "RNG": "GPU",
    "Schedule type": "Automatic",
    "Schedule max sigma": 0,
    "Schedule min sigma": 0,
    "Schedule rho": 0,
    "VAE Encoder": "Full",
    "VAE Decoder": "Full",
    "FP8 weight": "Disable",
}


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None):
    """Infotext -> dict of string values (plus defaults), e.g. ``{"Prompt": ..., "Steps": "20", "Size-1": "512"}``."""
    if skip_fields is None:
        skip_fields = shared.opts.infotext_skip_pasting

    res = {}
    *lines, lastline = x.strip().split("\n")
    if len(re_param.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ''

    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative_lines if in_negative else prompt_lines).append(line)

    for k, v in re_param.findall(lastline):
        try:
            if v[0] == '"' and v[-1] == '"':
                v = unquote(v)
            m = re_imagesize.match(v)
            if m is not None:
                res[f"{k}-1"] = m.group(1)
                res[f"{k}-2"] = m.group(2)
            else:
                res[k] = v
        except Exception:
            print(f"Error parsing \"{k}: {v}\"")

    res["Prompt"] = "\n".join(prompt_lines)
    res["Negative prompt"] = "\n".join(negative_lines)

    for key, value in _DEFAULTS.items():
        res.setdefault(key, value)
    if res["FP8 weight"] != "Disable":
        res.setdefault("Cache FP16 weight for LoRA", False)

    attention = prompt_parser.parse_prompt_attention(res["Prompt"]) + \
        prompt_parser.parse_prompt_attention(res["Negative prompt"])
    if "Emphasis" not in res and any(w != 1.0 and t != "BREAK" for t, w in attention):
        res["Emphasis"] = "Original"

    res.setdefault("Refiner switch by sampling steps", False)

    for key in skip_fields:
        res.pop(key, None)
    return res


def apply_paste(fields, params):
    """Values/updates ``paste_func`` would return for ``fields`` (``(component, key)`` or ``PasteField``)."""
    res = []
    for output, key in fields:
        if callable(key):
            try:
                v = key(params)
            except Exception:
                errors.report(f"Error executing {key}", exc_info=True)
                v = None
        else:
            v = params.get(key, None)

        if v is None:
            res.append(gr.update())
        elif isinstance(v, type_of_gr_update):
            res.append(v)
        else:
            try:
                valtype = type(output.value)
                if valtype is bool and v == "False":
                    val = False
                elif valtype is int:
                    val = float(v)
                else:
                    val = valtype(v)
                res.append(gr.update(value=val))
            except Exception:
                res.append(gr.update())
    return res


def paste_infotext(fields, infotext):
    """``paste_func`` without gradio events: parse, run ``infotext_pasted`` callbacks, convert the values."""
    params = parse_generation_parameters(infotext)
    script_callbacks.infotext_pasted_callback(infotext, params)
    return apply_paste(fields, params)


def create_override_settings_dict(text_pairs):
    res = {}
    params = dict(pair.split(":", maxsplit=1) for pair in text_pairs)
    params = {k: v.strip() for k, v in params.items()}
    for setting_name, info in shared.opts.data_labels.items():
        if info.infotext and info.infotext in params:
            res[setting_name] = shared.opts.cast_value(setting_name, params[info.infotext])
    return res


def get_override_settings(params, *, skip_fields=None):
    res = []
    for setting_name, info in shared.opts.data_labels.items():
        name = info.infotext
        if not name or name in (skip_fields or {}) or params.get(name) is None:
            continue
        if setting_name == "sd_model_checkpoint" and shared.opts.disable_weights_auto_swap:
            continue
        v = shared.opts.cast_value(setting_name, params[name])
        if v == getattr(shared.opts, setting_name, None):
            continue
        res.append((name, setting_name, v))
    return res
