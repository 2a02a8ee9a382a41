"""STAND-IN of Forge Classic's ``ldm_patched/modules/samplers.py``: ``sampling_function`` and
``calc_cond_uncond_batch``.

``sampling_function(model, x, timestep, uncond, cond, cond_scale, model_options={}, seed=None)`` runs
``calc_cond_uncond_batch`` (every condition on the whole batch, the ones that can be concatenated in one
``model.apply_model`` call each, with ``transformer_options`` carrying ``cond_or_uncond``, ``sigmas``,
``cond_mark``, ``cond_indices``, ``uncond_indices``; ``tests/standin/forgelike.py``) and returns
``uncond + (cond - uncond) * cond_scale`` (times the summed strength when it is not 1). Left out: the
``sampler_*_cfg_function`` hooks, cond_scale 1's skipped uncond, areas, masks, ControlNet.
"""

from tests.standin.forgelike import calc_cond_uncond_batch, cfg


def sampling_function(model, x, timestep, uncond, cond, cond_scale, model_options={}, seed=None):  # noqa: B006
    cond_pred, uncond_pred = calc_cond_uncond_batch(model, cond, uncond, x, timestep, model_options)
    return cfg(cond, uncond_pred, cond_pred, cond_scale)
