"""STAND-IN of Forge's ``backend/sampling/sampling_function.py``: how the CFG denoiser runs the UNet.

``sampling_function(self, denoiser_params, cond_scale, cond_composition)`` (``self`` is the CFG denoiser) takes the
UNet patcher from ``self.inner_model.inner_model.forge_objects.unet``; the uncond is one condition, the cond one
condition per AND-part position (the batch's rows of that part, with the part's weight as ``strength``,
``compile_weighted_conditions``); ``image_cond`` (or the patcher's ``extra_concat_condition``) becomes ``c_concat``
when its size matches ``x``; SDXL's ``vector`` becomes ``y``. ``calc_cond_uncond_batch`` runs every condition on the
whole ``x`` batch, batching the conditions that can be concatenated (cross-attention contexts of different lengths
repeated to their lowest common multiple, ``backend/sampling/condition.py``) into one ``model.apply_model(input_x,
timestep_, **c)`` call each (with ``transformer_options`` carrying ``cond_or_uncond``, ``sigmas``, ``cond_mark``,
``cond_indices``, ``uncond_indices``), then averages the cond outputs weighted by strength; the result is ``uncond +
(cond - uncond) * cond_scale`` (times the summed strength when it is not 1). Returns ``(denoised, cond_pred,
uncond_pred)``. ``sampling_prepare`` loads the patcher (``load_models_gpu``) and ``sampling_cleanup`` ends the run.
Left out: area and mask conditions, ControlNet, the model-option hooks (``sampler_pre_cfg_function``...), the memory-
based splitting of the batch, cond_scale 1's skipped uncond.
"""

from backend import memory_management

from tests.standin.forgelike import add_image_cond, calc_cond_uncond_batch, cfg, conditions, weighted_conditions


def sampling_function(self, denoiser_params, cond_scale, cond_composition):
    unet_patcher = self.inner_model.inner_model.forge_objects.unet
    model = unet_patcher.model
    x = denoiser_params.x
    timestep = denoiser_params.sigma
    uncond = conditions(denoiser_params.text_uncond)
    cond = weighted_conditions(denoiser_params.text_cond, cond_composition)
    image_cond = unet_patcher.extra_concat_condition
    if image_cond is None:
        image_cond = denoiser_params.image_cond
    add_image_cond(cond + (uncond or []), image_cond, x)
    cond_pred, uncond_pred = calc_cond_uncond_batch(model, cond, uncond, x, timestep, unet_patcher.model_options)
    return cfg(cond, uncond_pred, cond_pred, cond_scale), cond_pred, uncond_pred


def sampling_prepare(unet, x):
    memory_management.load_models_gpu([unet] + unet.extra_model_patchers_during_sampling,
                                      memory_required=unet.memory_required([x.shape[0] * 2, *x.shape[1:]]))


def sampling_cleanup(unet):
    pass
