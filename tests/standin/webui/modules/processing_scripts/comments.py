"""STAND-IN of ``modules/processing_scripts/comments.py`` of WebUI 1.10.1: the built-in "Comments" script.

Always on, no UI; its ``process`` removes ``#`` comment lines and line tails from ``p.all_prompts`` (and negative/hires
prompts) when ``opts.enable_prompt_comments`` (default on). Extension scripts loaded earlier see the comments in
their own ``process``; ``process_batch`` receives the stripped prompts.
"""

from modules import script_callbacks, scripts, shared


def strip_comments(text):
    """Drops lines that start with ``#`` and cuts the rest of a line at ``#``."""
    kept = [line.split("#", 1)[0] for line in text.split("\n") if not line.startswith("#")]
    return "\n".join(kept)


class ScriptStripComments(scripts.Script):
    def title(self):
        return "Comments"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p, *args):
        if not shared.opts.enable_prompt_comments:
            return
        p.all_prompts = [strip_comments(x) for x in p.all_prompts]
        p.all_negative_prompts = [strip_comments(x) for x in p.all_negative_prompts]
        p.main_prompt = strip_comments(p.main_prompt)
        p.main_negative_prompt = strip_comments(p.main_negative_prompt)
        if getattr(p, 'enable_hr', False):
            p.all_hr_prompts = [strip_comments(x) for x in p.all_hr_prompts]
            p.all_hr_negative_prompts = [strip_comments(x) for x in p.all_hr_negative_prompts]
            p.hr_prompt = strip_comments(p.hr_prompt)
            p.hr_negative_prompt = strip_comments(p.hr_negative_prompt)


def before_token_counter(params: script_callbacks.BeforeTokenCounterParams):
    if shared.opts.enable_prompt_comments:
        params.prompt = strip_comments(params.prompt)


script_callbacks.on_before_token_counter(before_token_counter)
