"""Concept specs -> token columns, with the real CLIP BPE vocabulary and WebUI-style 77-token chunks.

The chunks come from ``tests/standin/prompt.py``, a STAND-IN of the WebUI's ``tokenize_line``.
"""

from __future__ import annotations

import pytest

from astar_ext.params import ParamError
from astar_ext.tokens import (
    CHUNK_TOKENS,
    clean_concept_text,
    match_concepts,
    parse_concepts,
    prompt_words,
)
from tests.standin.prompt import Embedding, StandinClipWrapper


def match(wrapper, prompt, spec):
    chunks, _ = wrapper.tokenize_line(prompt)
    return match_concepts(parse_concepts(spec), chunks, wrapper.tokenize, wrapper.id_end, wrapper.decode)


def cols(result):
    return {c.label: c.columns for c in result.concepts}


def test_ids_equal_clip(clip_wrapper):
    chunks, count = clip_wrapper.tokenize_line("a cat and a dog")
    assert chunks[0].tokens[:7] == [49406, 320, 2368, 537, 320, 1929, 49407]
    assert len(chunks[0].tokens) == 77 and count == 5


def test_cat_and_dog_are_columns_2_and_5(clip_wrapper):
    r = match(clip_wrapper, "a cat and a dog", "cat, dog")
    assert cols(r) == {"cat": (2,), "dog": (5,)}
    assert r.missing == () and r.warnings == ()
    assert r.chunk_lengths == (5,)


def test_position_spec_and_mixed(clip_wrapper):
    r = match(clip_wrapper, "a cat and a dog", "#2, dog")
    assert cols(r) == {"#2": (2,), "dog": (5,)}


def test_multi_token_word_is_one_concept(clip_wrapper):
    r = match(clip_wrapper, "an axolotl and a frog", "axolotl, frog")
    assert cols(r)["axolotl"] == (2, 3, 4, 5)
    assert cols(r)["frog"] == (8,)


def test_phrase_is_one_concept(clip_wrapper):
    r = match(clip_wrapper, "a red car next to a blue bird", "red car, blue bird")
    assert cols(r) == {"red car": (2, 3), "blue bird": (7, 8)}


def test_repeated_word_uses_every_occurrence_unless_position_given(clip_wrapper):
    r = match(clip_wrapper, "a cat, a dog and another cat", "cat, dog")
    assert cols(r)["cat"] == (2, 8)
    r = match(clip_wrapper, "a cat, a dog and another cat", "#8, dog")
    assert cols(r)["#8"] == (8,)


def test_word_is_not_matched_inside_another_word(clip_wrapper):
    r = match(clip_wrapper, "a caterpillar and cats", "cat")
    assert r.missing == ("cat",)
    assert "did you mean 'cats'" in r.warnings[0]


def test_missing_word_is_reported_not_fatal(clip_wrapper):
    r = match(clip_wrapper, "a cat and a dog", "cat, horse")
    assert cols(r) == {"cat": (2,), "horse": ()}
    assert r.missing == ("horse",)
    assert [c.label for c in r.found] == ["cat"]


def test_case_and_emphasis_do_not_matter(clip_wrapper):
    r = match(clip_wrapper, "a (cat:1.3) and a [dog]", "Cat, (dog:1.2)")
    assert cols(r) == {"Cat": (2,), "dog": (5,)}


def test_break_starts_a_new_chunk(clip_wrapper):
    r = match(clip_wrapper, "a cat BREAK a dog", "cat, dog")
    assert cols(r) == {"cat": (2,), "dog": (CHUNK_TOKENS + 2,)}
    assert r.chunk_lengths == (2, 2)


def test_long_prompt_second_chunk_and_comma_backtrack(clip_wrapper):
    filler = ", ".join(["tall green grass field"] * 20)  # 99 tokens: spills into a second chunk
    prompt = f"a cat, {filler}, a dog"
    chunks, _ = clip_wrapper.tokenize_line(prompt)
    assert len(chunks) == 2
    r = match_concepts(parse_concepts("cat, dog"), chunks, clip_wrapper.tokenize, clip_wrapper.id_end)
    dog = cols(r)["dog"]
    assert cols(r)["cat"] == (2,)
    assert len(dog) == 1 and dog[0] > CHUNK_TOKENS
    assert chunks[1].tokens[dog[0] - CHUNK_TOKENS] == clip_wrapper.tokenize(["dog"])[0][0]
    # the comma backtrack moved the text after the last comma into chunk 2: chunk 1 ends early
    assert r.chunk_lengths[0] == 73


def test_word_cut_by_a_chunk_boundary_is_found_in_each_part_only_if_whole(clip_wrapper):
    no_backtrack = StandinClipWrapper(comma_padding_backtrack=0)
    prompt = "a " * 74 + "red car"  # 'red' is token 75, 'car' token 76: split across chunks
    r = match(no_backtrack, prompt, "red car, car")
    assert cols(r)["red car"] == ()
    assert cols(r)["car"] == (CHUNK_TOKENS + 1,)


def test_position_on_sot_eot_or_padding_is_reported(clip_wrapper):
    r = match(clip_wrapper, "a cat and a dog", "#0, #6, #40, #300, cat")
    assert r.missing == ("#0", "#6", "#40", "#300")
    assert cols(r)["cat"] == (2,)


def test_textual_inversion_embedding_by_name():
    w = StandinClipWrapper([Embedding("mystyle", 3)])
    r = match(w, "a cat in mystyle and a dog", "mystyle, dog")
    assert cols(r)["mystyle"] == (4, 5, 6)
    assert cols(r)["dog"] == (9,)


def test_placeholder_ids_never_match_a_word():
    w = StandinClipWrapper([Embedding("mystyle", 2)])
    r = match(w, "mystyle ! cat", "!")  # '!' is id 0, the placeholder id
    assert cols(r)["!"] == (3,)


def test_shared_columns_are_warned(clip_wrapper):
    r = match(clip_wrapper, "a cat and a dog", "cat, #2")
    assert any("share token column 2" in w for w in r.warnings)


@pytest.mark.parametrize("spec, expected", [
    ("cat, dog", ["cat", "dog"]),
    (" cat ,, dog ,", ["cat", "dog"]),
    ("(cat:1.3), [dog]", ["cat", "dog"]),
    ("#5, red  car", ["#5", "red car"]),
    ("cat, Cat", ["cat"]),
])
def test_parse_concepts(spec, expected):
    assert [i.label for i in parse_concepts(spec)] == expected


@pytest.mark.parametrize("spec", ["#x", "#-1", "#", "()"])
def test_parse_concepts_errors_name_the_field(spec):
    with pytest.raises(ParamError) as err:
        parse_concepts(spec)
    assert err.value.field == "concepts"


def test_clean_concept_text():
    assert clean_concept_text("((red car:1.2))") == "red car"
    assert clean_concept_text("[ dog ]") == "dog"


def test_prompt_words_groups_subwords_embeddings_and_chunks():
    w = StandinClipWrapper([Embedding("mystyle", 2)])
    chunks, _ = w.tokenize_line("an axolotl, mystyle BREAK dog")
    words = prompt_words(chunks, w.decode, w.id_end)
    assert [(x.text, x.columns, x.chunk, x.kind) for x in words] == [
        ("an", (1,), 0, "word"),
        ("axolotl", (2, 3, 4, 5), 0, "word"),
        (",", (6,), 0, "punct"),
        ("mystyle", (7, 8), 0, "embedding"),
        ("dog", (CHUNK_TOKENS + 1,), 1, "word"),
    ]
