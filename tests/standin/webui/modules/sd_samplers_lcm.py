"""STAND-IN of ``modules/sd_samplers_lcm.py`` of WebUI 1.10.1: the LCM sampler.

SIMPLIFIED: ``CFGDenoiserLCM.inner_model`` reuses k-diffusion's ``CompVisDenoiser`` (the WebUI builds an
``LCMCompVisDenoiser`` over 50 of the 1000 timesteps with LCM's skip/out scalings). ``sample_lcm`` keeps the LCM
loop: one denoiser call per step on the sampler's latent, the callback, then the latent is replaced by the
prediction plus fresh noise at the next sigma.
"""

import k_diffusion.external
import modules.shared as shared
import torch
from k_diffusion.sampling import default_noise_sampler, trange
from modules import sd_samplers_cfg_denoiser, sd_samplers_common, sd_samplers_kdiffusion


@torch.no_grad()
def sample_lcm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = default_noise_sampler(x) if noise_sampler is None else noise_sampler
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({'x': x, 'i': i, 'sigma': sigmas[i], 'sigma_hat': sigmas[i], 'denoised': denoised})
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


class CFGDenoiserLCM(sd_samplers_cfg_denoiser.CFGDenoiser):
    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = k_diffusion.external.CompVisDenoiser(shared.sd_model)
        return self.model_wrap


class LCMSampler(sd_samplers_kdiffusion.KDiffusionSampler):
    def __init__(self, funcname, sd_model, options=None):
        super().__init__(funcname, sd_model, options)
        self.model_wrap_cfg = CFGDenoiserLCM(self)
        self.model_wrap = self.model_wrap_cfg.inner_model


samplers_lcm = [('LCM', sample_lcm, ['k_lcm'], {})]
samplers_data_lcm = [
    sd_samplers_common.SamplerData(label, (lambda model, funcname=funcname: LCMSampler(funcname, model)), aliases,
                                   options)
    for label, funcname, aliases, options in samplers_lcm
]
