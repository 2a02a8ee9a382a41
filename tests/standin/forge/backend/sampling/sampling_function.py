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

import math

import torch
from backend import memory_management


def _compile(cond, rows, strength):
    if isinstance(cond, dict):
        model_conds = {"c_crossattn": cond["crossattn"][rows], "y": cond["vector"][rows]}
    else:
        model_conds = {"c_crossattn": cond[rows]}
    return {"model_conds": model_conds, "strength": strength}


def compile_weighted_conditions(cond, weights):
    results = []
    for part in map(list, zip(*weights)):
        rows = [i for i, _ in part]
        results.append(_compile(cond, rows, part[-1][1]))
    return results


def compile_conditions(cond):
    if cond is None:
        return None
    n = (cond["crossattn"] if isinstance(cond, dict) else cond).shape[0]
    return [_compile(cond, list(range(n)), 1.0)]


def _can_concat(a, b):
    """``backend/sampling/condition.py``: conditions batch together when their tensors have the same shapes, except
    that cross-attention contexts of different lengths may (repeated to the lowest common multiple of the lengths,
    at most 4 times the shorter one: a prompt with BREAK has 154 tokens, its negative 77)."""
    if a.keys() != b.keys():
        return False
    for key in a:
        s1, s2 = a[key].shape, b[key].shape
        if key == "c_crossattn" and s1[0] == s2[0] and s1[2:] == s2[2:]:
            if math.lcm(s1[1], s2[1]) // min(s1[1], s2[1]) > 4:
                return False
        elif s1 != s2:
            return False
    return True


def _cat(conds):
    out = {}
    for key in conds[0]:
        tensors = [c[key] for c in conds]
        if key == "c_crossattn":
            length = math.lcm(*(t.shape[1] for t in tensors))
            tensors = [t.repeat(1, length // t.shape[1], 1) for t in tensors]
        out[key] = torch.cat(tensors)
    return out


def calc_cond_uncond_batch(model, cond, uncond, x_in, timestep, model_options):
    to_run = [(c, 0) for c in cond] + ([(c, 1) for c in uncond] if uncond is not None else [])
    out_cond = torch.zeros_like(x_in)
    count = torch.ones_like(x_in) * 1e-37
    out_uncond = torch.zeros_like(x_in)
    n = int(timestep.shape[0])
    while to_run:
        first = to_run[0][0]["model_conds"]
        entries = [e for e in to_run if _can_concat(e[0]["model_conds"], first)]
        to_run = [e for e in to_run if all(e is not f for f in entries)]
        batch = len(entries)
        input_x = torch.cat([x_in] * batch)
        timestep_ = torch.cat([timestep] * batch)
        c = _cat([e["model_conds"] for e, _ in entries])
        cond_or_uncond = [kind for _, kind in entries]
        transformer_options = dict(model_options.get("transformer_options", {}))
        transformer_options["cond_or_uncond"] = cond_or_uncond
        transformer_options["sigmas"] = timestep
        transformer_options["cond_mark"] = torch.tensor([k for k in cond_or_uncond for _ in range(n)]).to(timestep)
        rows = [(i * n + j, k) for i, k in enumerate(cond_or_uncond) for j in range(n)]
        transformer_options["cond_indices"] = [r for r, k in rows if k == 0]
        transformer_options["uncond_indices"] = [r for r, k in rows if k == 1]
        output = model.apply_model(input_x, timestep_, transformer_options=transformer_options, **c).chunk(batch)
        for (entry, kind), out in zip(entries, output):
            if kind == 0:
                out_cond += out * entry["strength"]
                count += entry["strength"]
            else:
                out_uncond += out
    return out_cond / count, out_uncond


def sampling_function(self, denoiser_params, cond_scale, cond_composition):
    unet_patcher = self.inner_model.inner_model.forge_objects.unet
    model = unet_patcher.model
    x = denoiser_params.x
    timestep = denoiser_params.sigma
    uncond = compile_conditions(denoiser_params.text_uncond)
    cond = compile_weighted_conditions(denoiser_params.text_cond, cond_composition)
    image_cond = unet_patcher.extra_concat_condition
    if image_cond is None:
        image_cond = denoiser_params.image_cond
    if isinstance(image_cond, torch.Tensor) and image_cond.shape[0] == x.shape[0] \
            and image_cond.shape[2:] == x.shape[2:]:
        for entry in cond + (uncond or []):
            entry["model_conds"]["c_concat"] = image_cond
    edit_strength = sum(entry["strength"] for entry in cond)
    cond_pred, uncond_pred = calc_cond_uncond_batch(model, cond, uncond, x, timestep, unet_patcher.model_options)
    if not math.isclose(edit_strength, 1.0):
        denoised = uncond_pred + (cond_pred - uncond_pred) * cond_scale * edit_strength
    else:
        denoised = uncond_pred + (cond_pred - uncond_pred) * cond_scale
    return denoised, cond_pred, uncond_pred


def sampling_prepare(unet, x):
    memory_management.load_models_gpu([unet] + unet.extra_model_patchers_during_sampling,
                                      memory_required=unet.memory_required([x.shape[0] * 2, *x.shape[1:]]))


def sampling_cleanup(unet):
    pass
