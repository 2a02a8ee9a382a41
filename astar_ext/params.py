"""The one table of A-STAR's user-facing fields, and every conversion of it.

The UI, the infotext (writing and pasting back), the API (a positional list or one dict with named
fields) and the XYZ plot all iterate over :data:`FIELDS`; nothing else lists the fields. The
positional order is part of the public API: new fields are only ever appended.

Standard library only: this module is imported by the WebUI adapter and by the tests without torch.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any


class ParamError(ValueError):
    """An invalid A-STAR argument. ``field`` names the offending field (or ``None`` for the whole set)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class Field:
    """One user-facing setting.

    ``minimum``/``maximum`` bound numbers (inclusive); ``step`` is the UI slider step. ``api`` is the
    name used in an API dict and in ``p.astar_<api>`` overrides; ``infotext`` is the key written to
    and read from the infotext.
    """

    name: str
    label: str
    type: type
    default: Any
    infotext: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    help: str = ""

    @property
    def api(self) -> str:
        return self.name


FIELDS: tuple[Field, ...] = (
    Field("enabled", "Enable A-STAR", bool, False, "A-STAR enabled",
          help="Apply A-STAR to this generation."),
    Field("concepts", "Concepts", str, "", "A-STAR concepts",
          help="Comma-separated words or phrases of the prompt (e.g. 'cat, red car'), or #N for "
               "the token at column N (SOT is #0, so in 'a cat and a dog' cat is #2)."),
    Field("scale", "Step size", float, 20.0, "A-STAR scale", 0.0, 100.0, 0.5,
          help="Step size factor of the latent update (Attend-and-Excite's 20)."),
    Field("window", "Window", float, 0.5, "A-STAR window", 0.0, 1.0, 0.05,
          help="Fraction of the sampling steps, from the first, whose latent is corrected."),
    Field("seg_weight", "Segregation weight", float, 1.0, "A-STAR seg weight", 0.0, 10.0, 0.1,
          help="Weight of the segregation loss (Eq. 2): keeps the concepts' attention apart."),
    Field("ret_weight", "Retention weight", float, 1.0, "A-STAR ret weight", 0.0, 10.0, 0.1,
          help="Weight of the retention loss (Eq. 3): keeps each concept on its previous region."),
    Field("iterations", "Iterations per step", int, 1, "A-STAR iterations", 1, 10, 1,
          help="Gradient updates per optimised step."),
    Field("mask_threshold", "Mask threshold", float, 0.5, "A-STAR mask threshold", 0.05, 0.95, 0.05,
          help="Threshold on the min-max normalised map that makes the retention mask."),
    Field("hires", "Also on the hires pass", bool, False, "A-STAR hires",
          help="Also correct the latent during the hires-fix pass (off: first pass only)."),
    Field("heatmaps", "Heatmaps", bool, False, "A-STAR heatmaps",
          help="Add each concept's attention map (first corrected step, end of the window, mean over steps) and "
               "a chart of the losses to the gallery, after the images. They are not saved as outputs."),
    Field("layout", "Layout", str, "", "A-STAR layout",
          help="Where each concept goes: 'cat 0.05 0.10 0.50 0.90; dog 0.55 0.10 0.95 0.90' (a concept, then its box "
               "x0 y0 x1 y1 in fractions of the image width and height, from the top left). Each concept with a "
               "box is held to it instead of to its own previous region (the paper's layout-guided retention)."),
    Field("layout_weight", "Layout weight", float, 3.0, "A-STAR layout weight", 0.0, 100.0, 0.5,
          help="Weight of the term that holds each concept with a region to it (the retention weight applies to "
               "the others). 3 placed objects as well as 10 on the toy benchmark and damaged the image less; with "
               "the Eq. 3 form of the term (Settings), use about 10 (docs/faithfulness.md)."),
)

FIELD_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
FIELD_BY_INFOTEXT: dict[str, Field] = {f.infotext: f for f in FIELDS}
INFOTEXT_PREFIX = "A-STAR"

