"""STAND-IN of ``modules/ui_components.py`` of WebUI 1.10.1 (gradio 3.41.2 components).

``InputAccordion`` is, as in the WebUI, a hidden ``gr.Checkbox`` whose value is the enabled state, with an
``.accordion`` (``gr.Accordion``, ``open`` = value) entered by ``with InputAccordion(...) as acc:``; the JS
``change`` binding is left out. ``FormRow``/``FormGroup``/``FormColumn``/``FormHTML``/``ToolButton``/
``DropdownMulti``/``DropdownEditable`` are the gradio blocks with the WebUI's block names.
"""

import gradio as gr


class FormComponent:
    def get_expected_parent(self):
        return gr.components.Form


class ToolButton(FormComponent, gr.Button):
    def __init__(self, *args, **kwargs):
        classes = kwargs.pop("elem_classes", [])
        super().__init__(*args, elem_classes=["tool", *classes], **kwargs)

    def get_block_name(self):
        return "button"


class FormRow(FormComponent, gr.Row):
    def get_block_name(self):
        return "row"


class FormColumn(FormComponent, gr.Column):
    def get_block_name(self):
        return "column"


class FormGroup(FormComponent, gr.Group):
    def get_block_name(self):
        return "group"


class FormHTML(FormComponent, gr.HTML):
    def get_block_name(self):
        return "html"


class DropdownMulti(FormComponent, gr.Dropdown):
    def __init__(self, **kwargs):
        super().__init__(multiselect=True, **kwargs)

    def get_block_name(self):
        return "dropdown"


class DropdownEditable(FormComponent, gr.Dropdown):
    def __init__(self, **kwargs):
        super().__init__(allow_custom_value=True, **kwargs)

    def get_block_name(self):
        return "dropdown"


class InputAccordion(gr.Checkbox):
    """A checkbox (the input: True = enabled/open) that owns an accordion holding the script's controls."""

    global_index = 0

    def __init__(self, value, **kwargs):
        self.accordion_id = kwargs.get('elem_id')
        if self.accordion_id is None:
            self.accordion_id = f"input-accordion-{InputAccordion.global_index}"
            InputAccordion.global_index += 1

        super().__init__(value, **{**kwargs, "elem_id": f"{self.accordion_id}-checkbox", "visible": False})

        accordion_kwargs = {**kwargs, "elem_id": self.accordion_id, "label": kwargs.get('label', 'Accordion'),
                            "elem_classes": ['input-accordion'], "open": value}
        self.accordion = gr.Accordion(**accordion_kwargs)

    def extra(self):
        return gr.Column(elem_id=self.accordion_id + '-extra', elem_classes='input-accordion-extra', min_width=0)

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.accordion.__exit__(exc_type, exc_val, exc_tb)

    def get_block_name(self):
        return "checkbox"
