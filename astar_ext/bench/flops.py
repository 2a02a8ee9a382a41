"""FLOP count of plain and A-STAR sampling steps of the full-size UNets, without a GPU or weights.

``python -m astar_ext.bench.flops --config sd15`` (or ``sdxl``) builds the UNet on PyTorch's ``meta``
device (shapes only, no memory, no arithmetic) and counts the floating-point operations of the
matrix products, convolutions and attention (``torch.utils.flop_counter``'s formulas) of

* a plain sampling step: one UNet forward of the CFG batch (cond + uncond rows, batch 2 per image);
* A-STAR's loss pass: the conditional forward with the attention capture, to the early exit or through
  the whole UNet, and its backward pass to the latent with frozen weights (with and without
  ``checkpoint_blocks``, whose backward includes the recomputation);

and from these the compute-bound estimate of the time ratio of a generation at the configuration's
steps and window. Elementwise operations, normalisations and the maps/losses are not counted; a GPU
runs small batches and backward kernels less efficiently than a forward of the CFG batch, so the
measured ratio will be higher than this estimate. It is an estimate of where the work is, not a
measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from .. import params as P
from ..capture import LAYER_CHOICES, MAP_LEVELS, AttentionCapture, frozen, level_name, select_layers
from ..checkpointing import checkpointed_blocks
from .host import use_sdp_attention
from .models import SPECS, build_unet


class FlopCount(TorchDispatchMode):
    """Sum of ``torch.utils.flop_counter``'s FLOP formulas over the operators that run inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rule = flop_registry.get(func._overloadpacket)
        if rule is not None:
            self.total += rule(*args, **kwargs, out_val=out)
        return out


def _count(fn: Callable[[], Any]) -> int:
    mode = FlopCount()
    with mode:
        fn()
    return mode.total


def count_flops(config: str, width: int | None = None, height: int | None = None, layers: str = "all",
                level: int = 2) -> dict:
    """FLOPs of a plain step and of the loss pass's parts for ``config`` at ``width`` x ``height``
    (``layers``: the captured layers at ``level``, a :data:`~astar_ext.capture.LAYER_CHOICES` value; ``level`` 2 =
    image/32, 1 = image/16)."""
    spec = SPECS[config]
    width, height = width or spec.width, height or spec.height
    if config == "tiny":
        unet = _tiny_unet().to("meta")  # small; its initialisation reads values
    else:
        with torch.device("meta"):
            unet = build_unet(config)
    use_sdp_attention(unet)
    context_dim = spec.context_dim

    def inputs(b: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        x = torch.zeros(b, 4, height // 8, width // 8, device="meta")
        kw: dict[str, Any] = {"context": torch.zeros(b, 77, context_dim, device="meta")}
        if spec.sdxl:
            kw["y"] = torch.zeros(b, 2816, device="meta")
        return x, torch.ones(b, device="meta"), kw

    with torch.no_grad():
        x, t, kw = inputs(2)
        plain = _count(lambda: unet(x, t, **kw))
    capture = AttentionCapture(unet, layers=select_layers(unet, level, layers))
    columns = torch.tensor([[2, 5]], device="meta")

    def loss_pass(early_exit: bool, checkpoint: bool = False) -> tuple[int, int]:
        x, t, kw = inputs(1)
        z = x.requires_grad_(True)
        blocks = checkpointed_blocks(unet, capture.layers) if checkpoint else contextlib.nullcontext()
        with capture, frozen(unet), blocks, torch.enable_grad():
            fwd = FlopCount()
            with fwd:
                with capture.recording(columns, early_exit=early_exit) as rec:
                    unet(z, t, **kw)
                loss = sum(p.sum() for p in rec.probs.values())
            bwd = FlopCount()
            with bwd:
                torch.autograd.grad(loss, z)
        return fwd.total, bwd.total

    out = {"config": config, "size": f"{width}x{height}", "layers": len(capture.layers), "plain_step": plain,
           "maps": level_name(level)}
    out["forward"], out["backward"] = loss_pass(True)
    out["forward_no_exit"], out["backward_no_exit"] = loss_pass(False)
    _, out["backward_checkpoint"] = loss_pass(True, checkpoint=True)
    return out


def _tiny_unet() -> torch.nn.Module:
    from .tiny import TinyLDM

    return TinyLDM().diffusion_model


def estimate(flops: dict, steps: int, window: float) -> dict:
    """Compute-bound time ratio of a generation: ``steps`` plain steps, plus a loss pass (forward +
    backward) at each of the ``round(window * steps)`` optimised steps and one no-gradient forward at
    the end of the window (the overlap measurement)."""
    n = max(1, round(window * steps))
    plain = flops["plain_step"]

    def ratio(fwd: float, bwd: float) -> float:
        return (steps * plain + n * (fwd + bwd) + fwd) / (steps * plain)

    return {"optimised_steps": n,
            "default": ratio(flops["forward"], flops["backward"]),
            "no_early_exit": ratio(flops["forward_no_exit"], flops["backward_no_exit"]),
            "checkpoint_blocks": ratio(flops["forward"], flops["backward_checkpoint"])}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m astar_ext.bench.flops", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(SPECS), default="sd15")
    ap.add_argument("--size", default=None, help="WIDTHxHEIGHT (default: the config's)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the config's)")
    ap.add_argument("--window", type=float, default=P.DEFAULTS.window)
    ap.add_argument("--layers", choices=LAYER_CHOICES, default="all", help="the captured layers at the --level")
    ap.add_argument("--level", type=int, choices=sorted(MAP_LEVELS.values()), default=2,
                    help="the maps' level: 2 = image/32 (default), 1 = image/16 (the WebUI setting astar_map_level)")
    args = ap.parse_args(argv)
    spec = SPECS[args.config]
    width, height = (int(v) for v in args.size.lower().split("x")) if args.size else (spec.width, spec.height)
    steps = args.steps or spec.steps
    f = count_flops(args.config, width, height, args.layers, args.level)
    e = estimate(f, steps, args.window)
    plain = f["plain_step"]
    w = sys.stdout.write
    w(f"FLOP count (meta device, matmul/conv/attention only): {args.config} {f['size']}, {f['layers']} captured "
      f"layers at {f['maps']}, {steps} steps, window {args.window} ({e['optimised_steps']} optimised steps)\n")
    w(f"  {'plain step (CFG batch of 2)':44s}{plain / 1e12:9.3f} TFLOP  1.000\n")
    for label, key in (("loss-pass forward (early exit)", "forward"),
                       ("loss-pass forward (whole UNet)", "forward_no_exit"),
                       ("backward to the latent (frozen weights)", "backward"),
                       ("backward with checkpoint_blocks", "backward_checkpoint")):
        w(f"  {label:44s}{f[key] / 1e12:9.3f} TFLOP  {f[key] / plain:.3f}\n")
    w(f"compute-bound estimate of A-STAR / plain: default {e['default']:.2f}x, without the early exit "
      f"{e['no_early_exit']:.2f}x, with checkpoint_blocks {e['checkpoint_blocks']:.2f}x\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
