"""STAND-IN of Forge's ``backend/modules/k_model.py`` (``KModel``) and ``k_prediction.py`` (the eps predictor).

``KModel.apply_model(x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs)``:
``t`` is sigma; the UNet input is ``predictor.calculate_input(sigma, x)`` (``x / sqrt(sigma^2 + 1)``), ``c_concat``
is concatenated on the channels, the timestep is ``predictor.timestep(sigma)`` (the nearest of the model's
discrete log-sigmas), the other keyword conditions (``y``) go to the UNet, and the result is
``predictor.calculate_denoised`` (``x - eps * sigma``).
"""

import torch


class Prediction(torch.nn.Module):
    """The discrete eps schedule of an ldm model (``sigmas`` from ``alphas_cumprod``)."""

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


class KModel(torch.nn.Module):
    def __init__(self, diffusion_model, alphas_cumprod, storage_dtype=torch.float32):
        super().__init__()
        self.diffusion_model = diffusion_model
        self.predictor = Prediction(alphas_cumprod)
        self.storage_dtype = storage_dtype
        self.computation_dtype = torch.float32

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs):
        sigma = t
        xc = self.predictor.calculate_input(sigma, x)
        if c_concat is not None:
            xc = torch.cat([xc, c_concat], dim=1)
        t = self.predictor.timestep(t).float()
        extra = {k: v for k, v in kwargs.items() if k == "y"}
        out = self.diffusion_model(xc.to(self.computation_dtype), t, context=c_crossattn.to(self.computation_dtype),
                                   control=control, transformer_options=transformer_options, **extra).float()
        return self.predictor.calculate_denoised(sigma, out, x)

    def memory_required(self, input_shape):
        return 0
