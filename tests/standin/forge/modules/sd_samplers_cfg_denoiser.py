"""STAND-IN of Forge's ``modules/sd_samplers_cfg_denoiser.py``: ``CFGDenoiser.forward``.

``forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond)`` in Forge's order:
``InterruptedException`` when interrupted/skipped; with ``classic_ddim_eps_estimation`` (the timestep samplers) the
VP latent and timestep become ``x * sqrt(sigma^2 + 1)`` and the sigma of the timestep (from the model's
``alphas_cumprod``); ``apply_refiner``; ``reconstruct_multicond_batch(cond, self.step)`` /
``reconstruct_cond_batch(uncond, self.step)``; the img2img mask; ``cfg_denoiser_callback``; the hires
``cond_scale``; ``sampling_function(self, denoiser_params=..., cond_scale=..., cond_composition=...)``
(``backend/sampling/sampling_function.py``); mask blend; ``sampler.last_latent``; ``store_latent``;
``cfg_after_cfg_callback``; ``self.step += 1``; the eps back for the timestep samplers. With
``need_last_noise_uncond`` (DDIM CFG++) ``last_noise_uncond = (x - uncond_pred) / sigma``, computed from the
converted ``x``/``sigma`` right after ``sampling_function``, as Forge does. ``inner_model`` is the sampler's wrapper
whose ``inner_model`` is the loaded model. Left out: skip-early-CFG/NGMS.
"""

import torch
from modules import prompt_parser, sd_samplers_common
from modules import webui_module as _webui
from modules.script_callbacks import (
    AfterCFGCallbackParams,
    CFGDenoiserParams,
    cfg_after_cfg_callback,
    cfg_denoiser_callback,
)
from modules.shared import state

_base = _webui("sd_samplers_cfg_denoiser")
catenate_conds, subscript_cond, pad_cond = _base.catenate_conds, _base.subscript_cond, _base.pad_cond


class CFGDenoiser(_base.CFGDenoiser):
    def __init__(self, sampler):
        super().__init__(sampler)
        self.classic_ddim_eps_estimation = False

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        if state.interrupted or state.skipped:
            raise sd_samplers_common.InterruptedException
        original_device, original_dtype = x.device, x.dtype
        if self.classic_ddim_eps_estimation:
            acd = self.inner_model.inner_model.alphas_cumprod
            fake_sigmas = ((1 - acd) / acd) ** 0.5
            real_sigma = fake_sigmas[sigma.round().long().clip(0, int(fake_sigmas.shape[0]))]
            x = x * ((real_sigma ** 2.0 + 1.0) ** 0.5)[:, None, None, None]
            sigma = real_sigma
        if sd_samplers_common.apply_refiner(self, x):
            cond = self.sampler.sampler_extra_args['cond']
            uncond = self.sampler.sampler_extra_args['uncond']
        cond_composition, cond = prompt_parser.reconstruct_multicond_batch(cond, self.step)
        uncond = prompt_parser.reconstruct_cond_batch(uncond, self.step) if uncond is not None else None
        if self.mask is not None:
            noisy = self.init_latent + torch.randn_like(self.init_latent) * sigma[:, None, None, None]
            x = x * self.nmask + noisy * self.mask
        params = CFGDenoiserParams(x, image_cond, sigma, state.sampling_step, state.sampling_steps, cond, uncond, self)
        cfg_denoiser_callback(params)
        if self.p.is_hr_pass:
            cond_scale = getattr(self.p, "hr_cfg", cond_scale)
        denoised, uncond_pred = self._denoise(params, cond_scale, cond_composition)
        if self.need_last_noise_uncond:
            self.last_noise_uncond = (x - uncond_pred) / sigma[:, None, None, None]
        if self.mask is not None:
            denoised = denoised * self.nmask + self.init_latent * self.mask
        self.sampler.last_latent = denoised
        sd_samplers_common.store_latent(denoised)
        after = AfterCFGCallbackParams(denoised, state.sampling_step, state.sampling_steps)
        cfg_after_cfg_callback(after)
        denoised = after.x
        self.step += 1
        if self.classic_ddim_eps_estimation:
            return (x - denoised) / sigma[:, None, None, None]
        return denoised.to(device=original_device, dtype=original_dtype)

    def _denoise(self, params, cond_scale, cond_composition):
        """The backend's CFG step: ``(denoised, uncond_pred)``."""
        from backend.sampling.sampling_function import sampling_function

        denoised, _cond_pred, uncond_pred = sampling_function(self, denoiser_params=params, cond_scale=cond_scale,
                                                              cond_composition=cond_composition)
        return denoised, uncond_pred
