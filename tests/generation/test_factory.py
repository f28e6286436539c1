"""make_generator builds the generator a config names, cached under the caller's folder."""

from __future__ import annotations

import pytest

from instructmix.config import GeneratorConfig
from instructmix.generation.cache import CachedGenerator
from instructmix.generation.factory import make_generator
from instructmix.generation.http_client import OpenAIChatGenerator
from instructmix.generation.local import HFGenerator


def test_make_generator(model_dir, tmp_path, monkeypatch):
    http = GeneratorConfig(backend="http", base_url="http://127.0.0.1:1/v1", model="m")
    gen = make_generator(http, None, tmp_path)
    assert isinstance(gen, CachedGenerator) and isinstance(gen.inner, OpenAIChatGenerator)
    assert gen.path == tmp_path / "generations" and (gen.path / "cache.db").is_file()
    assert isinstance(make_generator(http, None, None), OpenAIChatGenerator)
    uncached = GeneratorConfig(backend="http", base_url="http://127.0.0.1:1/v1", cache=False)
    assert isinstance(make_generator(uncached, None, tmp_path), OpenAIChatGenerator)
    hf = make_generator(GeneratorConfig(backend="hf", cache=False), model_dir, tmp_path)
    assert isinstance(hf, HFGenerator) and hf.model_path == model_dir
    with pytest.raises(ValueError, match="backend"):
        make_generator(GeneratorConfig(backend="rules"), model_dir, None)
    with pytest.raises(ValueError, match="base_url"):
        make_generator(GeneratorConfig(backend="http"), None, None)
    with pytest.raises(ValueError, match="model_path"):
        make_generator(GeneratorConfig(backend="hf"), None, None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="model path not found"):
        make_generator(GeneratorConfig(backend="hf", model_path=str(tmp_path / "no")), None,
                       None)


def test_http_generator_reads_its_config_fields():
    cfg = GeneratorConfig(backend="http", base_url="http://h:1/v1/", model="m",
                          api_key_env="K", timeout_s=3.0, max_retries=7, backoff_s=0.25,
                          concurrency=5, cache=False)
    gen = make_generator(cfg, None, None)
    assert (gen.url, gen.model, gen.api_key_env) == ("http://h:1/v1/chat/completions", "m", "K")
    assert (gen.timeout_s, gen.max_retries, gen.backoff_s, gen.concurrency) == (3.0, 7, 0.25, 5)
