"""STAND-IN of Forge Classic's ``modules/sd_samplers_kdiffusion.py``: the WebUI's k-diffusion samplers, with the
CFG denoiser of Classic (``CFGDenoiserKDiffusion.inner_model`` is k-diffusion's ``CompVisDenoiser`` around the
loaded model, as in the WebUI) and ``sample``/``sample_img2img`` between ``sampling_prepare`` and
``sampling_cleanup`` (``modules_forge/forge_sampler.py``). Classic's list of samplers is the WebUI's older one
(schedules in the names: "DPM++ 2M Karras"); the stand-in keeps the WebUI stand-in's list: A-STAR keys its plans on
the sampler function, which is the same.
"""

from modules import sd_samplers_cfg_denoiser, sd_samplers_common
from modules import webui_module as _webui
from modules_forge.forge_sampler import sampling_cleanup, sampling_prepare

from tests.standin.forgelike import SamplingPrepared

_base = _webui("sd_samplers_kdiffusion")
samplers_k_diffusion = _base.samplers_k_diffusion
sampler_extra_params = _base.sampler_extra_params
k_diffusion_scheduler = _base.k_diffusion_scheduler


class CFGDenoiserKDiffusion(sd_samplers_cfg_denoiser.CFGDenoiser):
    inner_model = _base.CFGDenoiserKDiffusion.inner_model


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
]
k_diffusion_samplers_map = {x.name: x for x in samplers_data_k_diffusion}
