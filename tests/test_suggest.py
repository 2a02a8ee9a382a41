"""The Suggest heuristic (astar_ext/suggest.py): likely concept nouns of a prompt, host-free."""

from __future__ import annotations

import pytest

from astar_ext.suggest import suggest, suggest_text, words_of


@pytest.mark.parametrize("prompt, expected", [
    # Attend-and-Excite / A-STAR style prompts
    ("a cat and a dog", ["cat", "dog"]),
    ("a red car next to a blue bird", ["car", "bird"]),
    ("a photo of a frog wearing a crown", ["frog", "crown"]),
    ("an elephant with a yellow bowl", ["elephant", "bowl"]),
    ("a turtle and a pink apple", ["turtle", "apple"]),
    ("a lion with a crown", ["lion", "crown"]),
    ("a bear and a horse", ["bear", "horse"]),
    # modifiers, verbs and nouns that look like verbs
    ("a black and white cat sitting on a red bed", ["cat", "bed"]),
    ("a cute sleeping cat and a dog", ["cat", "dog"]),
    ("a king and a queen", ["king", "queen"]),
    ("two cats playing with a ball", ["cats", "ball"]),
    ("a man holding a painting of a dog", ["man", "dog"]),
    ("a portrait of a red-haired woman holding a cup", ["woman", "cup"]),
    ("a photograph of an astronaut riding a horse", ["astronaut", "horse"]),
    ("the cat on the left and the dog on the right", ["cat", "dog"]),
    # style, quality and place words are never suggested
    ("a dog, highly detailed, 4k, masterpiece, best quality", ["dog"]),
    ("a cat in the background", ["cat"]),
    # at most three, each once, in prompt order
    ("a cat, a dog, a bird, a horse and a cat", ["cat", "dog", "bird"]),
    # tag-style prompts without determiners
    ("cat, dog, forest, masterpiece", ["cat", "dog", "forest"]),
    ("photo of cat and dog", ["cat", "dog"]),
    # prompt syntax is not text
    ("a (cat:1.3) and a [dog] <lora:style:0.8> BREAK a bird", ["cat", "dog", "bird"]),
    ("", []),
    ("masterpiece, best quality", []),
])
def test_suggestions_for_prompts(prompt, expected):
    assert suggest_text(prompt) == expected


def test_tokenizer_words_as_the_route_passes_them():
    # CLIP's words: lower case, punctuation and hyphens apart, digits apart, clitics apart
    assert suggest(["a", "photo", "of", "a", "red", "-", "haired", "woman", "'s", "hat"]) == ["hat"]
    assert suggest(["1", "girl", ",", "long", "hair", ",", "8", "k"]) == ["girl"]
    assert suggest(["A", "Cat", "AND", "a", "Dog"]) == ["cat", "dog"]


def test_limit():
    assert suggest_text("a cat and a dog and a bird", limit=2) == ["cat", "dog"]
    assert suggest_text("a cat and a dog", limit=0) == []


def test_words_of_strips_prompt_syntax():
    assert words_of("a (cat:1.3), [dog] <lora:x:0.5> AND \\(bird\\)") == ["a", "cat", ",", "dog", ",", "bird"]
