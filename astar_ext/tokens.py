"""Concept specs ("cat, red car, #5") -> token columns of the text conditioning.

The WebUI encodes a prompt as 77-token chunks (``tokenize_line`` in ``modules/sd_hijack_clip.py``):
each chunk is ``[SOT, up to 75 prompt tokens, EOT, padding...]`` and the chunks are concatenated
along the token axis, so token ``j`` of chunk ``c`` is column ``77 * c + j`` of the cross-attention
context (SOT of the first chunk is column 0). This module matches the user's concepts against such
chunks, using the model's own tokenizer for the concept words, so that emphasis, BREAK, comma
padding and long prompts are handled exactly as the WebUI handled them.

Conventions:

* ``#N`` names column ``N`` directly (Attend-and-Excite's ``token_indices`` convention: in
  ``"a cat and a dog"`` ``cat`` is ``#2`` and ``dog`` is ``#5``).
* A word or phrase is tokenized on its own and found as a contiguous run of token ids; all its
  occurrences in the prompt belong to the concept. A word split into several BPE tokens is one
  concept with several columns.
* A textual-inversion embedding is matched by its name and covers its placeholder columns.
* A concept that is not found is reported (``missing``) with a close match when one exists; it is
  never an error.

Standard library only.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any

from .params import ParamError, clean_concept_text

CHUNK_TOKENS = 77  # SOT + 75 prompt tokens + EOT
PROMPT_TOKENS = 75


def clip_byte_alphabet() -> dict[int, str]:
    """CLIP's byte-level BPE alphabet (GPT-2's), byte -> character, in the order of CLIP's vocabulary: the
    printable bytes (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves, then the other bytes, in
    byte order, for ``chr(256 + n)``."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(others)}}


@dataclasses.dataclass(frozen=True)
class ConceptItem:
    """One comma-separated item of a concept spec: a word/phrase, or a token column (``#N``)."""

    text: str
    column: int | None = None

    @property
    def label(self) -> str:
        return f"#{self.column}" if self.column is not None else self.text


@dataclasses.dataclass(frozen=True)
class Concept:
    """A concept as found in one prompt: its label and its columns in the context (may be empty)."""

    label: str
    columns: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class PromptTokens:
    """The concepts of one prompt, in spec order (a missing concept has no columns).

    ``chunk_lengths[c]`` is the number of prompt tokens of chunk ``c`` (its EOT is at local index
    ``1 + chunk_lengths[c]``).
    """

    concepts: tuple[Concept, ...]
    chunk_lengths: tuple[int, ...]
    missing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    missing_notes: tuple[str, ...] = ()  # why each of ``missing`` was not found (with a hint), same order

    @property
    def found(self) -> tuple[Concept, ...]:
        return tuple(c for c in self.concepts if c.columns)


@dataclasses.dataclass(frozen=True)
class Word:
    """A whole word of the tokenized prompt (sub-word tokens joined), with its columns."""

    text: str
    columns: tuple[int, ...]
    chunk: int
    kind: str = "word"  # "word", "punct" or "embedding"


def parse_concepts(spec: str) -> list[ConceptItem]:
    """Split a concept spec on commas. ``#N`` (N >= 0) is a column; anything else a word/phrase.

    Empty items and repeats of an earlier item are dropped.
    Raises :class:`~astar_ext.params.ParamError` (field ``concepts``) for malformed items.
    """
    items: list[ConceptItem] = []
    for raw in spec.split(","):
        text = raw.strip()
        if not text:
            continue
        if text.startswith("#"):
            digits = text[1:].strip()
            if not digits.isdigit():
                raise ParamError("concepts", f"{text!r} is not a token position; write #N with N a whole number >= 0")
            items.append(ConceptItem(text=text, column=int(digits)))
            continue
        cleaned = clean_concept_text(text)
        if not cleaned:
            raise ParamError("concepts", f"{text!r} contains no word")
        items.append(ConceptItem(text=cleaned))
    seen: set[str] = set()
    unique = []
    for item in items:
        key = item.label.lower()
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _chunk_ids(chunk: Any) -> list[int]:
    return list(getattr(chunk, "tokens", chunk))


def _chunk_fixes(chunk: Any) -> list[tuple[int, Any]]:
    return [(int(fix[0]), fix[1]) for fix in getattr(chunk, "fixes", ()) or ()]


def _chunk_length(ids: Sequence[int], id_end: int) -> int:
    """Number of prompt tokens in a 77-token chunk: tokens before the first EOT after SOT."""
    for j in range(1, len(ids)):
        if ids[j] == id_end:
            return j - 1
    return max(0, len(ids) - 2)


def _embedding_spans(chunk: Any) -> list[tuple[str, int, int]]:
    """``(name, first_local_index, count)`` for each textual-inversion embedding in the chunk."""
    spans = []
    for offset, emb in _chunk_fixes(chunk):
        name = str(getattr(emb, "name", ""))
        count = int(getattr(emb, "vectors", 0) or 0)
        if count > 0:
            spans.append((name, offset + 1, count))
    return spans


def match_concepts(
    items: Sequence[ConceptItem],
    chunks: Sequence[Any],
    tokenize: Callable[[list[str]], list[list[int]]],
    id_end: int,
    decode: Callable[[int], str] | None = None,
) -> PromptTokens:
    """Find each concept of ``items`` in a prompt tokenized into ``chunks``.

    Args:
        items: the parsed spec (:func:`parse_concepts`).
        chunks: what ``tokenize_line(prompt)[0]`` returns: objects with ``.tokens`` (77 ids) and
            ``.fixes`` (``(offset, embedding)`` with ``embedding.name`` and ``.vectors``), or
            plain lists of 77 ids.
        tokenize: the model's ``tokenize(texts)`` (ids without SOT/EOT).
        id_end: the EOT id (the end of the prompt tokens of a chunk).
        decode: optional id -> BPE token string (``"cat</w>"``), used for hints and labels.
    """
    ids_per_chunk = [_chunk_ids(c) for c in chunks]
    lengths = tuple(_chunk_length(ids, id_end) for ids in ids_per_chunk)
    spans_per_chunk = [_embedding_spans(c) for c in chunks]

    texts = [it.text for it in items if it.column is None]
    word_iter = iter(tokenize(texts) if texts else [])

    concepts: list[Concept] = []
    missing: list[str] = []
    notes: list[str] = []
    for item in items:
        if item.column is not None:
            chunk, local = divmod(item.column, CHUNK_TOKENS)
            if chunk < len(chunks) and 1 <= local <= lengths[chunk]:
                concepts.append(Concept(item.label, (item.column,)))
            else:
                concepts.append(Concept(item.label, ()))
                missing.append(item.label)
                notes.append(f"{item.label} is not a prompt token (SOT, EOT, padding or beyond the prompt)")
            continue

        target = list(next(word_iter))
        columns: list[int] = []
        for c, ids in enumerate(ids_per_chunk):
            reserved: set[int] = set()
            for name, start, count in spans_per_chunk[c]:
                reserved.update(range(start, start + count))
                if name.lower() == item.text.lower():
                    columns.extend(CHUNK_TOKENS * c + j for j in range(start, start + count))
            if not target:
                continue
            n = len(target)
            for j in range(1, 1 + lengths[c] - n + 1):
                if ids[j:j + n] == target and not reserved.intersection(range(j, j + n)):
                    columns.extend(CHUNK_TOKENS * c + j + k for k in range(n))
        columns = sorted(set(columns))
        concepts.append(Concept(item.label, tuple(columns)))
        if not columns:
            missing.append(item.label)
            hint = ""
            if decode is not None:
                words = [w.text for w in prompt_words(chunks, decode, id_end) if w.kind != "punct"]
                close = difflib.get_close_matches(item.text.lower(), [w.lower() for w in words], n=1, cutoff=0.6)
                if close:
                    hint = f" (did you mean {close[0]!r}?)"
            notes.append(f"{item.text!r} is not in the prompt{hint}")
    warnings = list(notes)
    owners: dict[int, str] = {}
    for concept in concepts:
        for col in concept.columns:
            if col in owners:
                warnings.append(f"{concept.label!r} and {owners[col]!r} share token column {col}")
                break
            owners[col] = concept.label
    return PromptTokens(tuple(concepts), lengths, tuple(missing), tuple(warnings), tuple(notes))


_PUNCT = re.compile(r"^[^\w]+$")


def prompt_words(chunks: Sequence[Any], decode: Callable[[int], str], id_end: int) -> list[Word]:
    """Group a tokenized prompt into whole words with their columns, in prompt order.

    CLIP's BPE marks the last token of a word with ``</w>``; tokens are joined until that marker.
    Embedding placeholders become one word named after the embedding.
    """
    words: list[Word] = []
    for c, chunk in enumerate(chunks):
        ids = _chunk_ids(chunk)
        length = _chunk_length(ids, id_end)
        spans = {start: (name, count) for name, start, count in _embedding_spans(chunk)}
        parts: list[str] = []
        cols: list[int] = []
        j = 1
        while j <= length:
            if j in spans:
                name, count = spans[j]
                if parts:
                    words.append(_make_word("".join(parts), cols, c))
                    parts, cols = [], []
                words.append(Word(name, tuple(CHUNK_TOKENS * c + k for k in range(j, j + count)), c, "embedding"))
                j += count
                continue
            piece = decode(ids[j])
            cols.append(CHUNK_TOKENS * c + j)
            end = piece.endswith("</w>")
            parts.append(piece[:-4] if end else piece)
            if end or j == length:
                words.append(_make_word("".join(parts), cols, c))
                parts, cols = [], []
            j += 1
        if parts:
            words.append(_make_word("".join(parts), cols, c))
    return words


def _make_word(text: str, cols: list[int], chunk: int) -> Word:
    return Word(text, tuple(cols), chunk, "punct" if _PUNCT.match(text) else "word")
