"""Which :class:`~astar_ext.hostapi.Host` the script and the token route use.

``scripts/astar.py`` calls :func:`use_host` at start-up with AUTOMATIC1111's (``astar_ext.webui.host.HOST``) or
WebUI Forge's (``astar_ext.forge.host.HOST``); without that call the AUTOMATIC1111 host is used.
"""

from __future__ import annotations

from typing import Any

_current: list[Any] = []


def use_host(host: Any) -> None:
    """Make ``host`` the one the script and the route ask."""
    _current[:] = [host]


def current_host() -> Any:
    if not _current:
        from .host import HOST

        _current.append(HOST)
    return _current[0]
