"""Fixtures of the generation tests: a tiny real HF model folder."""

from __future__ import annotations

import pytest

from tests.fixtures.tiny_lm import build_tiny_lm


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> str:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"), chat_template=False)
