"""STAND-IN of ``modules/processing_scripts/sampler.py`` of WebUI 1.10.1: the built-in "Sampler" script.

An always-on ``ScriptBuiltinUI`` in the ``sampler`` UI section (so its three inputs come before any extension
script's): steps (slider, default 20), sampling method (dropdown, default the first sampler), schedule type
(dropdown, default "Automatic"); ``setup`` copies them to ``p.steps``/``p.sampler_name``/``p.scheduler`` (UI only:
``setup_for_ui_only``, the API takes them from the request).
"""

import gradio as gr
from modules import scripts, sd_samplers, sd_schedulers
from modules.infotext_utils import PasteField
from modules.ui_components import FormRow


class ScriptSampler(scripts.ScriptBuiltinUI):
    section = "sampler"

    def __init__(self):
        self.steps = None
        self.sampler_name = None
        self.scheduler = None

    def title(self):
        return "Sampler"

    def ui(self, is_img2img):
        samplers = [x.name for x in sd_samplers.visible_samplers()]
        schedulers = [x.label for x in sd_schedulers.schedulers]
        with FormRow(elem_id=f"sampler_selection_{self.tabname}"):
            self.sampler_name = gr.Dropdown(label='Sampling method', elem_id=f"{self.tabname}_sampling",
                                            choices=samplers, value=samplers[0])
            self.scheduler = gr.Dropdown(label='Schedule type', elem_id=f"{self.tabname}_scheduler",
                                         choices=schedulers, value=schedulers[0])
            self.steps = gr.Slider(minimum=1, maximum=150, step=1, elem_id=f"{self.tabname}_steps",
                                   label="Sampling steps", value=20)

        self.infotext_fields = [
            PasteField(self.steps, "Steps", api="steps"),
            PasteField(self.sampler_name, sd_samplers.get_sampler_from_infotext, api="sampler_name"),
            PasteField(self.scheduler, sd_samplers.get_scheduler_from_infotext, api="scheduler"),
        ]
        return self.steps, self.sampler_name, self.scheduler

    def setup(self, p, steps, sampler_name, scheduler):
        p.steps = steps
        p.sampler_name = sampler_name
        p.scheduler = scheduler
