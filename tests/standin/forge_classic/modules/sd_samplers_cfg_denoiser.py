"""STAND-IN of Forge Classic's ``modules/sd_samplers_cfg_denoiser.py``: ``CFGDenoiser.forward``.

Classic's ``forward`` is Forge main's older form (the Forge main stand-in's, in the same order: interrupt,
``classic_ddim_eps_estimation``, ``apply_refiner``, ``reconstruct_multicond_batch``, mask, ``cfg_denoiser_callback``,
the CFG step, mask blend, ``last_latent``, ``cfg_after_cfg_callback``, ``self.step += 1``), whose CFG step is
``modules_forge.forge_sampler.forge_sample(self, denoiser_params=..., cond_scale=..., cond_composition=...)``,
which returns the denoised latent only (Classic has no DDIM CFG++, so no ``last_noise_uncond``).
"""

from modules import forge_module

_forge = forge_module("sd_samplers_cfg_denoiser")
catenate_conds, subscript_cond, pad_cond = _forge.catenate_conds, _forge.subscript_cond, _forge.pad_cond


class CFGDenoiser(_forge.CFGDenoiser):
    def _denoise(self, params, cond_scale, cond_composition):
        from modules_forge import forge_sampler

        denoised = forge_sampler.forge_sample(self, denoiser_params=params, cond_scale=cond_scale,
                                              cond_composition=cond_composition)
        return denoised, None
