"""What A-STAR asks of the host and the loaded model, and the reasons it declines.

Each ``*_refusal`` returns ``None`` when A-STAR can run, or a sentence for the infotext.
The checks follow ``webui-host.md`` §8 and §10: Forge runs sampling under inference mode with its
own UNet; SD.Next runs diffusers pipelines; SD3 has no ``attn2``; a replaced UNet (TensorRT)
bypasses the attention modules and autograd; ``--lowvram`` moves each block off the GPU before
the backward pass needs it; InstructPix2Pix and unCLIP models batch their conditioning
differently.

SDXL (and SSD-1B, and the SDXL refiner loaded as the main model) encode the prompt with the text encoders of
``sd_model.conditioner.embedders`` (CLIP-L and OpenCLIP-bigG for the base); the WebUI's ``cond_stage_model`` is
then the ``GeneralConditioner``, which has no ``tokenize_line``. The context is the channel-wise concatenation
of the encoders' outputs, so a token column is the same column in both; :func:`tokenizer` checks, prompt by
prompt, that every encoder splits the text into the same tokens (``webui-host.md`` §5.2).
"""

from __future__ import annotations

import sys
from typing import Any

from ..passconcepts import Tokenizer, encoders_tokenizer, same_tokens  # noqa: F401


def is_sd2(sd_model: Any) -> bool:
    return bool(getattr(sd_model, "is_sd2", False))


def is_sdxl(sd_model: Any) -> bool:
    """SDXL base or refiner, SSD-1B (the WebUI sets ``is_sdxl`` for all of them)."""
    return bool(getattr(sd_model, "is_sdxl", False) or getattr(sd_model, "is_ssd", False))


def excludes_eot(sd_model: Any) -> bool:
    """The automatic EOT rule of the re-normalisation: exclude EOT and padding for the models whose text encoder
    pads with id 0 after EOT (OpenCLIP: SD 2.x, and SDXL's bigG), keep them for SD 1.x (padding = EOT copies).
    A&E's SD 2.1 rule and SD 1.4 rule; SDXL follows the OpenCLIP one."""
    return is_sd2(sd_model) or is_sdxl(sd_model)


LAYER_DEFAULTS = {"sd": "all", "sdxl": "all"}
"""The layer choice that the setting's "automatic" means, per model family. Measured on SDXL base's layout
(``python -m astar_ext.bench.layers``, docs/design.md "SDXL layers"; random weights, CPU): every choice that includes
decoder layers
costs about what ``all`` costs (the early exit stops after the last captured layer, ``output_blocks.2``, in each
case), and the encoder-only choices (``down``, ``down+mid``: 0.4-0.7x the time of ``all``) give latent gradients
that agree only partly with the all-layer objective (cosine -0.15 to 0.65), so ``all`` (Attend-and-Excite's rule)
stays the default everywhere. The rule does not depend on the map resolution (``astar_map_level``): at image/16
"automatic" is also every layer of that level (5 on SD 1.x/2.x, 10 on SDXL; docs/design.md "Map resolution")."""
LAYER_DEFAULTS_TEXT = "all of them on every model"


def layer_choice(sd_model: Any, setting: str) -> str:
    """The :func:`~astar_ext.capture.select_layers` choice for the setting (``"automatic"``: per model family)."""
    if setting and setting != "automatic":
        return setting
    return LAYER_DEFAULTS["sdxl" if is_sdxl(sd_model) else "sd"]


def text_encoders(sd_model: Any) -> list[Any]:
    """The text encoder wrappers that tokenize the prompt (those with ``tokenize_line``), in context order."""
    conditioner = getattr(sd_model, "conditioner", None)
    if conditioner is not None and hasattr(conditioner, "embedders"):
        return [e for e in conditioner.embedders if hasattr(e, "tokenize_line") and hasattr(e, "tokenize")]
    cond = getattr(sd_model, "cond_stage_model", None)
    return [cond] if hasattr(cond, "tokenize_line") and hasattr(cond, "tokenize") else []


