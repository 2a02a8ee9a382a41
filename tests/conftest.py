"""Shared fixtures: the real CLIP BPE vocabulary and a tiny model built from the real ldm UNet."""

from __future__ import annotations

import pathlib
import warnings

import pytest

from tests.standin.forge.harness import forge  # noqa: F401  (fixture: the stand-in WebUI Forge)
from tests.standin.forge_classic.harness import forge_classic  # noqa: F401  (fixture: the stand-in Forge Classic)
from tests.standin.webui.harness import webui  # noqa: F401  (fixture: the stand-in WebUI 1.10.1)

SCRIPT = str(pathlib.Path(__file__).resolve().parents[1] / "scripts" / "astar.py")

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


@pytest.fixture(scope="session")
def clip_wrapper():
    from tests.standin.prompt import StandinClipWrapper

    return StandinClipWrapper()


@pytest.fixture(scope="session")
def tokenize(clip_wrapper):
    return clip_wrapper.tokenize


@pytest.fixture(scope="session")
def tiny():
    """A tiny LatentDiffusion-like model around the real ldm ``UNetModel`` (SD 1.x block layout)."""
    from astar_ext.bench.tiny import TinyLDM

    return TinyLDM()


def hook_count(module) -> int:
    """Every forward (pre-)hook registered on ``module`` and its children."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def sampler_local_x_is(x, names) -> bool:
    """Is ``x`` the local variable ``x`` of the running sampler function (found by name on the stack)?"""
    import inspect

    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name in names:
            return frame.f_locals.get("x") is x
        frame = frame.f_back
    raise AssertionError(f"no sampler frame among {names}")


def token_client(host, script: str):
    """A FastAPI TestClient with the token route, added as the host adds it: the script started in ``host`` (a
    stand-in harness), then its ``app_started`` callback called with the app (``demo=None``, as with --nowebui)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    host.start(script)
    app = FastAPI()
    host.script_callbacks.app_started_callback(None, app)
    return TestClient(app)


def prompt_ids(wrapper, prompt: str):
    """Token ids ``[1, 77*k]`` of ``prompt`` and its chunks, as the WebUI would build them."""
    import torch

    chunks, _ = wrapper.tokenize_line(prompt)
    return torch.tensor([sum((c.tokens for c in chunks), [])]), chunks


@pytest.fixture(scope="session")
def tiny_xl():
    """A tiny model with the SDXL block layout (``astar_ext.bench.tiny.sdxl_config``; the stand-in's SDXL model)."""
    from tests.standin.webui.harness import tiny_sdxl

    return tiny_sdxl()


@pytest.fixture()
def unet_resizes_skips():
    """The WebUI's resizing ``cat`` in ldm's UNet (``sd_hijack_unet``), for latents of any size, during one test."""
    from tests.standin.webui.modules import sd_hijack_unet

    sd_hijack_unet.install()
    try:
        yield
    finally:
        sd_hijack_unet.uninstall()


def concept_batch(tiny, wrapper, prompt: str = "a cat and a dog", spec: str = "cat, dog"):
    """The tiny model's context ``[1, 77k, D]`` for ``prompt`` and the layout of the concepts ``spec``."""
    from astar_ext.maps import ColumnLayout
    from astar_ext.tokens import match_concepts, parse_concepts

    ids, chunks = prompt_ids(wrapper, prompt)
    pt = match_concepts(parse_concepts(spec), chunks, wrapper.tokenize, wrapper.id_end)
    return tiny.encode(ids), ColumnLayout.build([pt])


def astar_keys(processed, index=0) -> dict[str, str]:
    """The ``A-STAR ...`` entries of an image's infotext, parsed as the WebUI's paste does."""
    from modules import infotext_utils

    params = infotext_utils.parse_generation_parameters(processed.infotexts[index])
    return {k: str(v) for k, v in params.items() if k.startswith("A-STAR")}


def on(concepts="cat, dog", **fields):
    """Script arguments of the API's dict form: A-STAR on with ``concepts`` and ``fields``."""
    return [{"enabled": True, "concepts": concepts, **fields}]


def run(host, args=None, **kwargs):
    """A txt2img job of the A-STAR script in the stand-in WebUI ``host`` (the ``webui`` fixture; "a cat and a
    dog", 6 steps unless given)."""
    kwargs.setdefault("prompt", "a cat and a dog")
    kwargs.setdefault("steps", 6)
    return host.run_txt2img(SCRIPT, args, **kwargs)
