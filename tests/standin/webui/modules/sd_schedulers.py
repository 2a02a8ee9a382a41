"""STAND-IN of ``modules/sd_schedulers.py`` of WebUI 1.10.1: the noise schedules of the "Schedule type" setting.

Same ``Scheduler`` records (name, label, function, default_rho, need_inner_model, aliases) and ``schedulers_map``
(by name and label) for Automatic, Uniform, Karras, Exponential, Polyexponential, SGM Uniform, KL Optimal, Simple,
Normal, DDIM and Beta; "Align Your Steps" is left out. Karras/Exponential/Polyexponential are k-diffusion's
functions. (The WebUI also swaps ``k_diffusion.sampling.to_d`` for an identical function; not needed here.)
"""

from __future__ import annotations

import dataclasses

import k_diffusion.sampling
import torch


@dataclasses.dataclass
class Scheduler:
    name: str
    label: str
    function: any
    default_rho: float = -1
    need_inner_model: bool = False
    aliases: list = None


def uniform(n, sigma_min, sigma_max, inner_model, device):
    return inner_model.get_sigmas(n).to(device)


def _with_zero(values, device):
    return torch.FloatTensor([float(v) for v in values] + [0.0]).to(device)


def sgm_uniform(n, sigma_min, sigma_max, inner_model, device):
    t_max = inner_model.sigma_to_t(torch.tensor(sigma_max))
    t_min = inner_model.sigma_to_t(torch.tensor(sigma_min))
    ts = torch.linspace(t_max, t_min, n + 1)[:-1]
    return _with_zero([inner_model.t_to_sigma(t) for t in ts], device)


def kl_optimal(n, sigma_min, sigma_max, device):
    a_min = torch.arctan(torch.tensor(sigma_min, device=device))
    a_max = torch.arctan(torch.tensor(sigma_max, device=device))
    frac = torch.arange(n + 1, device=device) / n
    return torch.tan(frac * a_min + (1.0 - frac) * a_max)


def simple_scheduler(n, sigma_min, sigma_max, inner_model, device):
    stride = len(inner_model.sigmas) / n
    return _with_zero([inner_model.sigmas[-(1 + int(i * stride))] for i in range(n)], device)


def normal_scheduler(n, sigma_min, sigma_max, inner_model, device, sgm=False, floor=False):
    t_max = inner_model.sigma_to_t(torch.tensor(sigma_max))
    t_min = inner_model.sigma_to_t(torch.tensor(sigma_min))
    ts = torch.linspace(t_max, t_min, n + 1)[:-1] if sgm else torch.linspace(t_max, t_min, n)
    return _with_zero([inner_model.t_to_sigma(t) for t in ts], device)


def ddim_scheduler(n, sigma_min, sigma_max, inner_model, device):
    stride = max(len(inner_model.sigmas) // n, 1)
    picked = [inner_model.sigmas[i] for i in range(1, len(inner_model.sigmas), stride)]
    return _with_zero(picked[::-1], device)


def beta_scheduler(n, sigma_min, sigma_max, inner_model, device):
    from modules import shared
    from scipy import stats

    quantiles = [stats.beta.ppf(x, shared.opts.beta_dist_alpha, shared.opts.beta_dist_beta)
                 for x in 1 - torch.linspace(0, 1, n).double().numpy()]
    return _with_zero([sigma_min + q * (sigma_max - sigma_min) for q in quantiles], device)


schedulers = [
    Scheduler('automatic', 'Automatic', None),
    Scheduler('uniform', 'Uniform', uniform, need_inner_model=True),
    Scheduler('karras', 'Karras', k_diffusion.sampling.get_sigmas_karras, default_rho=7.0),
    Scheduler('exponential', 'Exponential', k_diffusion.sampling.get_sigmas_exponential),
    Scheduler('polyexponential', 'Polyexponential', k_diffusion.sampling.get_sigmas_polyexponential, default_rho=1.0),
    Scheduler('sgm_uniform', 'SGM Uniform', sgm_uniform, need_inner_model=True, aliases=["SGMUniform"]),
    Scheduler('kl_optimal', 'KL Optimal', kl_optimal),
    Scheduler('simple', 'Simple', simple_scheduler, need_inner_model=True),
    Scheduler('normal', 'Normal', normal_scheduler, need_inner_model=True),
    Scheduler('ddim', 'DDIM', ddim_scheduler, need_inner_model=True),
    Scheduler('beta', 'Beta', beta_scheduler, need_inner_model=True),
]

schedulers_map = {**{x.name: x for x in schedulers}, **{x.label: x for x in schedulers}}
