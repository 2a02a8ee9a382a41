"""STAND-IN of the script-argument part of ``modules/api/api.py`` of WebUI 1.10.1 (no FastAPI app).

* ``init_default_script_args(script_runner)``: the list the API starts from — as long as the largest
  ``args_to``, ``0`` at index 0, each script's ``ui()`` component ``.value`` s at ``args_from:args_to`` (``ui()`` is
  called again, twice per script, inside a throw-away ``gr.Blocks``, as the API does at start-up).
* ``init_script_args(request, default_script_args, selectable_scripts, selectable_idx, script_runner, *,
  input_script_args=None)``: copy of the defaults, infotext-derived args, the selectable script's args, then for
  every key of ``request.alwayson_scripts`` the script found by exact case-insensitive title (422 otherwise; 422 for
  a selectable script) gets ``script_args[args_from + i] = args[i]`` for ``i < min(len(args), args_to - args_from)``.
* ``script_name_to_index``, ``get_script``, ``get_selectable_script`` raise ``fastapi.HTTPException`` like the API.
"""

from __future__ import annotations

import gradio as gr
from fastapi import HTTPException


def script_name_to_index(name, scripts):
    titles = [script.title().lower() for script in scripts]
    if name.lower() not in titles:
        raise HTTPException(status_code=422, detail=f"Script '{name}' not found")
    return titles.index(name.lower())


def get_selectable_script(script_name, script_runner):
    if not script_name:
        return None, None
    index = script_name_to_index(script_name, script_runner.selectable_scripts)
    return script_runner.selectable_scripts[index], index


def get_script(script_name, script_runner):
    if not script_name:
        return None
    return script_runner.scripts[script_name_to_index(script_name, script_runner.scripts)]


def init_default_script_args(script_runner):
    size = max([1] + [script.args_to for script in script_runner.scripts if script.args_to is not None])
    script_args = [None] * size
    script_args[0] = 0

    with gr.Blocks():
        for script in script_runner.scripts:
            if script.ui(script.is_img2img):
                defaults = [component.value for component in script.ui(script.is_img2img)]
                script_args[script.args_from:script.args_to] = defaults
    return script_args


def init_script_args(request, default_script_args, selectable_scripts, selectable_idx, script_runner, *,
                     input_script_args=None):
    script_args = list(default_script_args)

    for index, value in (input_script_args or {}).items():
        script_args[index] = value

    if selectable_scripts:
        script_args[selectable_scripts.args_from:selectable_scripts.args_to] = request.script_args
        script_args[0] = selectable_idx + 1

    for name, payload in (request.alwayson_scripts or {}).items():
        script = get_script(name, script_runner)
        if script is None:
            raise HTTPException(status_code=422, detail=f"always on script {name} not found")
        if script.alwayson is False:
            raise HTTPException(status_code=422,
                                detail="Cannot have a selectable script in the always on scripts params")
        if "args" in payload:
            given = payload["args"]
            for i in range(min(script.args_to - script.args_from, len(given))):
                script_args[script.args_from + i] = given[i]
    return script_args
