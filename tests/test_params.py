"""The params table: parsing (list, dict, infotext), validation messages, exact round trips."""

from __future__ import annotations

import dataclasses
import random

import pytest

from astar_ext import params as P


def test_table_order_is_the_public_positional_order():
    assert [f.name for f in P.FIELDS] == [
        "enabled", "concepts", "scale", "window", "seg_weight", "ret_weight", "iterations",
        "mask_threshold", "hires", "heatmaps", "layout", "layout_weight",
    ]
    assert all(f.infotext.startswith(P.INFOTEXT_PREFIX) for f in P.FIELDS)
    assert len({f.infotext for f in P.FIELDS}) == len(P.FIELDS)
    assert P.DEFAULTS.enabled is False


def test_defaults_are_inside_their_ranges():
    for f in P.FIELDS:
        if f.minimum is not None:
            assert f.minimum <= f.default <= f.maximum, f.name


def test_positional_list_full_and_short():
    p = P.from_args([True, "cat, dog", 10.0, 0.4, 1.5, 0.5, 2, 0.6, True])
    assert (p.enabled, p.concepts, p.scale, p.window, p.seg_weight, p.ret_weight, p.iterations,
            p.mask_threshold, p.hires) == (True, "cat, dog", 10.0, 0.4, 1.5, 0.5, 2, 0.6, True)
    short = P.from_args([True, "cat, dog"])
    assert short.scale == P.DEFAULTS.scale and short.hires is False


def test_positional_list_too_long_is_an_error():
    with pytest.raises(P.ParamError, match="at most 12"):
        P.from_args([True, "cat"] + [1] * 11)


def test_gradio_floats_for_int_fields_are_accepted():
    assert P.from_args([True, "cat", 20, 0.5, 1, 1, 3.0]).iterations == 3


def test_a_dict_means_enabled_unless_it_says_otherwise():
    assert P.from_dict({"concepts": "cat"}).enabled is True
    assert P.from_dict({"enabled": False, "concepts": "cat"}).enabled is False
    base = P.replace(P.DEFAULTS, scale=7.0)
    assert P.from_dict({}, base).scale == 7.0


def test_dict_first_slot_wins_over_ui_defaults_after_it():
    p = P.from_args([{"enabled": True, "concepts": ["cat", "red car", 5]}, False, "x", 1.0])
    assert p.enabled and p.concepts == "cat, red car, #5"
    assert p.scale == P.DEFAULTS.scale


@pytest.mark.parametrize(
    "data, field, text",
    [
        ({"enable": True}, "enable", "did you mean 'enabled'"),
        ({"scale": "big"}, "scale", "expected a number"),
        ({"scale": 500}, "scale", "between 0 and 100"),
        ({"iterations": 1.5}, "iterations", "whole number"),
        ({"enabled": "yes"}, "enabled", "true or false"),
        ({"concepts": 5}, "concepts", "expected text"),
        ({"concepts": ["cat", 1.5]}, "concepts", "integer token position"),
        ({"concepts": ["a, b"]}, "concepts", "without commas"),
        ({"concepts": [-1]}, "concepts", ">= 0"),
        ({"window": float("nan")}, "window", "finite"),
        ({"hires": 1}, "hires", "true or false"),
    ],
)
def test_bad_dict_values_name_the_field(data, field, text):
    with pytest.raises(P.ParamError, match=text) as err:
        P.from_dict(data)
    assert err.value.field == field
    assert field in str(err.value)


def _random_params(rng: random.Random):
    values = {}
    for f in P.FIELDS:
        if f.type is bool:
            values[f.name] = rng.random() < 0.5
        elif f.name == "layout":
            values[f.name] = "" if "cat" not in values["concepts"] else rng.choice(
                ["", "cat 0.10 0.20 0.50 0.90", "cat 0.00 0.00 1.00 1.00", "cat 0.125 0.3333 0.50 0.75"])
        elif f.type is str:
            values[f.name] = rng.choice(["", "cat", "cat, dog", "red car, #5, dog", "über: x"])
        elif f.type is int:
            values[f.name] = rng.randint(int(f.minimum), int(f.maximum))
        else:
            values[f.name] = rng.uniform(f.minimum, f.maximum)
    return P.AStarParams(**values)


def test_round_trips_are_exact():
    rng = random.Random(1234)
    for _ in range(200):
        p = _random_params(rng)
        assert P.from_dict(P.to_dict(p)) == p
        assert P.from_args(P.to_args(p)) == p
        line = P.format_infotext_pairs(P.to_infotext(p))
        parsed = P.parse_infotext_pairs("Steps: 20, Sampler: Euler, " + line + ", Version: v1.10.1")
        assert P.from_infotext(parsed) == p


def test_infotext_quotes_values_with_commas_and_colons():
    p = P.AStarParams(enabled=True, concepts="cat, dog")
    line = P.format_infotext_pairs(P.to_infotext(p))
    assert 'A-STAR concepts: "cat, dog"' in line
    assert "A-STAR enabled: True" in line


def test_infotext_without_astar_keys_gives_defaults():
    parsed = P.parse_infotext_pairs("Steps: 20, Sampler: Euler a, CFG scale: 7")
    assert not P.has_infotext(parsed)
    assert P.from_infotext(parsed) == P.DEFAULTS


def test_infotext_bad_value_names_the_field():
    with pytest.raises(P.ParamError) as err:
        P.from_infotext({"A-STAR scale": "lots"})
    assert err.value.field == "scale"


def test_replace_validates():
    p = P.replace(P.DEFAULTS, scale="30", enabled="True")
    assert p.scale == 30.0 and p.enabled is True
    with pytest.raises(P.ParamError):
        P.replace(P.DEFAULTS, window=2.0)


def test_params_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        P.DEFAULTS.scale = 3.0  # type: ignore[misc]
