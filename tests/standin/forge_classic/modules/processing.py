"""STAND-IN of Forge Classic's ``modules/processing.py``: the WebUI stand-in's processing with Classic's differences.

* The batch loop runs under ``torch.inference_mode()`` (``process_images_inner``, ``:829``).
* ``p.sd_model.forge_objects`` is re-copied from ``forge_objects_after_applying_lora`` right before the txt2img
  sampling and its ``process_before_every_sampling`` (``:1236``).
"""

from modules import webui_module as _webui

from tests.standin.forgelike import InferenceModeTorch

_base = _webui("processing")
_base.torch = InferenceModeTorch("torch")
globals().update({k: v for k, v in vars(_base).items() if not k.startswith("__") and k != "torch"})


class StableDiffusionProcessingTxt2Img(_base.StableDiffusionProcessingTxt2Img):
    def sample(self, *args, **kwargs):
        self.sd_model.forge_objects = self.sd_model.forge_objects_after_applying_lora.shallow_copy()
        return super().sample(*args, **kwargs)
