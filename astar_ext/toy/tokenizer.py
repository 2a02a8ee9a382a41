"""CLIP token ids for the toy model's captions, as WebUI-style 77-token chunks.

The toy model reads the ids of CLIP's BPE vocabulary (the vocabulary of SD 1.x's ``CLIPTokenizer``),
so that a prompt becomes the same ``[SOT, tokens..., EOT, EOT padding...]`` chunk the WebUI builds and
the engine's :func:`astar_ext.tokens.match_concepts` works unchanged. Every word of the toy captions is
a single BPE token, listed with its CLIP id in :data:`VOCAB` (the model's embedding table has CLIP's
whole vocabulary, as the WebUI's text encoder has; only these rows are trained).

:class:`ToyTokenizer` uses CLIP's own BPE (``clip.simple_tokenizer``, from the test install) when it
is importable, so that any text is tokenized exactly as CLIP does; without it, text made of
:data:`VOCAB` words is tokenized from the table (the tests check both agree), and other words are an
error.

Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .data import COLOURS, SHAPES

ID_START = 49406
ID_END = 49407
CHUNK = 77

# word -> CLIP BPE id (each word is one BPE token, "word</w>")
_WORD_IDS: dict[str, int] = {
    "a": 320, "and": 537, "with": 593, ",": 267,
    "red": 736, "yellow": 4481, "green": 1901, "blue": 1746, "purple": 5496, "white": 1579,
    "circle": 7117, "square": 3999, "triangle": 14615, "star": 1565, "ring": 2540, "cross": 3417,
}
assert set(COLOURS) | set(SHAPES) <= set(_WORD_IDS)

#: The toy captions' tokens: ``(token string, CLIP id)``.
VOCAB: tuple[tuple[str, int], ...] = (("<|startoftext|>", ID_START), ("<|endoftext|>", ID_END)) + tuple(
    (f"{w}</w>", i) for w, i in _WORD_IDS.items())
_WORD = re.compile(r"[a-z]+|[^\sa-z]")


def _bpe():
    try:
        from clip.simple_tokenizer import SimpleTokenizer
    except ImportError:
        return None
    return SimpleTokenizer()


class ToyTokenizer:
    """``tokenize``/``tokenize_line`` in the shape the engine expects (ids without SOT/EOT; 77-id chunks).

    Args:
        use_bpe: ``None``: CLIP's BPE if importable, else the word table; ``True``/``False`` forces it.
    """

    id_start = ID_START
    id_end = ID_END
    id_pad = ID_END
    chunk_length = CHUNK - 2

    def __init__(self, use_bpe: bool | None = None):
        self.bpe = _bpe() if use_bpe in (None, True) else None
        if use_bpe and self.bpe is None:
            raise ImportError("CLIP's BPE tokenizer (clip.simple_tokenizer) is not installed")
        self._decoder = {i: s for s, i in VOCAB}

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """CLIP ids of each text, without SOT/EOT."""
        if self.bpe is not None:
            return [self.bpe.encode(t) for t in texts]
        out = []
        for text in texts:
            words = _WORD.findall(text.lower())
            unknown = [w for w in words if w not in _WORD_IDS]
            if unknown:
                raise ValueError(f"the toy vocabulary has no {', '.join(map(repr, unknown))} (install clip-anytorch "
                                 f"for CLIP's full tokenizer); known words: {', '.join(_WORD_IDS)}")
            out.append([_WORD_IDS[w] for w in words])
        return out

    def decode(self, token_id: int) -> str:
        """The BPE token string of an id (``"red</w>"``)."""
        if token_id in self._decoder:
            return self._decoder[token_id]
        if self.bpe is not None:
            return self.bpe.decoder[token_id]
        return "<unk>"

    def tokenize_line(self, prompt: str) -> list[list[int]]:
        """``prompt`` as 77-id chunks ``[SOT, up to 75 ids, EOT, EOT padding]`` (no emphasis syntax)."""
        ids = self.tokenize([prompt])[0]
        chunks = []
        for start in range(0, max(len(ids), 1), self.chunk_length):
            part = ids[start:start + self.chunk_length]
            chunks.append([ID_START] + part + [ID_END] * (CHUNK - 1 - len(part)))
        return chunks

    def ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """One flat id list (all chunks concatenated) per prompt; all prompts must give the same chunk count."""
        rows = [sum(self.tokenize_line(p), []) for p in prompts]
        if len({len(r) for r in rows}) > 1:
            raise ValueError("prompts of different chunk counts cannot share a batch")
        return rows
