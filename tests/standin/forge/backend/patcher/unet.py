"""STAND-IN of Forge's ``backend/patcher/unet.py`` (``UnetPatcher``): the ``KModel`` it patches (``model``), its
``model_options`` (``transformer_options`` and the sampler hooks), ``controlnet_linked_list`` and
``extra_concat_condition`` (None unless a ControlNet or an inpainting condition is set), ``clone()``."""

import copy


class UnetPatcher:
    def __init__(self, model):
        self.model = model
        self.model_options = {"transformer_options": {}}
        self.controlnet_linked_list = None
        self.extra_concat_condition = None
        self.extra_preserved_memory_during_sampling = 0
        self.extra_model_patchers_during_sampling = []

    def clone(self):
        n = copy.copy(self)
        n.model_options = copy.deepcopy(self.model_options)
        return n

    def memory_required(self, input_shape):
        return self.model.memory_required(input_shape)

    def has_online_lora(self):
        return False

    def list_controlnets(self):
        return []
