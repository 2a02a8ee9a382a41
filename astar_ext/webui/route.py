"""The token picker's JSON route, ``POST /astar/v1/tokens``: a prompt's words with the token columns A-STAR uses.

Registered on the WebUI's FastAPI app by an ``on_app_started`` callback (so it exists with and without
``--api``, and with ``--nowebui``). The prompt goes through the same steps as a generation's prompt
(``webui-host.md`` §5): extra-network tags (``<lora:name:0.8>``) are removed and returned on their own,
``AND`` splits the prompt into parts (``prompt_parser.get_multicond_prompt_list``), prompt editing is
resolved to the text of the first step (``get_learned_conditioning_prompt_schedules``; the early steps are
the ones A-STAR corrects), and each part is tokenized by the loaded model's own ``tokenize_line`` at request
time, so emphasis, BREAK, 75-token chunks, comma padding and textual-inversion embeddings come out exactly
as in a generation. Columns use A-STAR's ``#N`` numbering: column ``77 * chunk + index``, ``#0`` is the
start token of the first chunk.

Request (JSON object): ``prompt`` (string, required), ``concepts`` (string like the A-STAR field, or a list of
words and integer columns; optional), ``steps`` (integer, optional, default 20: only matters for prompt
editing with fractions). Response: see :func:`describe`. Errors are JSON ``{"error": message}``: 400 when the
body is not JSON, 422 when a field has the wrong type, 503 when no model is loaded (or its tokenizer cannot
be used), 500 for anything unexpected.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from modules import extra_networks, prompt_parser, shared
from starlette.concurrency import run_in_threadpool

from .. import params as P
from ..hostapi import NoModelLoaded
from ..passconcepts import PassConcepts, Tokenizer
from ..suggest import suggest
from ..tokens import CHUNK_TOKENS, ConceptItem, Word, clip_byte_alphabet, parse_concepts, prompt_words
from .hosting import current_host

ROUTE = "/astar/v1/tokens"
MAX_PROMPT_CHARS = 20000
DEFAULT_STEPS = 20

_TAG = re.compile(r"<(\w+):([^>]+)>")  # the WebUI's extra-network tag syntax (modules/extra_networks.py)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)

REQUEST_SCHEMA = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "example": "a cat and a dog <lora:style:0.8>"},
        "concepts": {"type": "string", "example": "cat, dog"},
        "steps": {"type": "integer", "example": 20},
    },
}


class RouteError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --- request ---------------------------------------------------------------------------------------------
def parse_request(body: bytes | str) -> dict[str, Any]:
    """``{"prompt", "concepts", "steps"}`` from a request body; raises :class:`RouteError` (400/422)."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as e:
        raise RouteError(400, f"the request body is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise RouteError(422, 'the request body must be a JSON object like {"prompt": "a cat and a dog"}')
    unknown = sorted(set(data) - {"prompt", "concepts", "steps"})
    if unknown:
        raise RouteError(422, f"unknown field(s): {', '.join(unknown)} (known: prompt, concepts, steps)")
    prompt = data.get("prompt")
    if not isinstance(prompt, str):
        raise RouteError(422, "'prompt' is required and must be a string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise RouteError(422, f"'prompt' is longer than {MAX_PROMPT_CHARS} characters")
    concepts = data.get("concepts", "")
    if concepts is None:
        concepts = ""
    if isinstance(concepts, (list, tuple)):
        try:
            concepts = P.concepts_to_text(concepts)
        except P.ParamError as e:
            raise RouteError(422, str(e)) from None
    if not isinstance(concepts, str) or len(concepts) > MAX_PROMPT_CHARS:
        raise RouteError(422, "'concepts' must be a string (\"cat, dog\") or a list of words and integers")
    steps = data.get("steps", DEFAULT_STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1000:
        raise RouteError(422, "'steps' must be an integer from 1 to 1000")
    return {"prompt": prompt, "concepts": concepts, "steps": steps}


# --- the loaded model --------------------------------------------------------------------------------------
def loaded_model() -> Any:
    """The loaded model, without starting a load: in the WebUI reading ``shared.sd_model`` loads the
    checkpoint when none was loaded yet, and a picker request must not do that (or wait for it)."""
    try:
        from modules import sd_models

        data = getattr(sd_models, "model_data", None)
    except ImportError:  # pragma: no cover - every WebUI has sd_models
        data = None
    if data is not None and hasattr(data, "sd_model"):
        return data.sd_model
    return getattr(shared, "sd_model", None)


def model_tokenizer(sd_model: Any) -> Tokenizer:
    """The model's :class:`Tokenizer` with a decoder (raises :class:`RouteError` 503 when there is none)."""
    if sd_model is None:
        raise RouteError(503, "no model is loaded yet; try again when the checkpoint has loaded")
    try:
        tok = current_host().tokenizer(sd_model)
    except NoModelLoaded as e:
        raise RouteError(503, f"no model is loaded yet ({e}); try again when the checkpoint has loaded") from None
    except Exception as e:  # noqa: BLE001 - any model the adapter cannot read
        raise RouteError(503, f"the loaded model's tokenizer cannot be used: {e}") from None
    if tok.decode is None:
        inner = getattr(getattr(getattr(sd_model, "cond_stage_model", None), "wrapped", None), "tokenizer", None)
        if inner is not None and hasattr(inner, "convert_ids_to_tokens"):
            tok.decode = lambda i, inner=inner: inner.convert_ids_to_tokens([int(i)])[0]
    if tok.decode is None:
        raise RouteError(503, "the loaded model's tokenizer cannot turn token ids back into words")
    return tok


def _model_name(sd_model: Any) -> str | None:
    info = getattr(sd_model, "sd_checkpoint_info", None)
    return getattr(info, "title", None)


# --- the description ----------------------------------------------------------------------------------------
_BYTES = {ch: b for b, ch in clip_byte_alphabet().items()}  # CLIP's byte-level BPE alphabet, inverted


def display_text(text: str) -> str:
    """A word as the user typed it: ``cafÃ©`` (byte-level BPE) -> ``café``; other text is returned as is."""
    if text.isascii() or any(ch not in _BYTES for ch in text):
        return text
    return bytes(_BYTES[ch] for ch in text).decode("utf-8", errors="replace")


def extra_network_tags(prompt: str) -> tuple[str, list[dict[str, Any]]]:
    """The prompt without its extra-network tags (as the WebUI strips them), and the tags in prompt order."""
    tags = [{"text": m.group(0), "network": m.group(1), "name": m.group(2).split(":")[0],
             "args": m.group(2).split(":")} for m in _TAG.finditer(prompt)]
    parse = getattr(extra_networks, "parse_prompt", None)
    stripped = parse(prompt)[0] if parse is not None else _TAG.sub("", prompt)
    return stripped, tags


def _break_chunks(text: str, tokenizer: Tokenizer, words: list[Word]) -> set[int]:
    """Indexes of the chunks that a BREAK starts (a chunk the 75-token limit starts is not among them)."""
    if not _BREAK.search(text) or any(w.text.lower() == "break" for w in words):
        return set()  # no BREAK, or BREAK is literal text (emphasis parsing is off)
    starts = set()
    for m in _BREAK.finditer(text):
        before, _ = tokenizer.tokenize_line(text[:m.start()])
        starts.add(len(before))
    return starts


def _word_entry(word: Word, concepts: list[tuple[str, set[int]]]) -> dict[str, Any]:
    cols = set(word.columns)
    return {"text": display_text(word.text) if word.kind != "embedding" else word.text,
            "columns": list(word.columns), "chunk": word.chunk, "kind": word.kind,
            "concepts": [label for label, columns in concepts if cols & columns]}


def describe(prompt: str, concepts: str, tokenizer: Tokenizer, *, steps: int = DEFAULT_STEPS,
             use_old_scheduling: bool = False) -> dict[str, Any]:
    """What the picker shows for ``prompt``; ``tokenizer`` is the loaded model's.

    ``parts``: one per AND-part (``text`` as tokenized, ``weight``, ``token_count``, ``chunks`` with the number
    of prompt tokens of each 77-token chunk and whether a BREAK started it, ``words`` in prompt order with
    ``text``, ``columns``, ``chunk``, ``kind`` (``word``, ``punct`` or ``embedding``) and the labels of the
    current ``concepts`` that select it, and ``concepts``: each concept's columns in that part);
    ``extra_networks``: the tags removed before tokenizing; ``concepts``: each concept and whether some
    part holds it; ``warnings``: what a generation would report about the concepts (a missing word with a
    close match, a shared column, a malformed item); ``suggested``: the Suggest heuristic's concepts
    (:mod:`astar_ext.suggest`) and ``suggested_text`` the same as a concepts field value.
    """
    text, tags = extra_network_tags(prompt)
    warnings: list[str] = []
    try:
        items: list[ConceptItem] = parse_concepts(concepts)
    except P.ParamError as e:
        items = []
        warnings.append(str(e))
    # one tokenization per text: PassConcepts matches the concepts on it, the words below are read from it
    tokenizer = dataclasses.replace(tokenizer, tokenize_line=functools.lru_cache(maxsize=None)(tokenizer.tokenize_line))
    pass_concepts = PassConcepts(items, [text], prompt_parser, steps, tokenizer,
                                 use_old_scheduling=use_old_scheduling)
    indexes, _flat, _ = prompt_parser.get_multicond_prompt_list([text])
    weights = [float(weight) for _index, weight in indexes[0]]
    parts = []
    suggest_words: list[str] = []
    found: set[str] = set()
    for row, weight in zip(pass_concepts.rows, weights):
        part_text = row.text_at(0)
        chunks, count = tokenizer.tokenize_line(part_text)
        words = prompt_words(chunks, tokenizer.decode, tokenizer.id_end)
        matched = pass_concepts.tokens(part_text)
        selection = [(c.label, set(c.columns)) for c in matched.concepts]
        found.update(c.label for c in matched.found)
        breaks = _break_chunks(part_text, tokenizer, words)
        parts.append({
            "text": part_text, "weight": weight, "token_count": int(count),
            "chunks": [{"index": c, "tokens": n, "first_column": CHUNK_TOKENS * c + 1, "break": c in breaks}
                       for c, n in enumerate(matched.chunk_lengths)],
            "words": [_word_entry(w, selection) for w in words],
            "concepts": [{"label": c.label, "columns": list(c.columns)} for c in matched.concepts],
        })
        if suggest_words:
            suggest_words.append(",")
        suggest_words.extend(display_text(w.text) if w.kind != "embedding" else w.text for w in words)
    warnings.extend(w for w in pass_concepts.warnings() if w not in warnings)
    suggested = suggest(suggest_words)
    return {
        "prompt": prompt,
        "parts": parts,
        "extra_networks": tags,
        "concepts": [{"label": it.label, "found": it.label in found} for it in items],
        "warnings": warnings,
        "suggested": suggested,
        "suggested_text": ", ".join(suggested),
    }


def handle(request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` for a parsed request, with the loaded model."""
    try:
        sd_model = loaded_model()
        tokenizer = model_tokenizer(sd_model)
        body = describe(request["prompt"], request["concepts"], tokenizer, steps=request["steps"],
                        use_old_scheduling=bool(getattr(shared.opts, "use_old_scheduling", False)))
    except RouteError as e:
        return e.status, {"error": e.message}
    except Exception as e:  # noqa: BLE001 - a JSON answer, never an HTML error page
        return 500, {"error": f"A-STAR could not read the prompt's tokens: {type(e).__name__}: {e}"}
    body["model"] = _model_name(sd_model)
    body["refusal"] = current_host().model_refusal(sd_model)
    return 200, body


async def tokens_endpoint(request: Request) -> JSONResponse:
    try:
        parsed = parse_request(await request.body())
    except RouteError as e:
        return JSONResponse({"error": e.message}, status_code=e.status)
    status, body = await run_in_threadpool(handle, parsed)
    return JSONResponse(body, status_code=status)


def add_route(app: Any) -> None:
    """Adds ``POST /astar/v1/tokens`` to ``app`` (once)."""
    if any(getattr(r, "path", None) == ROUTE for r in getattr(app, "routes", ())):
        return
    app.add_api_route(
        ROUTE, tokens_endpoint, methods=["POST"], tags=["A-STAR"],
        summary="A-STAR token picker: a prompt's words and the token columns A-STAR uses",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        openapi_extra={"requestBody": {"required": True,
                                       "content": {"application/json": {"schema": REQUEST_SCHEMA}}}},
    )


def on_app_started(demo: Any, app: Any) -> None:
    add_route(app)