def host_refusal(shared: Any) -> str | None:
    """Reasons tied to the program rather than to the model."""
    if "modules_forge" in sys.modules or hasattr(shared, "forge_objects"):
        return ("A-STAR does not run on Forge: Forge samples under torch.inference_mode and uses its own UNet, "
                "so the attention maps cannot carry gradients")
    if getattr(shared, "native", False) or hasattr(shared, "backend"):
        return "A-STAR does not run on SD.Next: it generates through diffusers pipelines, not the WebUI's UNet"
    cmd_opts = getattr(shared, "cmd_opts", None)
    if getattr(cmd_opts, "lowvram", False):
        return ("A-STAR does not run with --lowvram: the UNet's blocks are moved off the GPU before the backward "
                "pass needs them (use --medvram)")
    try:
        from modules import sd_unet
    except ImportError:  # pragma: no cover - very old WebUI
        sd_unet = None
    if sd_unet is not None and getattr(sd_unet, "current_unet", None) is not None:
        return ("A-STAR does not run with a replaced UNet (e.g. TensorRT): it bypasses the attention layers "
                "and autograd")
    return None


def model_refusal(sd_model: Any) -> str | None:
    """Reasons tied to the loaded model."""
    if sd_model is None:
        return "no model is loaded"
    if hasattr(sd_model, "forge_objects"):
        return "A-STAR does not run on Forge models"
    if getattr(sd_model, "is_sd3", False):
        return "A-STAR does not support SD3: its MMDiT has no cross-attention layers"
    if getattr(sd_model, "cond_stage_key", None) == "edit":
        return "A-STAR does not support InstructPix2Pix models"
    inner = getattr(sd_model, "model", None)
    if getattr(inner, "conditioning_key", None) == "crossattn-adm":
        return "A-STAR does not support unCLIP models"
    if getattr(inner, "diffusion_model", None) is None:
        return "the loaded model has no UNet that A-STAR knows (model.diffusion_model)"
    if not text_encoders(sd_model):
        return "the loaded model's text encoder has no tokenize_line, so the concepts cannot be located"
    return None


def refusal(shared: Any, p: Any) -> str | None:
    return host_refusal(shared) or model_refusal(getattr(shared, "sd_model", None))


def _decoder(cond: Any) -> Any:
    tok = getattr(cond, "tokenizer", None)
    if tok is not None and hasattr(tok, "convert_ids_to_tokens"):
        return lambda i: tok.convert_ids_to_tokens(int(i))
    if tok is not None and hasattr(tok, "decoder"):
        return lambda i: tok.decoder[int(i)]
    try:
        from modules import sd_hijack_open_clip
    except Exception:  # noqa: BLE001 - only hints are lost
        return None
    dec = getattr(getattr(sd_hijack_open_clip, "tokenizer", None), "decoder", None)
    return (lambda i: dec[int(i)]) if dec is not None else None


def tokenizer(sd_model: Any) -> Tokenizer:
    """The text encoder wrapper's own tokenization.

    SD 1.x/2.x: ``cond_stage_model``. SDXL: the first text encoder of the conditioner, after checking that
    every other one splits each prompt into the same chunks of the same token ids
    (:func:`~astar_ext.passconcepts.encoders_tokenizer`).
    """
    encoders = text_encoders(sd_model)
    return encoders_tokenizer(encoders, _decoder(encoders[0]))


def hypernetwork_transform(shared: Any) -> Any:
    """The hypernetworks' change of ``context`` for ``to_k`` (what every attention forward applies)."""
    loaded = getattr(shared, "loaded_hypernetworks", None)
    if not loaded:
        return None
    from modules.hypernetworks import hypernetwork

    def transform(context: Any, module: Any) -> Any:
        context_k, _context_v = hypernetwork.apply_hypernetworks(shared.loaded_hypernetworks, context, module)
        return context_k

    return transform


class WebUIHost:
    """The :class:`~astar_ext.hostapi.Host` of AUTOMATIC1111 1.10 (ldm and sgm models; the functions above)."""

    name = "AUTOMATIC1111 WebUI"
    layer_defaults_text = LAYER_DEFAULTS_TEXT

    def refusal(self, shared: Any, p: Any) -> str | None:
        return refusal(shared, p)

    def model_refusal(self, sd_model: Any) -> str | None:
        return model_refusal(sd_model)

    def unet(self, sd_model: Any) -> Any:
        return sd_model.model.diffusion_model

    def tokenizer(self, sd_model: Any) -> Tokenizer:
        return tokenizer(sd_model)

    def excludes_eot(self, sd_model: Any) -> bool:
        return excludes_eot(sd_model)

    def layer_choice(self, sd_model: Any, setting: str) -> str:
        return layer_choice(sd_model, setting)

    def run_options(self, shared: Any, sd_model: Any) -> dict:
        return {"context_transform": hypernetwork_transform(shared), "cond_pass": None, "prepare": None}


HOST = WebUIHost()
