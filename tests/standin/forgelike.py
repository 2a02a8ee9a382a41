"""STAND-IN building blocks that WebUI Forge main (``tests/standin/forge``) and Forge Classic
(``tests/standin/forge_classic``) share, for tests only (MIT; nothing here is Forge code).

Forge main's ``backend`` and Forge Classic's ``ldm_patched`` descend from the same code (ComfyUI's), and the parts
that A-STAR meets are the same in both, under other module names:

* the attention kernels ``attention_pytorch`` and ``attention_sub_quad(q, k, v, heads, mask=None)`` on
  ``[B, N, heads*d]`` projections (Forge main ``backend/attention.py``; Classic ``ldm_patched/ldm/modules/
  attention.py``); on a CPU both pick the sub-quadratic kernel, whose chunked softmax computes
  ``torch.exp(x, out=x)`` (``sub_quadratic_attention.py``), which autograd refuses;
* ``CrossAttention.forward(x, context=None, value=None, mask=None, transformer_options=...)``, which calls the
  kernel its module holds in a global, and ``BasicTransformerBlock._forward``, which adds each sub-layer's output to
  the residual stream IN PLACE (``x += n``) after ``norm1``/``norm2``/``norm3`` read it (:func:`inference_forwards`);
* the model's ``apply_model(x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None,
  **kwargs)`` with an eps predictor (Forge main ``KModel`` + ``predictor``; Classic ``BaseModel`` +
  ``model_sampling``): :class:`Prediction`, :func:`apply_eps_model`;
* how the CFG step batches conditions (``calc_cond_uncond_batch``: Forge main ``backend/sampling/
  sampling_function.py``, Classic ``ldm_patched/modules/samplers.py``): :func:`calc_cond_uncond_batch`.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import types

import torch

WEBUI_MODULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "webui", "modules")


# --- laying a Forge line's ``modules`` over the WebUI stand-in's --------------------------------------------------
def overlay_webui_modules(package: types.ModuleType):
    """Make ``package`` (a stand-in's ``modules``) fall back to the WebUI stand-in's ``modules`` for the files it
    does not have; returns ``webui_module(name)``, which loads the WebUI stand-in's ``modules/<name>.py`` once as
    ``modules._webui_<name>`` so that a changed module can build on it."""
    package.__path__.append(WEBUI_MODULES)

    def webui_module(name):
        key = f"{package.__name__}._webui_{name}"
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, os.path.join(WEBUI_MODULES, f"{name}.py"))
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            spec.loader.exec_module(module)
        return sys.modules[key]

    return webui_module


class InferenceModeTorch(types.ModuleType):
    """``torch`` for the WebUI stand-in's processing, whose ``torch.no_grad()`` opens the batch loop: the Forge
    lines' ``torch.inference_mode()`` there (Forge main ``modules/processing.py:911``, Classic ``:829``)."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def no_grad():
        return torch.inference_mode()


# --- the samplers' sample() between sampling_prepare and sampling_cleanup -----------------------------------------
class SamplingPrepared:
    """Mixin for a WebUI stand-in sampler class: ``sample``/``sample_img2img`` call
    ``sampling_prepare(unet_patcher, x=x)`` first and ``sampling_cleanup(unet_patcher)`` after, as both Forge lines'
    ``KDiffusionSampler`` and ``CompVisSampler`` do (the patcher of the loaded model, reached through the sampler's
    model wrapper). A subclass sets ``prepare`` and ``cleanup`` (``staticmethod``)."""

    prepare = cleanup = None

    def _prepared(self, method, p, x, *args, **kwargs):
        unet = self.model_wrap.inner_model.forge_objects.unet
        type(self).prepare(unet, x=x)
        samples = method(p, x, *args, **kwargs)
        type(self).cleanup(unet)
        return samples

    def sample(self, p, x, *args, **kwargs):
        return self._prepared(super().sample, p, x, *args, **kwargs)

    def sample_img2img(self, p, x, *args, **kwargs):
        return self._prepared(super().sample_img2img, p, x, *args, **kwargs)


# --- attention kernels ------------------------------------------------------------------------------------------
def _heads(t, heads):
    b, n, _ = t.shape
    return t.reshape(b, n, heads, -1).transpose(1, 2)


def attention_pytorch(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False):
    b, n, _ = q.shape
    out = torch.nn.functional.scaled_dot_product_attention(_heads(q, heads), _heads(k, heads), _heads(v, heads),
                                                           attn_mask=mask)
    return out.transpose(1, 2).reshape(b, n, -1)


def attention_sub_quad(query, key, value, heads, mask=None, attn_precision=None, skip_reshape=False):
    b, n, _ = query.shape
    q, k, v = _heads(query, heads), _heads(key, heads), _heads(value, heads)
    scores = q @ k.transpose(-1, -2) * (q.shape[-1] ** -0.5)
    if mask is not None:
        scores = scores + mask
    scores = scores - scores.amax(-1, keepdim=True)
    torch.exp(scores, out=scores)  # what Forge's chunked kernel does; autograd refuses it
    out = (scores / scores.sum(-1, keepdim=True)) @ v
    return out.transpose(1, 2).reshape(b, n, -1)


# --- the UNet's block and attention forwards ----------------------------------------------------------------------
def inference_forwards(unet, kernel):
    """Give ``unet``'s ``BasicTransformerBlock`` s and ``CrossAttention`` s Forge's forwards (per instance; the
    weights and module names stay); ``kernel(mask)`` returns the attention function the host's module holds at
    call time (so a change of that module global reaches the UNet, as in Forge). Returns ``unet``."""

    def attention_forward(self, x, context=None, value=None, mask=None, transformer_options=None):
        q = self.to_q(x)
        context = x if context is None else context
        k = self.to_k(context)
        v = self.to_v(value if value is not None else context)
        return self.to_out(kernel(mask)(q, k, v, self.heads, mask))

    def block_forward(self, x, context=None, transformer_options=None):
        n = self.norm1(x)
        n = self.attn1(n, context=None, value=None, transformer_options=transformer_options)
        x += n
        n = self.norm2(x)
        n = self.attn2(n, context=context, value=None, transformer_options=transformer_options)
        x += n
        x_skip = x
        x = self.ff(self.norm3(x))
        x += x_skip
        return x

    for module in unet.modules():
        name = type(module).__name__
        if name == "BasicTransformerBlock":
            module.forward = types.MethodType(block_forward, module)
        elif name in ("CrossAttention", "MemoryEfficientCrossAttention"):
            module.forward = types.MethodType(attention_forward, module)
    return unet


# --- the eps model ------------------------------------------------------------------------------------------------
class Prediction(torch.nn.Module):
    """The discrete eps schedule of an ldm model (``sigmas`` from ``alphas_cumprod``): Forge main's
    ``k_prediction.Prediction``, Classic's ``ModelSamplingDiscrete`` + ``EPS``."""

    def __init__(self, alphas_cumprod):
        super().__init__()
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.register_buffer("sigmas", sigmas.float(), persistent=False)
        self.register_buffer("log_sigmas", sigmas.log().float(), persistent=False)

    def sigma_min(self):
        return self.sigmas[0]

    def sigma_max(self):
        return self.sigmas[-1]

    def timestep(self, sigma):
        dists = sigma.log().to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def sigma(self, timestep):
        t = torch.clamp(timestep.float(), min=0, max=len(self.sigmas) - 1)
        low, high = t.floor().long(), t.ceil().long()
        w = t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()

    def percent_to_sigma(self, percent):
        return self.sigma(torch.tensor((1.0 - percent) * 999.0)).item()

    def calculate_input(self, sigma, noise):
        return noise / (sigma.view(sigma.shape[:1] + (1,) * (noise.ndim - 1)) ** 2 + 1.0) ** 0.5

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_input - model_output * sigma.view(sigma.shape[:1] + (1,) * (model_output.ndim - 1))

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        scale = (1.0 + sigma ** 2.0) ** 0.5 if max_denoise else sigma
        return noise * scale + latent_image


def apply_eps_model(diffusion_model, prediction, dtype, x, t, c_concat=None, c_crossattn=None, control=None,
                    transformer_options=None, **kwargs):
    """``apply_model``: ``t`` is sigma; the UNet input is ``calculate_input(sigma, x)`` (``x / sqrt(sigma^2 + 1)``),
    ``c_concat`` concatenated on the channels, the timestep the nearest discrete one, the other keyword conditions
    (``y``) go to the UNet, and the result is ``calculate_denoised`` (``x - eps * sigma``)."""
    sigma = t
    xc = prediction.calculate_input(sigma, x)
    if c_concat is not None:
        xc = torch.cat([xc, c_concat], dim=1)
    t = prediction.timestep(t).float()
    extra = {k: v for k, v in kwargs.items() if k == "y"}
    out = diffusion_model(xc.to(dtype), t, context=c_crossattn.to(dtype), control=control,
                          transformer_options=transformer_options, **extra).float()
    return prediction.calculate_denoised(sigma, out, x)


# --- the CFG step's conditions and their batching ----------------------------------------------------------------
def _compile(cond, rows, strength):
    if isinstance(cond, dict):
        model_conds = {"c_crossattn": cond["crossattn"][rows], "y": cond["vector"][rows]}
    else:
        model_conds = {"c_crossattn": cond[rows]}
    return {"model_conds": model_conds, "strength": strength}


def weighted_conditions(cond, weights):
    """The WebUI's cond batch as conditions: one per AND-part position (the batch's rows of that part, with the
    part's weight as ``strength``; Forge main ``compile_weighted_conditions``, Classic
    ``cond_from_a1111_to_patched_ldm_weighted``); SDXL's ``vector`` becomes ``y``."""
    results = []
    for part in map(list, zip(*weights)):
        rows = [i for i, _ in part]
        results.append(_compile(cond, rows, part[-1][1]))
    return results


def conditions(cond):
    """The uncond batch as one condition (None stays None)."""
    if cond is None:
        return None
    n = (cond["crossattn"] if isinstance(cond, dict) else cond).shape[0]
    return [_compile(cond, list(range(n)), 1.0)]


def add_image_cond(entries, image_cond, x):
    """``image_cond`` becomes every condition's ``c_concat`` when its batch and size match ``x``."""
    if isinstance(image_cond, torch.Tensor) and image_cond.shape[0] == x.shape[0] \
            and image_cond.shape[2:] == x.shape[2:]:
        for entry in entries:
            entry["model_conds"]["c_concat"] = image_cond


def _can_concat(a, b):
    """``condition.py``/``conds.py``: conditions batch together when their tensors have the same shapes, except that
    cross-attention contexts of different lengths may (repeated to the lowest common multiple of the lengths, at
    most 4 times the shorter one: a prompt with BREAK has 154 tokens, its negative 77)."""
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
    """Every condition (``{"model_conds": {...}, "strength": w}``) on the whole ``x`` batch, the ones that can be
    concatenated in one ``model.apply_model(input_x, timestep_, transformer_options=..., **c)`` call each (with
    ``cond_or_uncond``, ``sigmas``, ``cond_mark``, ``cond_indices``, ``uncond_indices``); returns the cond outputs
    averaged by strength and the uncond output."""
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


def cfg(cond, uncond_pred, cond_pred, cond_scale):
    """The CFG result, with the summed strength of the AND parts when it is not 1 (both hosts)."""
    strength = sum(entry["strength"] for entry in cond)
    if not math.isclose(strength, 1.0):
        return uncond_pred + (cond_pred - uncond_pred) * cond_scale * strength
    return uncond_pred + (cond_pred - uncond_pred) * cond_scale
