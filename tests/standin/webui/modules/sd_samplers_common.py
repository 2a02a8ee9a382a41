"""STAND-IN of ``modules/sd_samplers_common.py`` of WebUI 1.10.1.

``SamplerData`` (``total_steps`` doubles for ``second_order``), ``setup_img2img_steps``, ``InterruptedException``
(a ``BaseException``), ``TorchHijack`` (k-diffusion's ``torch.randn_like`` drawn from ``p.rng``), ``apply_refiner``
and the ``Sampler`` base: ``callback_state`` (sets ``state.sampling_step``, honours ``stop_at``),
``launch_sampling`` (returns ``last_latent`` on ``InterruptedException``), ``initialize`` (resets the denoiser's
``step`` to 0, eta and ``s_*`` extra parameters, infotext entries), ``create_noise_sampler`` (k-diffusion's
``BrownianTreeNoiseSampler`` seeded per image; the WebUI's torchsde ``_randn`` replacement is not installed).

Refiner: the switch happens, as in the WebUI, once the completed fraction (from the current sigma, or from the step
count with ``opts.refiner_switch_by_sample_steps``) reaches ``p.refiner_switch_at`` and ``p.refiner_checkpoint_info``
(resolved by ``processing`` from ``p.refiner_checkpoint`` among the checkpoints registered with the harness, e.g.
``webui.add_refiner()``) is not the loaded model: ``sd_models.reload_model_weights`` makes the refiner model
``shared.sd_model``, ``p.setup_conds()`` re-encodes the prompts and ``update_inner_model`` drops ``model_wrap``.
Decoding/encoding use the stand-in model's deterministic ``decode_first_stage``/``encode_first_stage``.
"""

from __future__ import annotations

import inspect
from collections import namedtuple

import k_diffusion.sampling
import numpy as np
import torch
from modules import devices, images, sd_models, shared
from modules.shared import opts, state
from PIL import Image

SamplerDataTuple = namedtuple('SamplerData', ['name', 'constructor', 'aliases', 'options'])


class SamplerData(SamplerDataTuple):
    def total_steps(self, steps):
        return steps * 2 if self.options.get("second_order", False) else steps


def setup_img2img_steps(p, steps=None):
    """-> (steps of the full schedule, t_enc): the img2img pass runs the last ``t_enc + 1`` of them."""
    if opts.img2img_fix_steps or steps is not None:
        requested = steps or p.steps
        steps = int(requested / min(p.denoising_strength, 0.999)) if p.denoising_strength > 0 else 0
        t_enc = requested - 1
    else:
        steps = p.steps
        t_enc = int(min(p.denoising_strength, 0.999) * steps)
    return steps, t_enc


approximation_indexes = {"Full": 0, "Approx NN": 1, "Approx cheap": 2, "TAESD": 3}


def samples_to_images_tensor(sample, approximation=None, model=None):
    """Latents -> RGB ``[-1, 1]`` via the (stand-in) model's ``decode_first_stage`` (every approximation alike)."""
    model = model or shared.sd_model
    with torch.no_grad(), devices.without_autocast():
        return model.decode_first_stage(sample.to(devices.dtype_vae))


def single_sample_to_image(sample, approximation=None):
    x = samples_to_images_tensor(sample.unsqueeze(0), approximation)[0] * 0.5 + 0.5
    x = torch.clamp(x, min=0.0, max=1.0)
    return Image.fromarray((255.0 * np.moveaxis(x.cpu().numpy(), 0, 2)).astype(np.uint8))


def decode_first_stage(model, x):
    return samples_to_images_tensor(x.to(devices.dtype_vae), approximation_indexes.get(opts.sd_vae_decode_method, 0),
                                    model)


def sample_to_image(samples, index=0, approximation=None):
    return single_sample_to_image(samples[index], approximation)


def samples_to_image_grid(samples, approximation=None):
    return images.image_grid([single_sample_to_image(s, approximation) for s in samples])


def images_tensor_to_samples(image, approximation=None, model=None):
    """RGB ``[0, 1]`` ``[B, 3, H, W]`` -> latents via the model's ``encode_first_stage``."""
    model = model or shared.sd_model
    image = image.to(shared.device, dtype=devices.dtype_vae) * 2 - 1
    if len(image) > 1:
        return torch.stack([model.get_first_stage_encoding(model.encode_first_stage(img[None]))[0] for img in image])
    return model.get_first_stage_encoding(model.encode_first_stage(image))


def store_latent(decoded):
    state.current_latent = decoded


def is_sampler_using_eta_noise_seed_delta(p):
    from modules import sd_samplers

    config = sd_samplers.find_sampler_config(p.sampler_name)
    eta = p.eta
    if eta is None and p.sampler is not None:
        eta = p.sampler.eta
    if eta is None and config is not None:
        eta = 0 if config.options.get("default_eta_is_0", False) else 1.0
    if eta == 0:
        return False
    return config.options.get("uses_ensd", False)


class InterruptedException(BaseException):
    pass


