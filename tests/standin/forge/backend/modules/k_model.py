"""STAND-IN of Forge's ``backend/modules/k_model.py`` (``KModel``) and ``k_prediction.py`` (the eps predictor).

``KModel.apply_model(x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs)``:
``t`` is sigma; the UNet input is ``predictor.calculate_input(sigma, x)`` (``x / sqrt(sigma^2 + 1)``), ``c_concat``
is concatenated on the channels, the timestep is ``predictor.timestep(sigma)`` (the nearest of the model's
discrete log-sigmas), the other keyword conditions (``y``) go to the UNet, and the result is
``predictor.calculate_denoised`` (``x - eps * sigma``); ``tests/standin/forgelike.py`` has the arithmetic.
"""

import torch

from tests.standin.forgelike import Prediction, apply_eps_model


class KModel(torch.nn.Module):
    def __init__(self, diffusion_model, alphas_cumprod, storage_dtype=torch.float32):
        super().__init__()
        self.diffusion_model = diffusion_model
        self.predictor = Prediction(alphas_cumprod)
        self.storage_dtype = storage_dtype
        self.computation_dtype = torch.float32

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs):
        return apply_eps_model(self.diffusion_model, self.predictor, self.computation_dtype, x, t, c_concat,
                               c_crossattn, control, transformer_options, **kwargs)

    def memory_required(self, input_shape):
        return 0
