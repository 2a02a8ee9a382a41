"""STAND-IN of Forge Classic's ``ldm_patched/modules/model_base.py`` (``BaseModel``, eps prediction).

``apply_model(x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs)``: ``t`` is
sigma; ``model_sampling.calculate_input`` scales ``x``, ``c_concat`` is concatenated on the channels,
``model_sampling.timestep(t)`` is the UNet's timestep, the other keyword conditions (``y``) go to the UNet, and
``model_sampling.calculate_denoised`` gives the denoised latent (``tests/standin/forgelike.py``).
"""

import torch

from tests.standin.forgelike import Prediction, apply_eps_model


class BaseModel(torch.nn.Module):
    def __init__(self, diffusion_model, alphas_cumprod):
        super().__init__()
        self.diffusion_model = diffusion_model
        self.model_sampling = Prediction(alphas_cumprod)
        self.manual_cast_dtype = None

    def get_dtype(self):
        return torch.float32

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs):
        return apply_eps_model(self.diffusion_model, self.model_sampling, self.get_dtype(), x, t, c_concat,
                               c_crossattn, control, transformer_options, **kwargs)

    def memory_required(self, input_shape):
        return 0
