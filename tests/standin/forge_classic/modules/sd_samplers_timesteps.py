"""STAND-IN of Forge Classic's ``modules/sd_samplers_timesteps.py``: DDIM, PLMS, UniPC on Classic's backend.

``CFGDenoiserTimesteps`` is Classic's CFG denoiser with ``classic_ddim_eps_estimation`` (the VP latent and the
timestep converted to k-diffusion's inside the denoiser, eps returned) and the WebUI's
``CompVisTimestepsDenoiser`` as ``inner_model``; the sampler functions are the WebUI stand-in's (Classic has no
DDIM CFG++); ``sample``/``sample_img2img`` run between ``sampling_prepare`` and ``sampling_cleanup``.
"""

import sys

from modules import sd_samplers_cfg_denoiser, sd_samplers_common
from modules import webui_module as _webui
from modules_forge.forge_sampler import sampling_cleanup, sampling_prepare

from tests.standin.forgelike import SamplingPrepared

_base = _webui("sd_samplers_timesteps")
samplers_timesteps = [entry for entry in _base.samplers_timesteps if entry[0] != "DDIM CFG++"]


class CFGDenoiserTimesteps(sd_samplers_cfg_denoiser.CFGDenoiser):
    inner_model = _base.CFGDenoiserTimesteps.inner_model

    def __init__(self, sampler):
        super().__init__(sampler)
        self.classic_ddim_eps_estimation = True


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
