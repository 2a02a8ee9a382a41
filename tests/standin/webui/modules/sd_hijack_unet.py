"""STAND-IN of the part of ``modules/sd_hijack_unet.py`` of WebUI 1.10.1 that lets the UNet run at sizes that are not
multiples of 64 px: the WebUI replaces the ``th`` (torch) module of ldm's and sgm's ``openaimodel`` by an object whose
``cat`` resizes the first of two tensors (the decoder's upsampled features) to the spatial size of the second (the
encoder's skip connection) with nearest-neighbour interpolation before concatenating; every other attribute is torch's.

``install()`` / ``uninstall()`` put it on ldm's ``openaimodel`` and take it off (the harness does both); the WebUI
installs it when ``modules.sd_hijack`` is imported and never removes it.
"""

from __future__ import annotations

import torch


class UnetTorch:
    """torch, except that ``cat`` of two feature maps of different sizes first resizes the first one."""

    def __getattr__(self, name):
        return getattr(torch, name)

    def cat(self, tensors, *args, **kwargs):
        if len(tensors) == 2:
            first, second = tensors
            if first.shape[-2:] != second.shape[-2:]:
                first = torch.nn.functional.interpolate(first, size=second.shape[-2:], mode="nearest")
            tensors = (first, second)
        return torch.cat(tensors, *args, **kwargs)


th = UnetTorch()
_saved: list = []


def install():
    from ldm.modules.diffusionmodules import openaimodel

    if not _saved:
        _saved.append(openaimodel.th)
    openaimodel.th = th


def uninstall():
    from ldm.modules.diffusionmodules import openaimodel

    if _saved:
        openaimodel.th = _saved.pop()
