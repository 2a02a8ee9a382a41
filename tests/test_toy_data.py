"""The toy data generator, its ground truth, the learning-free detector and the toy tokenizer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from astar_ext.toy import data as D
from astar_ext.toy import detect as T
from astar_ext.toy.tokenizer import ID_END, ID_START, VOCAB, ToyTokenizer


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_scenes_follow_their_specification():
    rng = np.random.default_rng(1)
    counts = {1: 0, 2: 0, 3: 0}
    for _ in range(300):
        s = D.random_scene(rng)
        n = len(s.objects)
        counts[n] += 1
        assert s.image.shape == (32, 32, 3) and s.image.dtype == np.float32
        assert 0.0 <= s.image.min() and s.image.max() <= 1.0
        assert len({o.colour for o in s.objects}) == n  # distinct colours
        assert D.objects_in(s.caption) == [(o.colour, o.shape) for o in s.objects]
        assert s.masks.shape == (n, 32, 32) and not (s.masks.sum(0) > 1).any()  # no overlap
        lo, hi = D.SIZE_RANGE[n]
        for o, m in zip(s.objects, s.masks):
            assert lo <= o.size <= hi and 0 <= o.x <= 32 - o.size and 0 <= o.y <= 32 - o.size
            assert m.any() and not m[: o.y].any() and not m[:, : o.x].any()  # inside its frame
        # the background (no object covers any of it) never looks like an object colour
        assert (T.colour_labels(s.image)[s.coverage.sum(0) == 0] == -1).all()
    # the data mix 0.5 / 0.35 / 0.15
    assert counts[1] > counts[2] > counts[3] > 20


def test_some_captions_name_an_object_the_image_does_not_show():
    """The mechanism of neglect in the data: with ``absent = 0.3`` about 30 % of the one- and two-object scenes
    have a caption that names one more object, of another colour, which is not drawn."""
    rng = np.random.default_rng(7)
    mix = D.DataMix(absent=0.3)
    extra = small = 0
    for _ in range(400):
        s = D.random_scene(rng, mix)
        named = D.objects_in(s.caption)
        drawn = [(o.colour, o.shape) for o in s.objects]
        # the caption names the drawn objects in order, and the absent one somewhere among them
        assert [x for x in named if x not in s.absent] == drawn
        assert len(named) == len(drawn) + len(s.absent) and len(s.absent) <= 1
        assert len({c for c, _ in named}) == len(named)  # distinct colours, also the absent one
        if len(drawn) < 3:
            small += 1
            extra += bool(s.absent)
        else:
            assert not s.absent
        # what is drawn is exactly what the detector finds
        assert sorted(d.name for d in T.detect(s.image)) == sorted(f"{c} {sh}" for c, sh in drawn)
    assert 0.22 < extra / small < 0.38
    # the default mix names only what it draws
    assert not any(D.random_scene(rng).absent for _ in range(50))


def test_scenes_render_at_256_px_as_their_32_px_grid():
    """The model's images are the scenes at 8x the grid: averaged over 8x8 blocks they are the 32x32 image
    (up to anti-aliasing at the edges), and the detector finds the same objects in them."""
    rng = np.random.default_rng(8)
    for _ in range(20):
        s = D.random_scene(rng)
        big = D.render_scene(s, 8)
        assert big.shape == (256, 256, 3) and big.dtype == np.float32
        blocks = big.reshape(32, 8, 32, 8, 3).mean((1, 3))
        assert np.abs(blocks - s.image).max() < 0.1 and np.abs(blocks - s.image).mean() < 0.005
        assert sorted(d.name for d in T.detect(big)) == sorted(o.name for o in s.objects)
    with pytest.raises(ValueError, match="multiple of 32"):
        T.detect(np.zeros((100, 100, 3), np.float32))


def test_captions_in_the_papers_style():
    assert D.caption_for(["red circle"]) == "a red circle"
    assert D.caption_for(["red circle", "blue square"]) == "a red circle and a blue square"
    assert D.caption_for(["green star", "yellow ring"], "with") == "a green star with a yellow ring"
    three = D.caption_for(["red circle", "blue square", "white cross"])
    assert three == "a red circle, a blue square and a white cross"
    assert D.objects_in("a green star with a yellow ring") == [("green", "star"), ("yellow", "ring")]


def test_detector_agrees_with_the_ground_truth_on_random_scenes():
    """Every object found with its colour and shape, its pixels and box, and nothing else."""
    rng = np.random.default_rng(2)
    for _ in range(200):
        s = D.random_scene(rng)
        dets = T.detect(s.image)
        assert sorted(d.name for d in dets) == sorted(o.name for o in s.objects), s.caption
        for o, m, cov in zip(s.objects, s.masks, s.coverage):
            (d,) = [d for d in dets if d.colour == o.colour]
            assert d.iou >= T.MIN_IOU and T.correct(dets, o.colour, o.shape)
            # its pixels: every pixel the object covers well, none it covers little
            assert d.mask[cov >= 0.65].all() and not d.mask[cov < 0.35].any()
            assert all(abs(a - b) <= 1 for a, b in zip(d.bbox, _bbox(m)))


@pytest.mark.parametrize("shape", D.SHAPES)
def test_detector_knows_every_shape_at_every_size_and_colour(shape):
    rng = np.random.default_rng(3)
    for size, colour in itertools.product(range(10, 17), D.COLOURS):
        obj = D.ToyObject(colour, shape, int(rng.integers(0, 33 - size)), int(rng.integers(0, 33 - size)), size)
        image, _ = D.render([obj], D.make_background(rng, textured=bool(size % 2)), rng)
        dets = T.detect(image)
        assert [d.name for d in dets] == [obj.name], (size, colour, dets)
        # and the other shapes are not "present"
        assert not any(T.correct(dets, colour, other) for other in D.SHAPES if other != shape)


def test_detector_finds_nothing_in_empty_or_wrong_images():
    rng = np.random.default_rng(4)
    for i in range(40):
        assert T.detect(D.make_background(rng, textured=bool(i % 2))) == []
    # a red circle is not a red square, nor a blue circle
    image, _ = D.render([D.ToyObject("red", "circle", 8, 8, 14)], D.make_background(rng, False))
    dets = T.detect(image)
    assert T.correct(dets, "red", "circle")
    assert not T.correct(dets, "red", "square") and not T.correct(dets, "blue", "circle")
    assert T.drawn(dets, "red") and not T.drawn(dets, "blue")
    # too small a blob is not an object
    tiny, _ = D.render([D.ToyObject("green", "square", 3, 3, 3)], D.make_background(rng, False))
    assert T.detect(tiny) == []


def test_tokenizer_word_table_is_clips_bpe():
    bpe = ToyTokenizer(use_bpe=True)
    table = ToyTokenizer(use_bpe=False)
    for token, clip_id in VOCAB:
        assert bpe.bpe.encoder[token] == clip_id
    rng = np.random.default_rng(5)
    captions = [D.random_scene(rng).caption for _ in range(100)]
    assert bpe.tokenize(captions) == table.tokenize(captions)
    with pytest.raises(ValueError, match="vocabulary"):
        table.tokenize(["a purple dog"])
    # outside the vocabulary, the BPE path still gives CLIP's ids (the model has CLIP's whole vocabulary)
    assert bpe.tokenize(["a dog"]) == [[320, 1929]]


def test_tokenizer_builds_webui_chunks_the_engine_matches():
    from astar_ext.tokens import match_concepts, parse_concepts

    tok = ToyTokenizer()
    (chunk,) = tok.tokenize_line("a red circle and a blue square")
    assert len(chunk) == 77 and chunk[0] == ID_START and chunk[8] == ID_END and set(chunk[8:]) == {ID_END}
    found = match_concepts(parse_concepts("red circle, blue square"), [chunk], tok.tokenize, tok.id_end, tok.decode)
    assert [c.columns for c in found.concepts] == [(2, 3), (6, 7)] and not found.missing
    assert len(tok.ids(["", "a red circle"])[0]) == 77
