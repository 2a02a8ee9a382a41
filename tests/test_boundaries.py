"""Imports point one way: the engine (the modules directly in ``astar_ext``) never imports a host (``modules``),
``gradio``, an adapter, the toy model or the benchmarks; the toy model and the benchmarks never import an adapter;
params and tokens need no torch."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = sorted(p.stem for p in (ROOT / "astar_ext").glob("*.py") if p.stem != "__init__")

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def __init__(self, names): self.names = names
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + '.') for b in self.names):
            raise ImportError('blocked import of ' + name)
sys.meta_path.insert(0, Block({blocked!r}))
for mod in {mods!r}:
    __import__('astar_ext.' + mod)
print('ok')
"""


def run_blocked(blocked: set[str], mods: list[str]) -> subprocess.CompletedProcess:
    code = BLOCKER.format(blocked=blocked, mods=mods)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_core_modules_are_known():
    assert {"params", "tokens", "maps", "losses", "schedule", "capture", "controller"} <= set(CORE)


SUBPACKAGES = {"astar_ext.webui", "astar_ext.forge", "astar_ext.toy", "astar_ext.bench"}
ADAPTERS = {"astar_ext.webui", "astar_ext.forge"}


def test_core_imports_without_webui_or_gradio():
    res = run_blocked({"modules", "gradio"}, CORE)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_core_imports_no_subpackage():
    res = run_blocked(SUBPACKAGES, CORE)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_toy_and_bench_import_no_adapter_and_no_host():
    toy = sorted("toy." + p.stem for p in (ROOT / "astar_ext" / "toy").glob("*.py") if p.stem != "__main__")
    bench = sorted("bench." + p.stem for p in (ROOT / "astar_ext" / "bench").glob("*.py") if p.stem != "__main__")
    res = run_blocked(ADAPTERS | {"modules", "gradio"}, toy + bench)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("mod", ["params", "tokens"])
def test_params_and_tokens_need_only_the_standard_library(mod):
    res = run_blocked({"modules", "gradio", "torch", "numpy"}, [mod])
    assert res.returncode == 0, res.stderr


def test_the_blocker_really_blocks():
    res = run_blocked({"torch"}, ["maps"])
    assert res.returncode != 0 and "blocked import of torch" in res.stderr
    res = run_blocked({"astar_ext.passconcepts"}, ["passrun"])
    assert res.returncode != 0 and "blocked import of astar_ext.passconcepts" in res.stderr
