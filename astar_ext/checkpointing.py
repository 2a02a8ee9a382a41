"""Activation checkpointing of the UNet blocks that hold no captured layer, for the loss pass only.

The loss pass keeps, for its backward pass, the activations of every UNet block it runs. Most of
them belong to blocks before the captured layers (for SD 1.x at 512 px the 64x64 and 32x32 levels
of ``input_blocks.0-6``, whose self-attention runs over 4096 tokens) and hold no hook. Inside
:func:`checkpointed_blocks`, each such block's ``forward`` runs under
``torch.utils.checkpoint.checkpoint(use_reentrant=False)``: only the block's inputs are kept, and
the block is run a second time during the backward pass to rebuild what it needs. Memory falls to
the captured blocks' activations plus one input per block; time grows by one forward of those
blocks per gradient pass. The values and gradients are the same.

Blocks that contain a captured layer are left alone: their hooks record (and may raise the early
exit) inside the block, which a recomputation would not repeat. The per-instance ``forward`` is
restored on exit, also after an exception (hooks and patches are owned, as everywhere in the
extension).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

BLOCK_LISTS = ("input_blocks", "middle_block", "output_blocks")


def unet_blocks(unet: nn.Module) -> list[tuple[str, nn.Module]]:
    """The top-level blocks of an ldm/sgm ``UNetModel`` in execution order: each of ``input_blocks``,
    the ``middle_block``, each of ``output_blocks`` (names relative to ``unet``)."""
    out = []
    for attr in BLOCK_LISTS:
        part = getattr(unet, attr, None)
        if part is None:
            continue
        if attr == "middle_block":
            out.append((attr, part))
        else:
            out.extend((f"{attr}.{i}", block) for i, block in enumerate(part))
    return out


def blocks_without(unet: nn.Module, layers: Sequence[str]) -> list[tuple[str, nn.Module]]:
    """The blocks of :func:`unet_blocks` that contain none of ``layers`` and come before the last of
    them (later blocks do not run in an early-exit pass and need no checkpointing)."""
    blocks = unet_blocks(unet)
    holds = [any(layer == name or layer.startswith(name + ".") for layer in layers) for name, _ in blocks]
    if not any(holds):
        return []
    last = max(i for i, h in enumerate(holds) if h)
    return [blocks[i] for i in range(last) if not holds[i]]


def _checkpointed(forward: Callable) -> Callable:
    @functools.wraps(forward)
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


@contextlib.contextmanager
def checkpointed_blocks(unet: nn.Module, layers: Sequence[str]) -> Iterator[int]:
    """Run the blocks of :func:`blocks_without` ``layers`` under activation checkpointing inside the
    block; yields how many blocks were wrapped. An instance-level ``forward`` that a block already had
    (another extension's) is wrapped too and put back on exit."""
    patched: list[tuple[nn.Module, Callable | None]] = []
    try:
        for _, block in blocks_without(unet, layers):
            own = block.__dict__.get("forward")
            block.forward = _checkpointed(own if own is not None else block.forward)
            patched.append((block, own))
        yield len(patched)
    finally:
        for block, own in reversed(patched):
            if own is None:
                del block.forward
            else:
                block.forward = own