def apply_refiner(cfg_denoiser, sigma=None):
    p = cfg_denoiser.p
    if opts.refiner_switch_by_sample_steps or sigma is None:
        completed = cfg_denoiser.step / cfg_denoiser.total_steps
        p.extra_generation_params["Refiner switch by sampling steps"] = True
    else:
        sigmas = getattr(cfg_denoiser.inner_model, "sigmas", None)
        if sigmas is not None:
            timestep = torch.argmin(torch.abs(sigmas.to(sigma.device) - torch.max(sigma)))
        else:  # timestep samplers: sigma is the timestep itself
            timestep = torch.max(sigma).to(dtype=int)
        completed = (999 - timestep) / 1000

    switch_at = p.refiner_switch_at
    info = p.refiner_checkpoint_info
    if switch_at is not None and completed < switch_at:
        return False
    if info is None or shared.sd_model.sd_checkpoint_info == info:
        return False

    if getattr(p, "enable_hr", False):
        second = p.is_hr_pass
        if opts.hires_fix_refiner_pass == "first pass" and second:
            return False
        if opts.hires_fix_refiner_pass == "second pass" and not second:
            return False
        if opts.hires_fix_refiner_pass != "second pass":
            p.extra_generation_params['Hires refiner'] = opts.hires_fix_refiner_pass

    p.extra_generation_params['Refiner'] = info.short_title
    p.extra_generation_params['Refiner switch at'] = switch_at

    with sd_models.SkipWritingToConfig():
        sd_models.reload_model_weights(info=info)

    devices.torch_gc()
    p.setup_conds()
    cfg_denoiser.update_inner_model()
    return True


class TorchHijack:
    """Replaces the ``torch`` name inside ``k_diffusion.sampling``: ``randn_like`` draws from ``p.rng``."""

    def __init__(self, p):
        self.rng = p.rng

    def __getattr__(self, item):
        if item == 'randn_like':
            return self.randn_like
        if hasattr(torch, item):
            return getattr(torch, item)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{item}'")

    def randn_like(self, x):
        return self.rng.next()


class Sampler:
    def __init__(self, funcname):
        self.funcname = funcname
        self.func = funcname
        self.extra_params = []
        self.sampler_noises = None
        self.stop_at = None
        self.eta = None
        self.config: SamplerData = None
        self.last_latent = None
        self.s_min_uncond = None
        self.s_churn = 0.0
        self.s_tmin = 0.0
        self.s_tmax = float('inf')
        self.s_noise = 1.0

        self.eta_option_field = 'eta_ancestral'
        self.eta_infotext_field = 'Eta'
        self.eta_default = 1.0

        self.conditioning_key = getattr(shared.sd_model.model, 'conditioning_key', 'crossattn')

        self.p = None
        self.model_wrap_cfg = None
        self.sampler_extra_args = None
        self.options = {}

    def callback_state(self, d):
        step = d['i']
        if self.stop_at is not None and step > self.stop_at:
            raise InterruptedException
        state.sampling_step = step
        shared.total_tqdm.update()

    def launch_sampling(self, steps, func):
        self.model_wrap_cfg.steps = steps
        self.model_wrap_cfg.total_steps = self.config.total_steps(steps)
        state.sampling_steps = steps
        state.sampling_step = 0
        try:
            return func()
        except RecursionError:
            print('Encountered RecursionError during sampling, returning last latent.')
            return self.last_latent
        except InterruptedException:
            return self.last_latent

    def number_of_needed_noises(self, p):
        return p.steps

    def initialize(self, p) -> dict:
        self.p = p
        den = self.model_wrap_cfg
        den.p = p
        den.mask = p.mask if hasattr(p, 'mask') else None
        den.nmask = p.nmask if hasattr(p, 'nmask') else None
        den.step = 0
        den.image_cfg_scale = getattr(p, 'image_cfg_scale', None)
        self.eta = p.eta if p.eta is not None else getattr(opts, self.eta_option_field, 0.0)
        self.s_min_uncond = getattr(p, 's_min_uncond', 0.0)

        k_diffusion.sampling.torch = TorchHijack(p)

        parameters = inspect.signature(self.func).parameters
        kwargs = {name: getattr(p, name) for name in self.extra_params if hasattr(p, name) and name in parameters}

        if 'eta' in parameters:
            if self.eta != self.eta_default:
                p.extra_generation_params[self.eta_infotext_field] = self.eta
            kwargs['eta'] = self.eta

        if self.extra_params:
            # as in the WebUI, the settings take precedence over the p fields (getattr with p as the fallback)
            overrides = {
                's_churn': (getattr(opts, 's_churn', p.s_churn), self.s_churn, 'Sigma churn'),
                's_tmin': (getattr(opts, 's_tmin', p.s_tmin), self.s_tmin, 'Sigma tmin'),
                's_tmax': (getattr(opts, 's_tmax', p.s_tmax) or self.s_tmax, self.s_tmax, 'Sigma tmax'),
                's_noise': (getattr(opts, 's_noise', p.s_noise), self.s_noise, 'Sigma noise'),
            }
            for name, (value, default, label) in overrides.items():
                if name in kwargs and value != default:
                    kwargs[name] = value
                    setattr(p, name, value)
                    p.extra_generation_params[label] = value

        return kwargs

    def create_noise_sampler(self, x, sigmas, p):
        if shared.opts.no_dpmpp_sde_batch_determinism:
            return None
        from k_diffusion.sampling import BrownianTreeNoiseSampler

        sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
        seeds = p.all_seeds[p.iteration * p.batch_size:(p.iteration + 1) * p.batch_size]
        return BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seeds)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        raise NotImplementedError()

    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None,
                       image_conditioning=None):
        raise NotImplementedError()

    def add_infotext(self, p):
        if self.model_wrap_cfg.padded_cond_uncond:
            p.extra_generation_params["Pad conds"] = True
        if self.model_wrap_cfg.padded_cond_uncond_v0:
            p.extra_generation_params["Pad conds v0"] = True
