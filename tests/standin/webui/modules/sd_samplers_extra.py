"""STAND-IN of ``modules/sd_samplers_extra.py`` of WebUI 1.10.1: ``restart_sampler`` ("Restart").

A simplified Restart sampler with the WebUI's irregular call pattern: Heun steps (denoiser call on the step's own
latent, step callback, then a second call on the Euler point unless the next sigma is 0); from 20 steps on, the base
schedule is shortened and, after the step that reaches sigma ~0.1, the latent is re-noised (``randn_like`` from
``p.rng``) back to sigma ~2 and that stretch is re-run with a few extra Heun steps (one restart for < 36 steps,
two otherwise). Step indices in the callback keep counting through the restarts.
"""

import k_diffusion.sampling
import torch
import tqdm


@torch.no_grad()
def restart_sampler(model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1., restart_list=None):
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    to_d = k_diffusion.sampling.to_d
    karras = k_diffusion.sampling.get_sigmas_karras
    counter = {"i": 0}

    def heun(x, sigma, sigma_next):
        denoised = model(x, sigma * s_in, **extra_args)
        d = to_d(x, sigma, denoised)
        if callback is not None:
            callback({'x': x, 'i': counter["i"], 'sigma': sigma_next, 'sigma_hat': sigma, 'denoised': denoised})
        dt = sigma_next - sigma
        if sigma_next == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigma_next, model(x_2, sigma_next * s_in, **extra_args))
            x = x + (d + d_2) / 2 * dt
        counter["i"] += 1
        return x

    steps = len(sigmas) - 1
    segments = []
    if restart_list is None and steps >= 20:
        extra_steps, times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = karras(steps - extra_steps * times, sigmas[-2].item(), sigmas[0].item(), device=sigmas.device)
        at = int(torch.argmin(abs(sigmas - 0.1)))
        back_to = int(torch.argmin(abs(sigmas - 2)))
        if back_to < at:
            restart_sigmas = karras(extra_steps + 1, sigmas[at].item(), sigmas[back_to].item(), device=sigmas.device)
            segments = [(at, restart_sigmas[:-1])] * times

    plan = []
    for i in range(len(sigmas) - 1):
        plan.append((sigmas[i], sigmas[i + 1]))
        for at, restart_sigmas in segments:
            if at == i + 1:
                plan.extend(zip(restart_sigmas[:-1], restart_sigmas[1:]))

    previous = None
    for sigma, sigma_next in tqdm.tqdm(plan, disable=disable):
        if previous is not None and previous < sigma:
            x = x + k_diffusion.sampling.torch.randn_like(x) * s_noise * (sigma ** 2 - previous ** 2) ** 0.5
        x = heun(x, sigma, sigma_next)
        previous = sigma_next
    return x
