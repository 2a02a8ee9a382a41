"""Suggested concepts: the likely concept nouns of a prompt (what the picker's Suggest button selects).

A-STAR needs the words of the objects that compete for the image ("a cat and a dog" -> ``cat, dog``).
This is a small, predictable heuristic, not a parser; the user edits its result. It reads a prompt as a
sequence of words and punctuation marks (the token picker passes the words the model's tokenizer found,
so emphasis, extra-network tags and BREAK are already gone; :func:`words_of` does the same for plain text):

1. A **noun phrase** starts at a determiner or a number (``a``, ``an``, ``the``, ``two``, ``some``,
   ``his``, ``3``, ...) and takes the words that follow until a boundary: a punctuation mark (a hyphen
   joins two words), a conjunction, a preposition, a pronoun, a common verb (``and``, ``with``, ``of``,
   ``next``, ``to``, ``is``, ``holds``, ...), the next determiner, or a verb form ending in -ing or -ed
   that follows a noun ("a frog **wearing** a crown", "a dog **covered** in snow"; in "a sleeping cat"
   or "a cute sleeping cat" it is a modifier). After a colour or another common adjective, ``and`` and a
   comma do not end the phrase ("a black and white cat").
2. The phrase's **head noun** is its last word. It is suggested unless it is a style or quality word
   (``photo``, ``painting``, ``portrait``, ``masterpiece``, ``quality``, ``4k``, ...), a place in the
   picture (``background``, ``sky``, ``left``, ...), a colour or another common adjective, a stop word,
   or a single character.
3. Tag-style prompts with no determiner ("cat, dog, forest, masterpiece"): every stretch between
   punctuation marks and boundary words is a phrase, with the same head rule and exclusions.
4. Heads are returned in their order in the prompt, each once, at most ``limit`` (3) of them.

Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

LIMIT = 3

DETERMINERS = frozenset("""
a an the one two three four five six seven eight nine ten eleven twelve dozen some several many few
his her their my your our its this that these those another each every both
""".split())

BOUNDARIES = frozenset("""
and or but nor plus with without of in on at by for from to into onto next near nearby beside besides behind
under over above below between among amongst around through across against along inside outside underneath
beneath atop upon toward towards via while as than like who whom whose which where when whilst then
is are was were be been being am has have had having does do did will would can could should may might
it he she they them him we you i me us itself there here not no nothing very too also just only
sits sit stands stand holds hold wears wear eats eat drinks drink lies lie looks walks rides jumps jump
chases carries reads read sleeps sleep smiles smile stares gazes floats swims swim
""".split())

STYLE_WORDS = frozenset("""
photo photos photograph photography photographic picture image images painting paintings drawing drawings
illustration render rendering art artwork sketch portrait closeup close-up shot view angle wallpaper poster
masterpiece quality best high highres absurdres lowres worst normal detailed detail details intricate
resolution hd hdr uhd 4k 8k 16k k sharp focus bokeh dof depth cinematic lighting realistic photorealistic
hyperrealistic octane unreal engine trending artstation concept digital oil watercolor watercolour style
anime cartoon 3d 2d cgi vector render ultra extremely highly
""".split())

PLACE_WORDS = frozenset("""
background backdrop foreground scenery scene landscape sky ground floor distance horizon left right top
bottom middle center centre side front back day night daytime sunset sunrise weather
""".split())

ADJECTIVES = frozenset("""
red orange yellow green blue purple violet pink brown black white gray grey golden gold silver beige cyan
magenta teal turquoise navy dark light bright pale colorful colourful multicolored transparent
big small large little tiny huge giant gigantic tall short long wide narrow thick thin fat round square
old young new ancient modern cute pretty beautiful ugly fluffy furry hairy shiny wooden metal metallic
plastic glass stone wet dry hot cold warm happy sad angry scary funny cool fancy cozy cosy soft hard
smooth rough fresh wild tame baby adult male female elegant majestic vintage retro futuristic
""".split())

ING_NOUNS = frozenset("""
building buildings ceiling clothing dumpling dumplings duckling ducklings earring earrings evening morning
painting paintings drawing drawings pudding sibling siblings string strings spring springs wedding
seedling seedlings stocking stockings lightning awning railing railings carving icing frosting
""".split())

_PUNCT = re.compile(r"^[^\w]+$")


def _is_punct(word: str) -> bool:
    return bool(_PUNCT.match(word))


def _is_number(word: str) -> bool:
    return word.isdigit()


def _verb_form(word: str) -> bool:
    """A verb form that ends a noun phrase after a noun: ``wearing``, ``covered`` (not ``king``, ``bed``)."""
    if word in ING_NOUNS:
        return False
    if word.endswith("ing"):
        return len(word) >= 6
    if word.endswith("ed"):
        return len(word) >= 5 and not word.endswith("eed")
    return False


def _candidate(head: str) -> bool:
    return (len(head) > 1 and not _is_number(head) and head not in STYLE_WORDS and head not in PLACE_WORDS
            and head not in ADJECTIVES and head not in BOUNDARIES and head not in DETERMINERS)


def _normalised(words: Sequence[str]) -> list[str]:
    """Lower-cased words; ``red - haired`` becomes ``red-haired``; clitics (``'s``) are dropped."""
    out: list[str] = []
    i = 0
    while i < len(words):
        word = str(words[i]).strip().lower()
        i += 1
        if not word or word.startswith(("'", "\u2019")) and len(word) > 1:
            continue
        if word == "-" and out and not _is_punct(out[-1]) and i < len(words) and not _is_punct(words[i]):
            out[-1] = f"{out[-1]}-{str(words[i]).strip().lower()}"
            i += 1
            continue
        out.append(word)
    return out


def _phrases(words: Sequence[str], need_determiner: bool) -> Iterator[list[str]]:
    current: list[str] | None = None
    for i, word in enumerate(words):
        after_adjective = bool(current) and current[-1] in ADJECTIVES
        following = words[i + 1] if i + 1 < len(words) else ""
        continues = after_adjective and following and not _is_punct(following) and following not in BOUNDARIES
        if _is_punct(word):
            if word == "," and continues:
                continue
            if current:
                yield current
            current = None
        elif word in DETERMINERS or _is_number(word):
            if current:
                yield current
            current = []
        elif word in ("and", "or") and continues:
            continue
        elif word in BOUNDARIES or (current and not after_adjective and _verb_form(word)):
            if current:
                yield current
            current = None
        elif current is not None:
            current.append(word)
        elif not need_determiner:
            current = [word]
    if current:
        yield current


def suggest(words: Sequence[str], limit: int = LIMIT) -> list[str]:
    """The likely concept nouns of a prompt given as words and punctuation marks, in prompt order."""
    items = _normalised(words)
    phrases = list(_phrases(items, need_determiner=True))
    if not any(_candidate(p[-1]) for p in phrases):
        phrases = list(_phrases(items, need_determiner=False))
    out: list[str] = []
    for phrase in phrases:
        head = phrase[-1]
        if len(out) < limit and _candidate(head) and head not in out:
            out.append(head)
    return out


_TAG = re.compile(r"<\w+:[^>]+>")
_WEIGHT = re.compile(r":\s*-?[\d.]+\s*(?=[)\]])")
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?|[^\w\s]")


def words_of(text: str) -> list[str]:
    """A prompt's words and punctuation marks, without extra-network tags, emphasis weights and brackets;
    ``AND`` and ``BREAK`` become commas (a rough, tokenizer-free reading for :func:`suggest`)."""
    text = _TAG.sub(" ", text)
    text = re.sub(r"\b(?:AND|BREAK)\b", ",", text)
    text = _WEIGHT.sub("", text.replace("\\(", " ").replace("\\)", " "))
    text = re.sub(r"[()\[\]{}]", " ", text)
    return _WORD.findall(text)


def suggest_text(text: str, limit: int = LIMIT) -> list[str]:
    """:func:`suggest` on plain prompt text."""
    return suggest(words_of(text), limit)
