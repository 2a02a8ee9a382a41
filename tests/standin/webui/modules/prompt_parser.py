"""STAND-IN of ``modules/prompt_parser.py`` of WebUI 1.10.1.

Prompt-editing schedules (``get_learned_conditioning_prompt_schedules``) support a SUBSET of the WebUI grammar:

* plain text (emphasis brackets such as ``(a:1.2)`` and ``[a]`` stay in the text, as in the WebUI);
* non-nested ``[from:to:when]``, ``[to:when]``, ``[from::when]``; ``when`` is an integer step or, with a decimal
  point, a fraction of the steps (hires: the 1..2 range; ``use_old_scheduling``: fraction if < 1);
* non-nested alternation ``[a|b|...]`` (empty options allowed), switching every step;
* backslash escapes are kept as text.

A bracket group that nests another ``[`` or does not match these forms is left as literal text (the WebUI would
parse nested edits, or treat the whole prompt as plain text when its grammar fails).

Everything else mirrors 1.10.1: ``ScheduledPromptConditioning``, ``SdConditioning``, ``get_learned_conditioning``
(one ``model.get_learned_conditioning(texts)`` call per distinct prompt with all its schedule texts),
``get_multicond_prompt_list`` (AND split, ``:weight``, de-duplicated sub-prompts),
``ComposableScheduledPromptConditioning``, ``MulticondLearnedConditioning``, ``get_multicond_learned_conditioning``,
``DictWithShape``, ``reconstruct_cond_batch`` and ``reconstruct_multicond_batch`` (first schedule entry with
``current_step <= end_at_step``, else the first entry; rows in prompt order, AND-parts consecutive), ``stack_conds``
(pads shorter conds by repeating their last row). ``parse_prompt_attention`` is the stand-in in
``tests/standin/prompt.py``.
"""

from __future__ import annotations

import re
from collections import namedtuple

import torch

from tests.standin.prompt import parse_prompt_attention  # noqa: F401

_NUMBER = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*")


def _split_top_level(text: str, sep: str) -> list[str]:
    """Splits ``text`` on ``sep`` outside parentheses, honouring backslash escapes."""
    parts, depth, current, i = [], 0, "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current += text[i:i + 2]
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(current)
            current = ""
            i += 1
            continue
        current += ch
        i += 1
    parts.append(current)
    return parts


def _classify(content: str):
    """``[content]`` -> ``("edit", before, after, number_text)``, ``("alt", options)`` or ``None`` (literal)."""
    colon_parts = _split_top_level(content, ":")
    if len(colon_parts) in (2, 3) and _NUMBER.fullmatch(colon_parts[-1]):
        texts = colon_parts[:-1]
        before, after = (None, texts[0]) if len(texts) == 1 else (texts[0], texts[1])
        return "edit", before, after, _NUMBER.fullmatch(colon_parts[-1]).group(1)
    options = _split_top_level(content, "|")
    if len(options) > 1 and all(len(_split_top_level(o, ":")) == 1 for o in options):
        return "alt", options
    return None


def _scan(prompt: str) -> list:
    """Literal strings and edit/alternation items, in prompt order."""
    items, text, i = [], "", 0
    while i < len(prompt):
        ch = prompt[i]
        if ch == "\\" and i + 1 < len(prompt):
            text += prompt[i:i + 2]
            i += 2
            continue
        if ch == "[":
            j, content = i + 1, ""
            while j < len(prompt) and prompt[j] not in "[]":
                if prompt[j] == "\\" and j + 1 < len(prompt):
                    content += prompt[j:j + 2]
                    j += 2
                    continue
                content += prompt[j]
                j += 1
            item = _classify(content) if j < len(prompt) and prompt[j] == "]" else None
            if item is not None:
                if text:
                    items.append(text)
                    text = ""
                items.append(item)
                i = j + 1
                continue
        text += ch
        i += 1
    if text:
        items.append(text)
    return items


def get_learned_conditioning_prompt_schedules(prompts, base_steps, hires_steps=None, use_old_scheduling=False):
    """``[[end_at_step, text], ...]`` per prompt; e.g. ``"a [b:3]"`` with 10 steps -> ``[[3, 'a '], [10, 'a b']]``."""
    if hires_steps is None or use_old_scheduling:
        int_offset, flt_offset, steps = 0, 0.0, base_steps
    else:
        int_offset, flt_offset, steps = base_steps, 1.0, hires_steps

    def when_step(number_text: str) -> int:
        v = float(number_text)
        if use_old_scheduling:
            v = v * steps if v < 1 else v
        elif "." in number_text:
            v = (v - flt_offset) * steps
        else:
            v = v - int_offset
        return min(steps, int(v))

    def schedule(prompt: str):
        items = []
        boundaries = {steps}
        for item in _scan(prompt):
            if isinstance(item, tuple) and item[0] == "edit":
                when = when_step(item[3])
                if when >= 1:
                    boundaries.add(when)
                item = ("edit", item[1], item[2], when)
            elif isinstance(item, tuple):
                boundaries.update(range(1, steps + 1))
            items.append(item)

        def text_at(step: int) -> str:
            out = []
            for item in items:
                if isinstance(item, str):
                    out.append(item)
                elif item[0] == "edit":
                    out.append((item[1] or "") if step <= item[3] else item[2])
                else:
                    options = item[1]
                    out.append(options[(step - 1) % len(options)])
            return "".join(out)

        return [[step, text_at(step)] for step in sorted(boundaries)]

    cache = {prompt: schedule(prompt) for prompt in set(prompts)}
    return [cache[prompt] for prompt in prompts]


