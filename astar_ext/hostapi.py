"""The host interface: what the WebUI script asks of the program it runs in.

The A-STAR script (``astar_ext/webui/script.py``) and its token route talk to the WebUI's extension
interface (``modules.scripts``, the callbacks, ``shared``, ``prompt_parser``), which AUTOMATIC1111 1.10,
WebUI Forge and Forge Classic share. Where the programs differ (the model objects, the UNet, the text
encoders, how a conditional-only UNet pass is run, inference mode) the script asks a :class:`Host`, and each
adapter implements one: ``astar_ext.webui.host.HOST`` (AUTOMATIC1111's ldm/sgm models),
``astar_ext.forge.host.HOST`` (Forge's ``backend``) and ``astar_ext.forge.classic.HOST`` (Forge Classic's
``ldm_patched`` UNet under AUTOMATIC1111's models). ``scripts/astar.py`` picks one at start-up
(``astar_ext.webui.hosting.pick_host``).

Standard library only (the type of the tokenizer is the engine's :class:`~astar_ext.passconcepts.Tokenizer`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .passconcepts import Tokenizer


class NoModelLoaded(LookupError):
    """Raised by a host's ``tokenizer`` when the program has no model loaded yet (Forge main holds a placeholder,
    ``FakeInitialModel``, until its first generation loads the checkpoint)."""


class Host(Protocol):
    """What a host adapter provides. ``shared`` is the host's ``modules.shared``; ``sd_model`` its loaded model."""

    name: str
    """The program, for messages ("AUTOMATIC1111 WebUI", "WebUI Forge")."""

    layer_defaults_text: str
    """What the ``astar_layers`` setting's "automatic" means, for the Settings page."""

    def refusal(self, shared: Any, p: Any) -> str | None:
        """Why A-STAR cannot run in this program or with this model (None: it can), checked in ``process``."""

    def model_refusal(self, sd_model: Any) -> str | None:
        """Why A-STAR cannot run with this model (None: it can); also the token route's ``refusal``."""

    def unet(self, sd_model: Any) -> Any:
        """The UNet (``torch.nn.Module`` with ``input_blocks``/``middle_block``/``output_blocks`` and ``attn2``
        cross-attention modules) whose layers are captured."""

    def tokenizer(self, sd_model: Any) -> Tokenizer:
        """The loaded model's own tokenization (raises when it cannot be used)."""

    def excludes_eot(self, sd_model: Any) -> bool:
        """The automatic EOT rule of the re-normalisation for this model."""

    def layer_choice(self, sd_model: Any, setting: str) -> str:
        """The :func:`~astar_ext.capture.select_layers` choice for the ``astar_layers`` setting (applied at the
        level of the ``astar_map_level`` setting)."""

    def run_options(self, shared: Any, sd_model: Any) -> dict[str, Callable | None]:
        """Keyword arguments of :class:`~astar_ext.passrun.PassRun` that depend on the host:
        ``context_transform``, ``cond_pass``, ``prepare`` (each may be None: the engine's default)."""
