"""STAND-IN of Forge Classic's ``modules_forge/forge_sampler.py``.

``forge_sample(self, denoiser_params, cond_scale, cond_composition)`` (``self`` is the CFG denoiser): the model is
``self.inner_model.inner_model.forge_objects.unet.model``; the uncond becomes one condition and the cond one per
AND-part position (``cond_from_a1111_to_patched_ldm(_weighted)``, the part's weight as ``strength``; SDXL's
``vector`` becomes ``y``); the patcher's ``extra_concat_condition`` or ``image_cond`` becomes ``c_concat`` when its
size matches ``x``; then ``ldm_patched.modules.samplers.sampling_function(model, x, timestep, uncond, cond,
cond_scale, model_options, seed)``. ``sampling_prepare(unet, x)`` loads the patcher
(``model_management.load_models_gpu``, under inference mode), ``sampling_cleanup(unet)`` ends the run. Left out:
ControlNet and the ``conditioning_modifiers``.
"""

from ldm_patched.modules import model_management
from ldm_patched.modules.samplers import sampling_function

from tests.standin.forgelike import add_image_cond, conditions, weighted_conditions


def forge_sample(self, denoiser_params, cond_scale, cond_composition):
    patcher = self.inner_model.inner_model.forge_objects.unet
    model = patcher.model
    x = denoiser_params.x
    timestep = denoiser_params.sigma
    uncond = conditions(denoiser_params.text_uncond)
    cond = weighted_conditions(denoiser_params.text_cond, cond_composition)
    image_cond = patcher.extra_concat_condition
    if image_cond is None:
        image_cond = denoiser_params.image_cond
    add_image_cond(cond + uncond, image_cond, x)
    return sampling_function(model, x, timestep, uncond, cond, cond_scale, patcher.model_options, self.p.seeds[0])


def sampling_prepare(unet, x):
    model_management.load_models_gpu(models=[unet] + unet.extra_model_patchers_during_sampling,
                                     memory_required=unet.memory_required([x.shape[0] * 2, *x.shape[1:]]))


def sampling_cleanup(unet):
    pass
