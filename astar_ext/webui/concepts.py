"""Concept columns for every conditioning row of one sampling pass.

The CFG denoiser's conditioning rows are, in order, each image's AND-parts (``prompt_parser.
reconstruct_multicond_batch``); each part's text may change during sampling with prompt editing
(``[cat:dog:10]``), and the WebUI picks the text of a row by the denoiser's call counter:
the first schedule entry whose ``end_at_step`` is at or after the counter. :class:`PassConcepts`
repeats that selection on the same schedules, so at every call the token columns belong to the
text the UNet is conditioned on.

The prompt parser and the tokenizer are passed in (the WebUI's own in the adapter, stand-ins in
the tests); nothing here imports the WebUI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from ..maps import ColumnLayout
from ..tokens import ConceptItem, PromptTokens, match_concepts


@dataclasses.dataclass
class Tokenizer:
    """The loaded model's tokenizer, as A-STAR uses it.

    ``tokenize_line(text) -> (chunks, count)`` and ``tokenize(texts) -> ids`` are the text encoder
    wrapper's own methods; ``decode(id) -> "cat</w>"`` is optional (hints only).
    """

    tokenize_line: Callable[[str], tuple[list[Any], int]]
    tokenize: Callable[[list[str]], list[list[int]]]
    id_end: int
    decode: Callable[[int], str] | None = None


@dataclasses.dataclass(frozen=True)
class Row:
    """One conditioning row: the image it belongs to and its schedule of ``(end_at_step, text)``."""

    image: int
    schedule: tuple[tuple[int, str], ...]

    def text_at(self, call: int) -> str:
        for end_at_step, text in self.schedule:
            if call <= end_at_step:
                return text
        return self.schedule[-1][1]


class PassConcepts:
    """Matched concepts for the rows of one pass.

    Args:
        items: the parsed concept spec.
        prompts: the pass's prompts, one per image (extra-network tags already removed).
        prompt_parser: an object with ``get_multicond_prompt_list`` and
            ``get_learned_conditioning_prompt_schedules`` (the WebUI's ``modules.prompt_parser``).
        steps, hires_steps, use_old_scheduling: the arguments the WebUI used for this pass's
            conditioning (``p.firstpass_steps``; on the hires pass also its total steps).
        tokenizer: the loaded model's :class:`Tokenizer`.
        normalize_eot: the EOT/padding rule of the re-normalisation (see ``ColumnLayout.build``).
    """

    def __init__(self, items: Sequence[ConceptItem], prompts: Sequence[str], prompt_parser: Any, steps: int,
                 tokenizer: Tokenizer, hires_steps: int | None = None, use_old_scheduling: bool = False,
                 normalize_eot: bool = False):
        self.items = list(items)
        self.tokenizer = tokenizer
        self.normalize_eot = normalize_eot
        indexes, flat, _ = prompt_parser.get_multicond_prompt_list(list(prompts))
        schedules = prompt_parser.get_learned_conditioning_prompt_schedules(
            list(flat), steps, hires_steps, use_old_scheduling)
        self.rows: list[Row] = []
        for image, parts in enumerate(indexes):
            for flat_index, _weight in parts:
                sched = tuple((int(end), str(text)) for end, text in schedules[flat_index])
                self.rows.append(Row(image, sched))
        self._tokens: dict[str, PromptTokens] = {}
        self._layouts: dict[tuple, tuple[list[int], ColumnLayout | None]] = {}
        self.warnings: list[str] = []
        for row in self.rows:  # match every text now: warnings are known before sampling
            for _, text in row.schedule:
                self.tokens(text)

    def tokens(self, text: str) -> PromptTokens:
        found = self._tokens.get(text)
        if found is None:
            chunks, _ = self.tokenizer.tokenize_line(text)
            found = match_concepts(self.items, chunks, self.tokenizer.tokenize, self.tokenizer.id_end,
                                   self.tokenizer.decode)
            self._tokens[text] = found
            for w in found.warnings:
                if w not in self.warnings:
                    self.warnings.append(w)
        return found

    @property
    def labels(self) -> list[str]:
        return [it.label for it in self.items]

    @property
    def found_any(self) -> bool:
        return any(t.found for t in self._tokens.values())

    def layout_at(self, call: int) -> tuple[list[int], ColumnLayout | None]:
        """The rows that hold at least one concept at denoiser call ``call``, and their layout.

        Returns ``(row_indices, layout)``; ``layout`` is None when no row holds a concept.
        """
        texts = tuple(row.text_at(call) for row in self.rows)
        cached = self._layouts.get(texts)
        if cached is not None:
            return cached
        selected = [i for i, text in enumerate(texts) if self.tokens(text).found]
        layout = ColumnLayout.build([self.tokens(texts[i]) for i in selected], self.normalize_eot) if selected else None
        self._layouts[texts] = (selected, layout)
        return selected, layout
