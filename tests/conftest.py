"""Shared fixtures: the real CLIP BPE vocabulary and a tiny model built from the real ldm UNet."""

from __future__ import annotations

import warnings

import pytest

warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


@pytest.fixture(scope="session")
def clip_wrapper():
    from tests.standin.prompt import StandinClipWrapper

    return StandinClipWrapper()


@pytest.fixture(scope="session")
def tokenize(clip_wrapper):
    return clip_wrapper.tokenize
