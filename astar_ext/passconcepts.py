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

from .maps import ColumnLayout
from .tokens import ConceptItem, PromptTokens, match_concepts


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


@dataclasses.dataclass(frozen=True)
class CallLayout:
    """The rows of one denoiser call that hold a concept, the batch images they belong to, and their
    :class:`~astar_ext.maps.ColumnLayout` (whose ``row_image`` indexes ``images``)."""

    rows: tuple[int, ...]
    images: tuple[int, ...]
    layout: ColumnLayout


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
        self.num_images = len(prompts)
        indexes, flat, _ = prompt_parser.get_multicond_prompt_list(list(prompts))
        schedules = prompt_parser.get_learned_conditioning_prompt_schedules(
            list(flat), steps, hires_steps, use_old_scheduling)
        self.rows: list[Row] = []
        for image, parts in enumerate(indexes):
            for flat_index, _weight in parts:
                sched = tuple((int(end), str(text)) for end, text in schedules[flat_index])
                self.rows.append(Row(image, sched))
        self._tokens: dict[str, PromptTokens] = {}
        self._layouts: dict[tuple[str, ...], CallLayout | None] = {}
        self._used: list[tuple[str, ...]] = []
        for row in self.rows:  # match every text now: a tokenizer problem shows before sampling
            for _, text in row.schedule:
                self.tokens(text)

    def tokens(self, text: str) -> PromptTokens:
        found = self._tokens.get(text)
        if found is None:
            chunks, _ = self.tokenizer.tokenize_line(text)
            found = match_concepts(self.items, chunks, self.tokenizer.tokenize, self.tokenizer.id_end,
                                   self.tokenizer.decode)
            self._tokens[text] = found
        return found

    @property
    def labels(self) -> list[str]:
        return [it.label for it in self.items]

    @property
    def found_any(self) -> bool:
        return any(t.found for t in self._tokens.values())

    def texts_at(self, call: int) -> tuple[str, ...]:
        return tuple(row.text_at(call) for row in self.rows)

    def layout_at(self, call: int) -> CallLayout | None:
        """The rows that hold at least one concept at denoiser call ``call``, and their layout
        (None when no row holds a concept). AND-parts of one image are combined per image."""
        texts = self.texts_at(call)
        if texts not in self._used:
            self._used.append(texts)
        if texts in self._layouts:
            return self._layouts[texts]
        selected = [i for i, text in enumerate(texts) if self.tokens(text).found]
        result = None
        if selected:
            images = sorted({self.rows[i].image for i in selected})
            row_image = [images.index(self.rows[i].image) for i in selected]
            layout = ColumnLayout.build([self.tokens(texts[i]) for i in selected], self.normalize_eot, row_image)
            result = CallLayout(tuple(selected), tuple(images), layout)
        self._layouts[texts] = result
        return result

    def warnings(self) -> list[str]:
        """What the user should know about the concepts, for the texts the pass conditioned on while
        A-STAR was active (or, before sampling, at the first step): a concept missing from every image
        (with a close match when there is one), a concept missing from some images, shared columns."""
        used = self._used or [self.texts_at(0)]
        out: list[str] = []
        for k, item in enumerate(self.items):
            missing_in: set[int] = set()
            note = None
            for texts in used:
                for image in range(self.num_images):
                    found = False
                    for r, row in enumerate(self.rows):
                        if row.image != image:
                            continue
                        tok = self.tokens(texts[r])
                        if tok.concepts[k].columns:
                            found = True
                        elif note is None and item.label in tok.missing:
                            note = tok.missing_notes[tok.missing.index(item.label)]
                    if not found:
                        missing_in.add(image)
            if not missing_in:
                continue
            if len(missing_in) == self.num_images:
                message = note or f"{item.label!r} is not in the prompt"
            else:
                which = ", ".join(str(i + 1) for i in sorted(missing_in))
                message = f"{item.label!r} is not in the prompt of image {which} of the batch"
            if message not in out:
                out.append(message)
        for texts in used:
            for text in set(texts):
                tok = self.tokens(text)
                for w in tok.warnings:
                    if w not in tok.missing_notes and w not in out:
                        out.append(w)
        return out


def encoders_tokenizer(encoders: Sequence[Any], decode: Callable[[int], str] | None = None) -> Tokenizer:
    """The :class:`Tokenizer` of one or more text encoders that tokenize the same prompt side by side.

    ``encoders``: objects with ``tokenize_line``, ``tokenize`` and ``id_end`` (the WebUI's text encoder
    wrappers; Forge's ``ClassicTextProcessingEngine``), in context order. The first one tokenizes; with
    several (SDXL's CLIP-L and OpenCLIP-bigG, whose outputs are concatenated channel-wise, so a token column
    is the same column in both) each prompt is checked to be split into the same chunks of the same token
    ids by every encoder (:func:`same_tokens`); a prompt they split differently raises ``ValueError`` (A-STAR
    then skips the pass and says why).
    """
    first = encoders[0]
    line = first.tokenize_line
    if len(encoders) > 1:
        def line(text: str, _encoders=tuple(encoders)) -> tuple[list[Any], int]:
            result = _encoders[0].tokenize_line(text)
            for other in _encoders[1:]:
                problem = same_tokens(result[0], other.tokenize_line(text)[0])
                if problem:
                    raise ValueError(f"the text encoders {type(_encoders[0]).__name__} and {type(other).__name__} "
                                     f"split this prompt differently ({problem}), so a token column would name "
                                     "different words in the two halves of the context")
            return result
    return Tokenizer(line, first.tokenize, int(first.id_end), decode)


def same_tokens(chunks: list[Any], others: list[Any]) -> str | None:
    """None when two ``tokenize_line`` results have the same chunks, token ids and embedding positions;
    otherwise what differs first."""
    if len(chunks) != len(others):
        return f"{len(chunks)} and {len(others)} chunks of 77 tokens"
    for c, (a, b) in enumerate(zip(chunks, others)):
        ids_a, ids_b = list(getattr(a, "tokens", a)), list(getattr(b, "tokens", b))
        if ids_a != ids_b:
            j = next((j for j, (u, v) in enumerate(zip(ids_a, ids_b)) if u != v), min(len(ids_a), len(ids_b)))
            return f"token {77 * c + j}: ids {ids_a[j:j + 3]} and {ids_b[j:j + 3]}"
        fixes_a = [(int(f[0]), getattr(f[1], "vectors", None)) for f in getattr(a, "fixes", ()) or ()]
        fixes_b = [(int(f[0]), getattr(f[1], "vectors", None)) for f in getattr(b, "fixes", ()) or ()]
        if fixes_a != fixes_b:
            return f"embeddings of chunk {c} at {fixes_a} and {fixes_b}"
    return None
