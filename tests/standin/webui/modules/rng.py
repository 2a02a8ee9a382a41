"""STAND-IN of ``modules/rng.py`` of WebUI 1.10.1: ``ImageRNG`` (one CPU ``torch.Generator`` per image seed).

``next()`` first returns the seeded noise of every image (variation seeds blended by ``slerp``), then further
draws from the same generators (used by ancestral samplers via ``TorchHijack``); after the first draw the
generators are re-seeded with ``seed + eta_noise_seed_delta`` when that option is set. Noise values differ from
the WebUI's GPU/NV generators; ``seed_resize_from_w/h`` is ignored.
"""

import torch
from modules import devices, shared


def slerp(val, low, high):
    """Spherical interpolation between two noise tensors (per batch row)."""
    low_n = low / torch.norm(low, dim=1, keepdim=True)
    high_n = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_n * high_n).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def create_generator(seed):
    return torch.Generator(device="cpu").manual_seed(int(seed))


class ImageRNG:
    def __init__(self, shape, seeds, subseeds=None, subseed_strength=0.0, seed_resize_from_h=0, seed_resize_from_w=0):
        self.shape = tuple(int(s) for s in shape)
        self.seeds = seeds
        self.subseeds = subseeds
        self.subseed_strength = subseed_strength
        self.seed_resize_from_h = seed_resize_from_h
        self.seed_resize_from_w = seed_resize_from_w
        self.generators = [create_generator(seed) for seed in seeds]
        self.is_first = True

    def first(self):
        xs = []
        for i, generator in enumerate(self.generators):
            noise = devices.randn(None, self.shape, generator=generator)
            if self.subseeds is not None and self.subseed_strength != 0:
                subseed = self.subseeds[i] if i < len(self.subseeds) else 0
                noise = slerp(self.subseed_strength, noise, devices.randn(subseed, self.shape))
            xs.append(noise)

        delta = shared.opts.eta_noise_seed_delta or 0
        if delta:
            self.generators = [create_generator(seed + delta) for seed in self.seeds]
        return torch.stack(xs).to(shared.device)

    def next(self):
        if self.is_first:
            self.is_first = False
            return self.first()
        return torch.stack([devices.randn_without_seed(self.shape, generator=g) for g in self.generators]).to(
            shared.device)
