"""STAND-IN of Forge's ``modules/sd_samplers_kdiffusion.py``: the k-diffusion samplers on Forge's backend.

``CFGDenoiserKDiffusion.inner_model`` is a ``ForgeScheduleLinker`` (``k_diffusion/external.py``): the model's
predictor's sigmas, ``inner_model`` the loaded model. ``KDiffusionSampler.sample``/``sample_img2img`` call
``sampling_prepare(unet_patcher, x)`` first and ``sampling_cleanup`` after; the rest (sigmas, noise scaling, the
sampler function's arguments) as in the WebUI stand-in. Forge's extra k-diffusion samplers (HeunPP2, IPNDM,
IPNDM_V, DEIS, DDPM) are not in the stand-in: the k-diffusion package of the tests does not have them.
"""

import k_diffusion.sampling
import torch
from backend.sampling.sampling_function import sampling_cleanup, sampling_prepare
from modules import sd_samplers_cfg_denoiser, sd_samplers_common, shared
from modules import webui_module as _webui

from tests.standin.forgelike import SamplingPrepared

_base = _webui("sd_samplers_kdiffusion")
samplers_k_diffusion = _base.samplers_k_diffusion
sampler_extra_params = _base.sampler_extra_params
k_diffusion_scheduler = _base.k_diffusion_scheduler


class ForgeScheduleLinker(torch.nn.Module):
    """``k_diffusion.external.ForgeScheduleLinker``: sigmas from the Forge predictor."""

    def __init__(self, predictor):
        super().__init__()
        self.predictor = predictor

    @property
    def sigmas(self):
        return self.predictor.sigmas

    @property
    def log_sigmas(self):
        return self.predictor.sigmas.log()

    @property
    def sigma_min(self):
        return self.predictor.sigma_min()

    @property
    def sigma_max(self):
        return self.predictor.sigma_max()

    def get_sigmas(self, n=None):
        if n is None:
            return k_diffusion.sampling.append_zero(self.sigmas.flip(0))
        t = torch.linspace(len(self.sigmas) - 1, 0, n, device=self.sigmas.device)
        return k_diffusion.sampling.append_zero(self.t_to_sigma(t))

    def sigma_to_t(self, sigma, quantize=None):
        return self.predictor.timestep(sigma)

    def t_to_sigma(self, t):
        return self.predictor.sigma(t)


class CFGDenoiserKDiffusion(sd_samplers_cfg_denoiser.CFGDenoiser):
    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = ForgeScheduleLinker(shared.sd_model.forge_objects.unet.model.predictor)
            self.model_wrap.inner_model = shared.sd_model
        return self.model_wrap


class KDiffusionSampler(SamplingPrepared, _base.KDiffusionSampler):
    prepare, cleanup = staticmethod(sampling_prepare), staticmethod(sampling_cleanup)

    def __init__(self, funcname, sd_model, options=None):
        super().__init__(funcname, sd_model, options)
        self.model_wrap_cfg = CFGDenoiserKDiffusion(self)
        self.model_wrap = self.model_wrap_cfg.inner_model


samplers_data_k_diffusion = [
    sd_samplers_common.SamplerData(label, lambda model, funcname=funcname: KDiffusionSampler(funcname, model),
                                   aliases, options)
    for label, funcname, aliases, options in samplers_k_diffusion
    if callable(funcname) or hasattr(k_diffusion.sampling, funcname)
]
k_diffusion_samplers_map = {x.name: x for x in samplers_data_k_diffusion}
