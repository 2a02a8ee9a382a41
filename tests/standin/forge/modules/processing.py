"""STAND-IN of Forge's ``modules/processing.py``: the WebUI stand-in's processing with Forge's differences.

* The batch loop runs under ``torch.inference_mode()`` (Forge's ``process_images_inner``, where the WebUI has
  ``torch.no_grad()``): in ``process_before_every_sampling`` and during sampling, inference mode is on and the
  latents and conditionings are inference tensors.
* ``p.sd_model.forge_objects`` is re-copied from ``forge_objects_after_applying_lora`` just before the txt2img
  sampling (and so before ``process_before_every_sampling``), as Forge does.
* ``txt2img_image_conditioning``: Forge's non-inpainting models get the ``[B, 5, 1, 1]`` zeros.
"""

from modules import webui_module as _webui

from tests.standin.forgelike import InferenceModeTorch

_base = _webui("processing")
_base.torch = InferenceModeTorch("torch")
globals().update({k: v for k, v in vars(_base).items() if not k.startswith("__") and k != "torch"})


def txt2img_image_conditioning(sd_model, x, width, height):
    return x.new_zeros(x.shape[0], 5, 1, 1, dtype=x.dtype, device=x.device)


class StableDiffusionProcessingTxt2Img(_base.StableDiffusionProcessingTxt2Img):
    def txt2img_image_conditioning(self, x, width=None, height=None):
        self.is_using_inpainting_conditioning = False
        return txt2img_image_conditioning(self.sd_model, x, width or self.width, height or self.height)

    def sample(self, *args, **kwargs):
        self.sd_model.forge_objects = self.sd_model.forge_objects_after_applying_lora.shallow_copy()
        return super().sample(*args, **kwargs)


class StableDiffusionProcessingImg2Img(_base.StableDiffusionProcessingImg2Img):
    def txt2img_image_conditioning(self, x, width=None, height=None):
        self.is_using_inpainting_conditioning = False
        return txt2img_image_conditioning(self.sd_model, x, width or self.width, height or self.height)