AStarParams = dataclasses.make_dataclass(
    "AStarParams",
    [(f.name, f.type, dataclasses.field(default=f.default)) for f in FIELDS],
    frozen=True,
    namespace={"__doc__": "One immutable set of A-STAR settings; fields as in :data:`FIELDS`."},
)
AStarParams.__module__ = __name__

DEFAULTS = AStarParams()

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _coerce(f: Field, value: Any, strict: bool) -> Any:
    """Convert ``value`` to ``f.type`` and check its range.

    ``strict`` (API dicts and positional lists): only JSON-like values of the right kind are taken,
    e.g. ``True`` for a bool, ``3`` or ``3.0`` for an int, a number for a float. Not strict
    (infotext, whose values are always strings): strings are parsed.
    """
    if f.type is bool:
        if isinstance(value, bool):
            out = value
        elif not strict and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            out = value.strip().lower() in _TRUE
        else:
            raise ParamError(f.name, f"expected true or false, got {value!r}")
        return out
    if f.type is str:
        if f.name == "concepts" and isinstance(value, (list, tuple)):
            return concepts_to_text(value)
        if f.name == "layout":
            return layout_to_text(parse_layout(value))
        if not isinstance(value, str):
            raise ParamError(f.name, f"expected text, got {value!r}")
        if f.name == "concepts" and "\n" in value:
            raise ParamError(f.name, "must be on one line (separate concepts with commas)")
        return value.strip()

    # numbers
    if isinstance(value, bool):
        raise ParamError(f.name, f"expected a number, got {value!r}")
    if isinstance(value, str):
        if strict:
            raise ParamError(f.name, f"expected a number, got the text {value!r}")
        try:
            value = float(value.strip())
        except ValueError:
            raise ParamError(f.name, f"expected a number, got {value!r}") from None
    if not isinstance(value, (int, float)):
        raise ParamError(f.name, f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ParamError(f.name, f"must be a finite number, got {value!r}")
    if f.type is int:
        if float(value) != int(value):
            raise ParamError(f.name, f"expected a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if f.minimum is not None and value < f.minimum or f.maximum is not None and value > f.maximum:
        raise ParamError(f.name, f"must be between {_num(f.minimum)} and {_num(f.maximum)}, got {_num(value)}")
    return value


def _num(v: float | int | None) -> str:
    return "?" if v is None else (str(int(v)) if float(v).is_integer() else repr(float(v)))


def concepts_to_text(items: Sequence[Any]) -> str:
    """``["cat", "red car", 5]`` -> ``"cat, red car, #5"`` (integers are token columns)."""
    parts = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ParamError("concepts", f"each item must be a word or an integer token position, got {item!r}")
        if isinstance(item, int):
            if item < 0:
                raise ParamError("concepts", f"token positions are >= 0, got {item}")
            parts.append(f"#{item}")
        else:
            text = item.strip()
            if not text or "," in text:
                raise ParamError("concepts",
                                 f"each item must be one non-empty word or phrase without commas, got {item!r}")
            parts.append(text)
    return ", ".join(parts)


def from_args(args: Sequence[Any], base: Any = None) -> Any:
    """Parse a script's argument slice: the positional list of :data:`FIELDS`, or one dict first.

    A dict in the first slot wins (the values after it are the UI defaults the API fills in and
    are ignored). Missing fields (a shorter list, or names absent from the dict) take their value
    from ``base`` (default: :data:`DEFAULTS`). Raises :class:`ParamError` naming the field.
    """
    args = list(args)
    if args and isinstance(args[0], Mapping):
        return from_dict(args[0], base)
    if len(args) > len(FIELDS):
        raise ParamError(None, f"got {len(args)} positional arguments, A-STAR takes at most {len(FIELDS)}: "
                               + ", ".join(f.name for f in FIELDS))
    values = {f.name: _coerce(f, v, strict=True) for f, v in zip(FIELDS, args)}
    return check_layout(dataclasses.replace(base or DEFAULTS, **values))


def from_dict(data: Mapping[str, Any], base: Any = None) -> Any:
    """Parse a dict with named fields (API names); unknown names and wrong types are errors.

    Sending a dict means "use A-STAR": ``enabled`` is true unless the dict says ``"enabled": false``.
    Other absent fields take their value from ``base`` (default: :data:`DEFAULTS`).
    """
    values: dict[str, Any] = {"enabled": True}
    for key, value in data.items():
        f = FIELD_BY_NAME.get(key) if isinstance(key, str) else None
        if f is None:
            hint = difflib.get_close_matches(str(key), list(FIELD_BY_NAME), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ParamError(str(key), f"unknown field{extra}; known fields: " + ", ".join(FIELD_BY_NAME))
        values[f.name] = _coerce(f, value, strict=True)
    return check_layout(dataclasses.replace(base or DEFAULTS, **values))


def to_dict(params: Any) -> dict[str, Any]:
    """All fields by API name, in table order."""
    return {f.name: getattr(params, f.name) for f in FIELDS}


def to_args(params: Any) -> list[Any]:
    """The positional list, in table order."""
    return [getattr(params, f.name) for f in FIELDS]


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_infotext(params: Any) -> dict[str, str]:
    """Infotext pairs for ``p.extra_generation_params``: every field (without a layout, the layout fields at their
    defaults left out), all keys starting with A-STAR."""
    return {f.infotext: _format_value(getattr(params, f.name)) for f in FIELDS
            if not (f.name in _LAYOUT_ONLY and not params.layout and getattr(params, f.name) == f.default)}


_LAYOUT_ONLY = ("layout", "layout_weight")  # left out of the infotext without a layout (when at their defaults)


def has_infotext(pairs: Mapping[str, Any]) -> bool:
    return any(f.infotext in pairs for f in FIELDS)


def from_infotext(pairs: Mapping[str, Any]) -> Any:
    """Parse the A-STAR keys of a parsed infotext (values are strings); absent keys keep defaults."""
    values = {}
    for f in FIELDS:
        if f.infotext in pairs:
            values[f.name] = _coerce(f, pairs[f.infotext], strict=False)
    return check_layout(AStarParams(**values))


def replace(params: Any, **changes: Any) -> Any:
    """A copy of ``params`` with validated changes (e.g. XYZ-plot overrides)."""
    checked = {}
    for key, value in changes.items():
        f = FIELD_BY_NAME.get(key)
        if f is None:
            raise ParamError(key, "unknown field")
        checked[key] = _coerce(f, value, strict=False)
    return check_layout(dataclasses.replace(params, **checked))


# --- layout: the text form and the API's dict forms -------------------------------------------------
# The text form is what the UI's field, the infotext, the XYZ plot and the positional API use:
# entries separated by ";" (or new lines), each "<concept> x0 y0 x1 y1" (a box in fractions of the image,
# origin at the top left) or "<concept> mask <base64 PNG>" (white = inside). It holds no comma and no colon,
# so the infotext writes it unquoted and the XYZ plot's comma-separated lists can hold several layouts.

MASK_WORD = "mask"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)
_BOX_HELP = "write '<concept> x0 y0 x1 y1' with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (fractions of the image)"


@dataclasses.dataclass(frozen=True)
class LayoutEntry:
    """One concept's target region: a ``box`` ``(x0, y0, x1, y1)`` in fractions of the image (origin at the
    top left, ``0 <= x0 < x1 <= 1``, ``0 <= y0 < y1 <= 1``), or a ``mask``: a base64 PNG (white = inside)."""

    concept: str
    box: tuple[float, float, float, float] | None = None
    mask: str | None = None


def clean_concept_text(text: str) -> str:
    """Drop prompt syntax a user may have copied with the word: ``(cat:1.3)`` -> ``cat``."""
    text = text.strip()
    for _ in range(8):
        stripped = text.strip()
        if len(stripped) >= 2 and stripped[0] in "([" and stripped[-1] in ")]":
            stripped = stripped[1:-1]
        stripped = _EMPHASIS_WEIGHT.sub("", stripped).strip()
        if stripped == text:
            break
        text = stripped
    return " ".join(text.split())


_EMPHASIS_WEIGHT = re.compile(r":\s*-?[\d.]+\s*$")


def concept_key(text: str) -> str:
    """How a concept is compared between the concepts and the layout: ``"(Cat:1.2)"`` -> ``"cat"``, ``"# 5"`` ->
    ``"#5"``."""
    text = text.strip()
    if text.startswith("#"):
        return "#" + text[1:].strip()
    return clean_concept_text(text).lower()


def _coord(v: float) -> str:
    """A box coordinate as the text form writes it: at least two decimals, at most four (0.1 -> "0.10")."""
    text = f"{v:.4f}".rstrip("0")
    head, _, tail = text.partition(".")
    return f"{head}.{tail:0<2}"


def _box(concept: str, values: Any, strict: bool) -> tuple[float, float, float, float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != 4:
        raise ParamError("layout", f"the box of {concept!r} must be four numbers [x0, y0, x1, y1], got {values!r}")
    out = []
    for v in values:
        if isinstance(v, str) and not strict:
            try:
                v = float(v)
            except ValueError:
                raise ParamError("layout", f"the box of {concept!r} has {v!r}, not a number; {_BOX_HELP}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ParamError("layout", f"the box of {concept!r} has {v!r}, not a finite number; {_BOX_HELP}")
        out.append(float(v))
    x0, y0, x1, y1 = out
    if not all(0.0 <= v <= 1.0 for v in out):
        shown = " ".join(_coord(v) if 0 <= v <= 1 else repr(v) for v in out)
        raise ParamError("layout", f"the box of {concept!r} ({shown}) is outside the image; {_BOX_HELP}")
    if not (x0 < x1 and y0 < y1):
        raise ParamError("layout", f"the box of {concept!r} has x0 >= x1 or y0 >= y1 "
                                   f"({' '.join(_coord(v) for v in out)}); {_BOX_HELP}")
    return x0, y0, x1, y1


def _mask(concept: str, value: Any) -> str:
    """A mask's base64 PNG, checked for being base64 and starting like a PNG (decoding it is the engine's)."""
    if not isinstance(value, str):
        raise ParamError("layout", f"the mask of {concept!r} must be a base64-encoded PNG, got {type(value).__name__}")
    text = "".join(_DATA_URL.sub("", value.strip()).split())
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ParamError("layout", f"the mask of {concept!r} is not valid base64") from None
    if not raw.startswith(PNG_SIGNATURE):
        raise ParamError("layout", f"the mask of {concept!r} is not a PNG image")
    return base64.b64encode(raw).decode("ascii")


def _concept_name(value: Any) -> str:
    if not isinstance(value, str) or not clean_concept_text(value):
        raise ParamError("layout", f"each region needs a concept name, got {value!r}")
    if "," in value or ";" in value:
        raise ParamError("layout", f"a concept name holds no comma or semicolon, got {value!r}")
    return " ".join(value.split())


def _parse_layout_text(text: str) -> list[LayoutEntry]:
    entries = []
    for raw in re.split(r"[;\n]", text):
        words = raw.split()
        if not words:
            continue
        if len(words) >= 3 and words[-2].lower() == MASK_WORD:
            name = _concept_name(" ".join(words[:-2]))
            entries.append(LayoutEntry(name, mask=_mask(name, words[-1])))
            continue
        if len(words) < 5:
            raise ParamError("layout", f"{raw.strip()!r} is not a region: {_BOX_HELP}, "
                                       "or '<concept> mask <base64 PNG>'")
        name = _concept_name(" ".join(words[:-4]))
        entries.append(LayoutEntry(name, box=_box(name, words[-4:], strict=False)))
    return entries


def parse_layout(value: Any) -> tuple[LayoutEntry, ...]:
    """The layout's entries from the text form, ``{"cat": [x0, y0, x1, y1], ...}``, or a list of
    ``{"concept": ..., "box": [...]}`` / ``{"concept": ..., "mask": "<base64 PNG>"}``.

    Raises :class:`ParamError` (field ``layout``) for a malformed region, a box outside ``[0, 1]`` or with
    ``x0 >= x1`` / ``y0 >= y1``, a mask that is not a base64 PNG, or two regions for one concept.
    """
    if isinstance(value, str):
        entries = _parse_layout_text(value)
    elif isinstance(value, Mapping):
        entries = []
        for name, box in value.items():
            name = _concept_name(name)
            entries.append(LayoutEntry(name, box=_box(name, box, strict=True)))
    elif isinstance(value, (list, tuple)):
        entries = []
        for item in value:
            if not isinstance(item, Mapping):
                raise ParamError("layout", f"each region of the list must be an object with 'concept' and 'box' or "
                                           f"'mask', got {item!r}")
            unknown = sorted(set(item) - {"concept", "box", "mask"})
            if unknown:
                raise ParamError("layout", f"unknown key {unknown[0]!r} in a region (keys: concept, box, mask)")
            name = _concept_name(item.get("concept"))
            if ("box" in item) == ("mask" in item):
                raise ParamError("layout", f"the region of {name!r} needs exactly one of 'box' and 'mask'")
            entries.append(LayoutEntry(name, box=_box(name, item["box"], strict=True)) if "box" in item
                           else LayoutEntry(name, mask=_mask(name, item["mask"])))
    else:
        raise ParamError("layout", f"expected the text form ('cat 0.05 0.10 0.50 0.90; dog ...'), an object "
                                   f"{{concept: [x0, y0, x1, y1]}} or a list of regions, got {value!r}")
    seen: set[str] = set()
    for e in entries:
        key = concept_key(e.concept)
        if key in seen:
            raise ParamError("layout", f"{e.concept!r} has more than one region: give each concept one box or mask")
        seen.add(key)
    return tuple(entries)


def layout_to_text(entries: Sequence[LayoutEntry]) -> str:
    """The text form of ``entries`` (``"cat 0.05 0.10 0.50 0.90; dog mask iVBOR..."``)."""
    parts = []
    for e in entries:
        if e.box is not None:
            parts.append(f"{e.concept} " + " ".join(_coord(v) for v in e.box))
        else:
            parts.append(f"{e.concept} {MASK_WORD} {e.mask}")
    return "; ".join(parts)


def check_layout(params: Any) -> Any:
    """``params`` itself, after checking that every region of its layout belongs to one of its concepts."""
    text = getattr(params, "layout", "")
    if not text:
        return params
    known = {concept_key(c) for c in params.concepts.split(",") if c.strip()}
    for e in parse_layout(text):
        if concept_key(e.concept) not in known:
            names = ", ".join(c.strip() for c in params.concepts.split(",") if c.strip()) or "none"
            raise ParamError("layout", f"{e.concept!r} is not one of the concepts ({names}): a region needs a concept "
                                       "of the Concepts field")
    return params


# --- infotext text form ------------------------------------------------------------------------
# The WebUI joins pairs as ``key: value`` with ", " and JSON-quotes a value that contains a comma,
# a colon or a newline (modules/infotext_utils.py ``quote``); it parses them back with the pattern
# below (the same language as ``re_param_code`` there). These two functions reproduce that
# behaviour so that the round trip can be tested without the WebUI.

_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def quote_value(value: Any) -> str:
    text = str(value)
    if "," in text or ":" in text or "\n" in text:
        return json.dumps(text, ensure_ascii=False)
    return text


def format_infotext_pairs(pairs: Mapping[str, Any]) -> str:
    """``{"A-STAR scale": "20.0", ...}`` -> ``'A-STAR scale: 20.0, ...'`` as the WebUI writes it."""
    return ", ".join(k if k == v else f"{k}: {quote_value(v)}" for k, v in pairs.items() if v is not None)


def parse_infotext_pairs(line: str) -> dict[str, str]:
    """Parse the last line of an infotext into ``{key: value}`` strings, unquoting JSON strings."""
    out = {}
    for key, value in _PAIR.findall(line):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out
