"""`make_generator`: the text generator a `GeneratorConfig` names (a local HF model or an
OpenAI-compatible endpoint), behind the on-disk completion cache when the config asks."""

from __future__ import annotations

import os
from pathlib import Path

from instructmix.config import GeneratorConfig
from instructmix.generation.base import Generator
from instructmix.runtime import offline

#: Folder of the completion cache inside the caller's cache directory.
CACHE_NAME = "generations"


def make_generator(cfg: GeneratorConfig, default_model_path: str | None,
                   cache_dir: Path | None, section: str = "augment.generator") -> Generator:
    """The generator `cfg` names (backend hf or http), cached in cache_dir/generations/ when
    cfg.cache and cache_dir is given; `section` is the config path used in error messages."""
    if cfg.backend == "hf":
        from instructmix.generation.local import HFGenerator

        path = cfg.model_path or default_model_path
        if not path:
            raise ValueError(f"{section}.model_path: backend 'hf' needs a model path")
        if not os.path.exists(path) and offline():
            raise FileNotFoundError(f"{section}.model_path: model path not found: {path} "
                                    "(HF_HUB_OFFLINE=1: only local paths work)")
        gen: Generator = HFGenerator(path, cfg.batch_size, cfg.actors)
    elif cfg.backend == "http":
        from instructmix.generation.http_client import OpenAIChatGenerator

        if not cfg.base_url:
            raise ValueError(f"{section}.base_url: backend 'http' needs an endpoint URL, "
                             "e.g. http://127.0.0.1:8000/v1")
        gen = OpenAIChatGenerator.from_config(cfg)
    else:
        raise ValueError(f"{section}.backend: {cfg.backend!r} has no text generator; "
                         "use 'hf' or 'http'")
    if cfg.cache and cache_dir is not None:
        from instructmix.generation.cache import CachedGenerator

        gen = CachedGenerator(gen, Path(cache_dir) / CACHE_NAME)
    return gen
