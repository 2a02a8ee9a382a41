"""STAND-IN of the WebUI's prompt tokenization (WebUI 1.10.1).

Imitates, with the real CLIP BPE vocabulary (``clip.simple_tokenizer`` ships the same
``bpe_simple_vocab_16e6`` as the ``CLIPTokenizer`` of SD 1.x):

* ``modules/prompt_parser.py`` ``parse_prompt_attention`` — ``(a)`` x1.1, ``[a]`` /1.1,
  ``(a:w)``, escapes, ``BREAK`` as the pseudo-segment ``("BREAK", -1)``, runs of equal weight merged;
* ``modules/sd_hijack_clip.py`` ``TextConditionalModel.tokenize_line`` — 75-token chunks framed by
  SOT/EOT and padded with EOT, comma backtracking (``opts.comma_padding_backtrack``, default 20),
  textual-inversion embeddings as placeholder ids 0 recorded in ``chunk.fixes`` and never split.
"""

from __future__ import annotations

import dataclasses
import re
from collections import namedtuple

from clip.simple_tokenizer import SimpleTokenizer

ID_START = 49406
ID_END = 49407

PromptChunkFix = namedtuple("PromptChunkFix", ["offset", "embedding"])


class PromptChunk:
    def __init__(self):
        self.tokens: list[int] = []
        self.multipliers: list[float] = []
        self.fixes: list[PromptChunkFix] = []


@dataclasses.dataclass
class Embedding:
    """Stand-in of ``textual_inversion.Embedding``: a name and a number of vectors."""

    name: str
    vectors: int


_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_WEIGHT_CLOSE = re.compile(r":\s*([+-]?[.\d]+)\s*\)")


def parse_prompt_attention(text: str) -> list[list]:
    """``"a (cat:1.3) BREAK dog"`` -> ``[["a ", 1.0], ["cat", 1.3], ["BREAK", -1], ["dog", 1.0]]``."""
    out: list[list] = []
    rounds: list[int] = []
    squares: list[int] = []

    def scale(start: int, factor: float) -> None:
        for seg in out[start:]:
            seg[1] *= factor

    def add_text(t: str) -> None:
        pieces = _BREAK.split(t)
        for i, piece in enumerate(pieces):
            if i:
                out.append(["BREAK", -1])
            out.append([piece, 1.0])

    i = 0
    plain = ""
    while i < len(text):
        ch = text[i]
        m = _WEIGHT_CLOSE.match(text, i) if ch == ":" else None
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "()[]\\":
            if plain:
                add_text(plain)
                plain = ""
            out.append([text[i + 1], 1.0])
            i += 2
            continue
        if ch in "([" or (m and rounds) or (ch == ")" and rounds) or (ch == "]" and squares):
            if plain:
                add_text(plain)
                plain = ""
            if ch == "(":
                rounds.append(len(out))
            elif ch == "[":
                squares.append(len(out))
            elif m:
                scale(rounds.pop(), float(m.group(1)))
                i = m.end()
                continue
            elif ch == ")":
                scale(rounds.pop(), 1.1)
            else:
                scale(squares.pop(), 1 / 1.1)
            i += 1
            continue
        plain += ch
        i += 1
    if plain:
        add_text(plain)
    for start in rounds:
        scale(start, 1.1)
    for start in squares:
        scale(start, 1 / 1.1)
    if not out:
        out = [["", 1.0]]
    merged: list[list] = []
    for seg in out:
        if merged and merged[-1][1] == seg[1]:
            merged[-1][0] += seg[0]
        else:
            merged.append(list(seg))
    return merged


class StandinClipWrapper:
    """Stand-in of ``FrozenCLIPEmbedderWithCustomWords`` (SD 1.x): ``tokenize``, ``tokenize_line``."""

    chunk_length = 75

    def __init__(self, embeddings: list[Embedding] | None = None, comma_padding_backtrack: int = 20,
                 emphasis: bool = True):
        self.bpe = SimpleTokenizer()
        self.id_start = ID_START
        self.id_end = ID_END
        self.id_pad = ID_END
        self.comma_token = self.bpe.encoder[",</w>"]
        self.comma_padding_backtrack = comma_padding_backtrack
        self.emphasis = emphasis
        self.embeddings: dict[int, list[tuple[list[int], Embedding]]] = {}
        for emb in embeddings or []:
            ids = self.tokenize([emb.name])[0]
            lst = self.embeddings.setdefault(ids[0], [])
            lst.append((ids, emb))
            lst.sort(key=lambda e: len(e[0]), reverse=True)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [self.bpe.encode(t) for t in texts]

    def decode(self, token_id: int) -> str:
        return self.bpe.decoder[token_id]

    def _embedding_at(self, tokens: list[int], pos: int):
        for ids, emb in self.embeddings.get(tokens[pos], []):
            if tokens[pos:pos + len(ids)] == ids:
                return emb, len(ids)
        return None, None

    def tokenize_line(self, line: str) -> tuple[list[PromptChunk], int]:
        parsed = parse_prompt_attention(line) if self.emphasis else [[line, 1.0]]
        tokenized = self.tokenize([t for t, _ in parsed])
        chunks: list[PromptChunk] = []
        state = {"chunk": PromptChunk(), "count": 0, "comma": -1}

        def close(last: bool = False) -> None:
            chunk = state["chunk"]
            state["count"] += len(chunk.tokens) if last else self.chunk_length
            pad = self.chunk_length - len(chunk.tokens)
            chunk.tokens = [self.id_start] + chunk.tokens + [self.id_end] * max(0, pad) + [self.id_end]
            chunk.multipliers = [1.0] + chunk.multipliers + [1.0] * max(0, pad) + [1.0]
            chunks.append(chunk)
            state["chunk"] = PromptChunk()
            state["comma"] = -1

        for ids, (text, weight) in zip(tokenized, parsed):
            if text == "BREAK" and weight == -1:
                close()
                continue
            pos = 0
            while pos < len(ids):
                chunk = state["chunk"]
                tok = ids[pos]
                if tok == self.comma_token:
                    state["comma"] = len(chunk.tokens)
                elif (self.comma_padding_backtrack and len(chunk.tokens) == self.chunk_length
                      and state["comma"] != -1 and len(chunk.tokens) - state["comma"] <= self.comma_padding_backtrack):
                    cut = state["comma"] + 1
                    moved_t, moved_m = chunk.tokens[cut:], chunk.multipliers[cut:]
                    chunk.tokens, chunk.multipliers = chunk.tokens[:cut], chunk.multipliers[:cut]
                    close()
                    state["chunk"].tokens, state["chunk"].multipliers = moved_t, moved_m
                chunk = state["chunk"]
                if len(chunk.tokens) == self.chunk_length:
                    close()
                    chunk = state["chunk"]
                emb, n_ids = self._embedding_at(ids, pos)
                if emb is None:
                    chunk.tokens.append(tok)
                    chunk.multipliers.append(weight)
                    pos += 1
                    continue
                if len(chunk.tokens) + emb.vectors > self.chunk_length:
                    close()
                    chunk = state["chunk"]
                chunk.fixes.append(PromptChunkFix(len(chunk.tokens), emb))
                chunk.tokens += [0] * emb.vectors
                chunk.multipliers += [weight] * emb.vectors
                pos += n_ids
        if state["chunk"].tokens or not chunks:
            close(last=True)
        return chunks, state["count"]
