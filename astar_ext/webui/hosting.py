"""Which :class:`~astar_ext.hostapi.Host` the script and the token route use.

``scripts/astar.py`` calls :func:`use_host` at start-up with :func:`pick_host`'s choice: AUTOMATIC1111's
(``astar_ext.webui.host.HOST``), WebUI Forge's (``astar_ext.forge.host.HOST``) or Forge Classic's
(``astar_ext.forge.classic.HOST``); without that call the AUTOMATIC1111 host is used.
"""

from __future__ import annotations

import importlib.util
from typing import Any

_current: list[Any] = []


def _has(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def pick_host() -> Any:
    """The host of the running program, told apart by its packages: Forge has ``modules_forge``; Forge main (and
    the lines that follow its ``backend``, such as Forge Neo) has ``backend``, Forge Classic (and reForge) has
    ``ldm_patched`` instead."""
    if _has("modules_forge"):
        if not _has("backend") and _has("ldm_patched"):
            from ..forge.classic import HOST as CLASSIC

            return CLASSIC
        from ..forge.host import HOST as FORGE

        return FORGE
    from .host import HOST

    return HOST


def use_host(host: Any) -> None:
    """Make ``host`` the one the script and the route ask."""
    _current[:] = [host]


def current_host() -> Any:
    if not _current:
        from .host import HOST

        _current.append(HOST)
    return _current[0]
