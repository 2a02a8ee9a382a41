"""STAND-IN of ``modules/api/models.py`` of WebUI 1.10.1: ``ScriptArg``/``ScriptInfo`` (plain dataclasses instead
of pydantic models) and a ``StableDiffusionTxt2ImgProcessingAPI``-like request holder for the script-arg fields."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class ScriptArg:
    label: str = None
    value: Any = None
    minimum: Any = None
    maximum: Any = None
    step: Any = None
    choices: list | None = None


@dataclasses.dataclass
class ScriptInfo:
    name: str = None
    is_alwayson: bool = None
    is_img2img: bool = None
    args: list[ScriptArg] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ScriptRequest:
    """The script-related fields of a txt2img/img2img API request."""

    script_name: str | None = None
    script_args: list = dataclasses.field(default_factory=list)
    alwayson_scripts: dict = dataclasses.field(default_factory=dict)
    infotext: str | None = None
