"""STAND-IN of Forge's ``modules/sd_samplers_common.py``: the WebUI stand-in's, with Forge's ``Sampler.__init__``,
whose ``conditioning_key`` is always ``'crossattn'`` (Forge's models have no ``model.conditioning_key``)."""

from modules import webui_module as _webui

_base = _webui("sd_samplers_common")
globals().update({k: v for k, v in vars(_base).items() if not k.startswith("__")})


class Sampler(_base.Sampler):
    def __init__(self, funcname):
        self.funcname = funcname
        self.func = funcname
        self.extra_params = []
        self.sampler_noises = None
        self.stop_at = None
        self.eta = None
        self.config = None
        self.last_latent = None
        self.s_min_uncond = None
        self.s_churn = 0.0
        self.s_tmin = 0.0
        self.s_tmax = float('inf')
        self.s_noise = 1.0
        self.eta_option_field = 'eta_ancestral'
        self.eta_infotext_field = 'Eta'
        self.eta_default = 1.0
        self.conditioning_key = 'crossattn'
        self.p = None
        self.model_wrap_cfg = None
        self.sampler_extra_args = None
        self.options = {}
