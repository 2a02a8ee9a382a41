"""What A-STAR asks of the host and the loaded model, and the reasons it declines.

Each ``*_refusal`` returns ``None`` when A-STAR can run, or a sentence for the infotext.
The checks follow ``webui-host.md`` §8 and §10: Forge runs sampling under inference mode with its
own UNet; SD.Next runs diffusers pipelines; SD3 has no ``attn2``; a replaced UNet (TensorRT)
bypasses the attention modules and autograd; ``--lowvram`` moves each block off the GPU before
the backward pass needs it; InstructPix2Pix and unCLIP models batch their conditioning
differently. SDXL is declined until its support lands.
"""

from __future__ import annotations

import sys
from typing import Any

from .concepts import Tokenizer


def is_sd2(sd_model: Any) -> bool:
    return bool(getattr(sd_model, "is_sd2", False))


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
    if getattr(sd_model, "is_sdxl", False) or getattr(sd_model, "is_ssd", False):
        return "A-STAR does not support SDXL yet"
    if getattr(sd_model, "cond_stage_key", None) == "edit":
        return "A-STAR does not support InstructPix2Pix models"
    inner = getattr(sd_model, "model", None)
    if getattr(inner, "conditioning_key", None) == "crossattn-adm":
        return "A-STAR does not support unCLIP models"
    if getattr(inner, "diffusion_model", None) is None:
        return "the loaded model has no UNet that A-STAR knows (model.diffusion_model)"
    cond = getattr(sd_model, "cond_stage_model", None)
    if not hasattr(cond, "tokenize_line") or not hasattr(cond, "tokenize"):
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
    """The text encoder wrapper's own tokenization (SD 1.x and SD 2.x)."""
    cond = sd_model.cond_stage_model
    return Tokenizer(cond.tokenize_line, cond.tokenize, int(cond.id_end), _decoder(cond))


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
