"""An on-disk completion cache (diskcache) in front of any generator: a re-run of a stage
sends only the prompts it has not answered before."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict
from pathlib import Path

import diskcache

from instructmix.generation.base import Generator, GenParams, Reject


class CachedGenerator:
    """A diskcache directory at `path` in front of `inner`, keyed by sha256 of (generator
    identity, messages, every GenParams field). Only uncached prompts reach `inner` (each
    distinct one once); Rejects are not stored, so a re-run retries them. Nothing is ever
    evicted. diskcache is thread- and process-safe: several workers may share `path`.
    Counters: `cache_hits` (prompts answered from disk), `calls` (prompts sent to inner)."""

    def __init__(self, inner: Generator, path: str | Path):
        self.inner, self.path = inner, Path(path)
        self.name = inner.name
        self.identity = getattr(inner, "identity", inner.name)
        self.cache_hits = self.calls = 0
        self._lock = threading.Lock()
        self.store = diskcache.Cache(str(self.path), eviction_policy="none", timeout=60)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def key(self, messages: list[dict], params: GenParams) -> str:
        # Every field: a text kept with reject_truncated=False may be truncated, so it must
        # not answer a call that rejects truncation. Temperature 0 and 0.0 are one key.
        fields = {**asdict(params), "temperature": float(params.temperature)}
        blob = json.dumps([self.identity, messages, fields], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def complete(self, prompts: list[list[dict]], params: GenParams) -> list[str | Reject]:
        keys = [self.key(m, params) for m in prompts]
        found: dict[str, str | Reject] = {}
        for k in dict.fromkeys(keys):
            text = self.store.get(k)
            if isinstance(text, str):
                found[k] = text
        todo = [k for k in dict.fromkeys(keys) if k not in found]
        with self._lock:
            self.cache_hits += sum(k in found for k in keys)
            self.calls += len(todo)
        if todo:
            messages = dict(zip(keys, prompts, strict=True))
            fresh = dict(zip(todo, self.inner.complete([messages[k] for k in todo], params),
                             strict=True))
            with self.store.transact():
                for k, v in fresh.items():
                    if isinstance(v, str):
                        self.store.set(k, v)
            found.update(fresh)
        return [found[k] for k in keys]

    def close(self) -> None:
        self.store.close()
