"""STAND-IN of ``modules/devices.py`` of WebUI 1.10.1 on a CPU-only, ``--no-half`` host.

``device``/``cpu`` are the CPU, every dtype is float32, ``autocast()`` is a ``nullcontext`` (as the real one is
when the dtype is float32), ``without_autocast()`` disables CUDA autocast only if it is on, ``torch_gc`` is a no-op.
"""

import contextlib

import torch

cpu = torch.device("cpu")
device = device_interrogate = device_gfpgan = device_esrgan = device_codeformer = cpu
dtype = torch.float32
dtype_vae = torch.float32
dtype_unet = torch.float32
dtype_inference = torch.float32
unet_needs_upcast = False
fp8 = False
force_fp16 = False


def get_optimal_device():
    return cpu


def get_device_for(task):
    return cpu


def torch_gc():
    pass


def torch_npu_set_device():
    pass


def cond_cast_unet(x):
    return x.to(dtype_unet) if unet_needs_upcast else x


def cond_cast_float(x):
    return x.float() if unet_needs_upcast else x


def autocast(disable=False):
    return contextlib.nullcontext()


def without_autocast(disable=False):
    if torch.is_autocast_enabled() and not disable:
        return torch.autocast("cuda", enabled=False)
    return contextlib.nullcontext()


class NansException(Exception):
    pass


def test_for_nans(x, where):
    if not torch.isnan(x[(0,) * len(x.shape)]):
        return
    raise NansException(f"A tensor with NaNs was produced in {where}.")


def randn(seed, shape, generator=None):
    """A tensor of normal noise of ``shape`` drawn from ``seed`` (or from ``generator`` when given)."""
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=generator, device="cpu").to(device)


def randn_local(seed, shape):
    return randn(seed, shape)


def randn_like(x):
    return torch.randn_like(x, device="cpu").to(x.device)


def randn_without_seed(shape, generator=None):
    return torch.randn(shape, generator=generator, device="cpu").to(device)


def manual_seed(seed):
    torch.manual_seed(seed)
