"""STAND-IN of ``modules/sd_samplers_timesteps_impl.py`` of WebUI 1.10.1: DDIM, DDIM CFG++, PLMS, UniPC.

Own implementations with the WebUI's call patterns (``model`` is the ``CFGDenoiserTimesteps``; its ``sigma``
argument is the timestep; it returns the guided eps):

* ``ddim``: ``len(timesteps) - 1`` iterations from the largest timestep down to ``timesteps[1]``, one denoiser call
  on the sampler's own ``x`` per iteration, then the step callback (``i`` = iteration); noise ``eta``-scaled from
  ``k_diffusion.sampling.torch.randn_like`` (drawn even when eta is 0, as in the WebUI).
* ``ddim_cfgpp``: the same loop, the direction term uses the uncond prediction (``need_last_noise_uncond``) and the
  CFG scale is divided by 12.5.
* ``plms``: the first iteration calls the denoiser twice (the second time on the intermediate ``x_prev`` at the
  next timestep) before the callback, later iterations once (Adams-Bashforth over up to 4 previous eps).
* ``unipc``: a SIMPLIFIED predictor-corrector stand-in, NOT UniPC's math: one call on the sampler's ``x`` at the
  start, then per step a predictor point (a new tensor) is evaluated, the latent is recomputed from the previous
  latent and both predictions (the corrector), and the callback fires; the last step makes no call. Sequence
  ``M s c s c ... s c c``: only the very first call sees the sampler's own latent, so in-place edits of later
  calls do not persist (what matters for refusing UniPC). ``sigma`` is the continuous ``(t - 1/1000) * 1000``.
"""

import k_diffusion.sampling
import torch
import tqdm


def _alphas(model, timesteps, x):
    alphas_cumprod = model.inner_model.inner_model.alphas_cumprod
    alphas = alphas_cumprod[timesteps]
    previous = torch.cat([timesteps.new_zeros(1), timesteps[:-1]])
    alphas_prev = alphas_cumprod[previous].to(torch.float64 if x.device.type != "mps" else torch.float32)
    return alphas, alphas_prev


def _ddim_loop(model, x, timesteps, extra_args, callback, disable, eta, direction_eps):
    alphas, alphas_prev = _alphas(model, timesteps, x)
    sigmas = eta * ((1 - alphas_prev) / (1 - alphas.double()) * (1 - alphas.double() / alphas_prev)).sqrt()
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones((x.shape[0],))
    s_x = x.new_ones((x.shape[0], 1, 1, 1))

    for i in tqdm.trange(len(timesteps) - 1, disable=disable):
        index = len(timesteps) - 1 - i
        e_t = model(x, timesteps[index].item() * s_in, **extra_args)

        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        sigma_t = sigmas[index].item() * s_x

        pred_x0 = (x - (1 - a_t).sqrt() * e_t) / a_t.sqrt()
        direction = (1.0 - a_prev - sigma_t ** 2).sqrt() * direction_eps(e_t)
        noise = sigma_t * k_diffusion.sampling.torch.randn_like(x)
        x = a_prev.sqrt() * pred_x0 + direction + noise

        if callback is not None:
            callback({'x': x, 'i': i, 'sigma': 0, 'sigma_hat': 0, 'denoised': pred_x0})
    return x


@torch.no_grad()
def ddim(model, x, timesteps, extra_args=None, callback=None, disable=None, eta=0.0):
    return _ddim_loop(model, x, timesteps, extra_args, callback, disable, eta, lambda e_t: e_t)


@torch.no_grad()
def ddim_cfgpp(model, x, timesteps, extra_args=None, callback=None, disable=None, eta=0.0):
    model.cond_scale_miltiplier = 1 / 12.5
    model.need_last_noise_uncond = True
    return _ddim_loop(model, x, timesteps, extra_args, callback, disable, eta, lambda e_t: model.last_noise_uncond)


@torch.no_grad()
def plms(model, x, timesteps, extra_args=None, callback=None, disable=None):
    alphas, alphas_prev = _alphas(model, timesteps, x)
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    history = []

    def step_from(x, e_t, index):
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        pred_x0 = (x - (1 - a_t).sqrt() * e_t) / a_t.sqrt()
        return a_prev.sqrt() * pred_x0 + (1.0 - a_prev).sqrt() * e_t, pred_x0

    adams_bashforth = {1: ([3, -1], 2), 2: ([23, -16, 5], 12), 3: ([55, -59, 37, -9], 24)}

    for i in tqdm.trange(len(timesteps) - 1, disable=disable):
        index = len(timesteps) - 1 - i
        t = timesteps[index].item() * s_in
        t_next = timesteps[max(index - 1, 0)].item() * s_in

        e_t = model(x, t, **extra_args)
        if not history:
            x_prev, _ = step_from(x, e_t, index)
            e_next = model(x_prev, t_next, **extra_args)
            e_used = (e_t + e_next) / 2
        else:
            coefficients, divisor = adams_bashforth[min(len(history), 3)]
            eps = [e_t] + history[::-1]
            e_used = sum(c * e for c, e in zip(coefficients, eps)) / divisor

        x_new, pred_x0 = step_from(x, e_used, index)
        history.append(e_t)
        del history[:-3]
        x = x_new

        if callback is not None:
            callback({'x': x, 'i': i, 'sigma': 0, 'sigma_hat': 0, 'denoised': pred_x0})
    return x


@torch.no_grad()
def unipc(model, x, timesteps, extra_args=None, callback=None, disable=None, is_img2img=False):
    alphas_cumprod = model.inner_model.inner_model.alphas_cumprod
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    steps = len(timesteps)
    t_start = (timesteps[-1].item() / 1000 + 1 / 1000) if is_img2img else 1.0
    t_cont = torch.linspace(t_start, 1 / 1000, steps + 1)

    def model_input_time(t):
        return (t - 1 / 1000) * 1000

    def alpha(t):
        return alphas_cumprod[int(round(min(max(model_input_time(t), 0), 999)))].item()

    def ddim_to(x, eps, t, t_next):
        a, a_next = alpha(t), alpha(t_next)
        pred_x0 = (x - (1 - a) ** 0.5 * eps) / a ** 0.5
        return a_next ** 0.5 * pred_x0 + (1 - a_next) ** 0.5 * eps, pred_x0

    eps = model(x, model_input_time(t_cont[0].item()) * s_in, **extra_args)
    for i in tqdm.trange(steps, disable=disable):
        t, t_next = t_cont[i].item(), t_cont[i + 1].item()
        x_pred, pred_x0 = ddim_to(x, eps, t, t_next)
        if i < steps - 1:
            eps_next = model(x_pred, model_input_time(t_next) * s_in, **extra_args)
            x, pred_x0 = ddim_to(x, (eps + eps_next) / 2, t, t_next)
            eps = eps_next
        else:
            x = x_pred
        if callback is not None:
            callback({'x': x, 'i': i, 'sigma': 0, 'sigma_hat': 0, 'denoised': pred_x0})
    return x