ScheduledPromptConditioning = namedtuple("ScheduledPromptConditioning", ["end_at_step", "cond"])


class SdConditioning(list):
    """A list of prompts that also carries ``width``, ``height`` and ``is_negative_prompt`` (SDXL needs them)."""

    def __init__(self, prompts, is_negative_prompt=False, width=None, height=None, copy_from=None):
        super().__init__()
        self.extend(prompts)
        if copy_from is None:
            copy_from = prompts
        self.is_negative_prompt = is_negative_prompt or getattr(copy_from, 'is_negative_prompt', False)
        self.width = width or getattr(copy_from, 'width', None)
        self.height = height or getattr(copy_from, 'height', None)


def get_learned_conditioning(model, prompts: SdConditioning | list[str], steps, hires_steps=None,
                             use_old_scheduling=False):
    """One list of ``ScheduledPromptConditioning`` per prompt; each distinct prompt is encoded once."""
    schedules = get_learned_conditioning_prompt_schedules(prompts, steps, hires_steps, use_old_scheduling)
    done = {}
    res = []
    for prompt, prompt_schedule in zip(prompts, schedules):
        if prompt not in done:
            texts = SdConditioning([text for _, text in prompt_schedule], copy_from=prompts)
            conds = model.get_learned_conditioning(texts)
            entries = []
            for i, (end_at_step, _) in enumerate(prompt_schedule):
                cond = {k: v[i] for k, v in conds.items()} if isinstance(conds, dict) else conds[i]
                entries.append(ScheduledPromptConditioning(end_at_step, cond))
            done[prompt] = entries
        res.append(done[prompt])
    return res


re_AND = re.compile(r"\bAND\b")
re_weight = re.compile(r"^(.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$", re.S)


def get_multicond_prompt_list(prompts: SdConditioning | list[str]):
    """-> (per prompt: ``[(flat_index, weight), ...]``, flat list of distinct sub-prompts, text -> flat index)."""
    res_indexes = []
    prompt_indexes = {}
    flat = SdConditioning(prompts)
    flat.clear()

    for prompt in prompts:
        indexes = []
        for subprompt in re_AND.split(prompt):
            match = re_weight.search(subprompt)
            text, weight = match.groups() if match is not None else (subprompt, 1.0)
            weight = float(weight) if weight is not None else 1.0
            if text not in prompt_indexes:
                prompt_indexes[text] = len(flat)
                flat.append(text)
            indexes.append((prompt_indexes[text], weight))
        res_indexes.append(indexes)

    return res_indexes, flat, prompt_indexes


class ComposableScheduledPromptConditioning:
    def __init__(self, schedules, weight=1.0):
        self.schedules: list[ScheduledPromptConditioning] = schedules
        self.weight: float = weight


class MulticondLearnedConditioning:
    def __init__(self, shape, batch):
        self.shape: tuple = shape
        self.batch: list[list[ComposableScheduledPromptConditioning]] = batch


def get_multicond_learned_conditioning(model, prompts, steps, hires_steps=None,
                                       use_old_scheduling=False) -> MulticondLearnedConditioning:
    res_indexes, flat, _ = get_multicond_prompt_list(prompts)
    learned = get_learned_conditioning(model, flat, steps, hires_steps, use_old_scheduling)
    batch = [[ComposableScheduledPromptConditioning(learned[i], weight) for i, weight in indexes]
             for indexes in res_indexes]
    return MulticondLearnedConditioning(shape=(len(prompts),), batch=batch)


class DictWithShape(dict):
    def __init__(self, x, shape=None):
        super().__init__()
        self.update(x)

    @property
    def shape(self):
        return self["crossattn"].shape


def _entry_at(schedule, current_step):
    for entry in schedule:
        if current_step <= entry.end_at_step:
            return entry
    return schedule[0]


def reconstruct_cond_batch(c: list[list[ScheduledPromptConditioning]], current_step):
    first = c[0][0].cond
    if isinstance(first, dict):
        res = {k: torch.zeros((len(c),) + v.shape, device=v.device, dtype=v.dtype) for k, v in first.items()}
        res = DictWithShape(res, (len(c),) + first['crossattn'].shape)
    else:
        res = torch.zeros((len(c),) + first.shape, device=first.device, dtype=first.dtype)

    for i, schedule in enumerate(c):
        cond = _entry_at(schedule, current_step).cond
        if isinstance(cond, dict):
            for k, v in cond.items():
                res[k][i] = v
        else:
            res[i] = cond
    return res


def stack_conds(tensors):
    length = max(t.shape[0] for t in tensors)
    for i, t in enumerate(tensors):
        if t.shape[0] != length:
            tensors[i] = torch.vstack([t, t[-1:].repeat([length - t.shape[0], 1])])
    return torch.stack(tensors)


def reconstruct_multicond_batch(c: MulticondLearnedConditioning, current_step):
    """-> (``conds_list``: per image ``[(row, weight), ...]``, stacked cond rows for ``current_step``)."""
    first = c.batch[0][0].schedules[0].cond
    rows = []
    conds_list = []
    for composable_prompts in c.batch:
        image_rows = []
        for composable in composable_prompts:
            image_rows.append((len(rows), composable.weight))
            rows.append(_entry_at(composable.schedules, current_step).cond)
        conds_list.append(image_rows)

    if isinstance(rows[0], dict):
        stacked = {k: stack_conds([r[k] for r in rows]) for k in rows[0].keys()}
        stacked = DictWithShape(stacked, stacked['crossattn'].shape)
    else:
        stacked = stack_conds(rows).to(device=first.device, dtype=first.dtype)
    return conds_list, stacked
