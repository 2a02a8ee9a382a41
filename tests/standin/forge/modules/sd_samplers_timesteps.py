"""STAND-IN of Forge's ``modules/sd_samplers_timesteps.py``: DDIM, DDIM CFG++, PLMS, UniPC on Forge's backend.

``CFGDenoiserTimesteps`` sets ``classic_ddim_eps_estimation`` (the CFG denoiser converts the VP latent and the
timestep to k-diffusion's and returns eps); its ``inner_model`` is ``CompVisTimestepsDenoiser(shared.sd_model)``,
which sets the model's ``alphas_cumprod`` from the predictor's sigmas. The sampler functions
(``sd_samplers_timesteps_impl``) and the rest are the WebUI stand-in's; ``sample``/``sample_img2img`` call
``sampling_prepare``/``sampling_cleanup`` around them as Forge does.
"""

import sys

from backend.sampling.sampling_function import sampling_cleanup, sampling_prepare
from modules import sd_samplers_cfg_denoiser, sd_samplers_common, shared
from modules import webui_module as _webui

from tests.standin.forgelike import SamplingPrepared

_base = _webui("sd_samplers_timesteps")
samplers_timesteps = _base.samplers_timesteps


class CompVisTimestepsDenoiser(_base.CompVisTimestepsDenoiser):
    def __init__(self, model, *args, **kwargs):
        super().__init__(model, *args, **kwargs)
        self.inner_model.alphas_cumprod = 1.0 / (model.forge_objects.unet.model.predictor.sigmas ** 2.0 + 1.0)


class CFGDenoiserTimesteps(sd_samplers_cfg_denoiser.CFGDenoiser):
    def __init__(self, sampler):
        super().__init__(sampler)
        self.classic_ddim_eps_estimation = True

    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = CompVisTimestepsDenoiser(shared.sd_model)
        return self.model_wrap


class CompVisSampler(SamplingPrepared, _base.CompVisSampler):
    prepare, cleanup = staticmethod(sampling_prepare), staticmethod(sampling_cleanup)

    def __init__(self, funcname, sd_model):
        super().__init__(funcname, sd_model)
        self.model_wrap_cfg = CFGDenoiserTimesteps(self)
        self.model_wrap = self.model_wrap_cfg.inner_model


samplers_data_timesteps = [
    sd_samplers_common.SamplerData(label, lambda model, funcname=funcname: CompVisSampler(funcname, model), aliases,
                                   options)
    for label, funcname, aliases, options in samplers_timesteps
]
sys.modules['modules.sd_samplers_compvis'] = sys.modules[__name__]
