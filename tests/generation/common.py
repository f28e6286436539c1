"""Prompts, parameters and a client factory shared by the generation tests."""

from __future__ import annotations

from instructmix.generation.base import GenParams
from instructmix.generation.http_client import OpenAIChatGenerator

# The untrained tiny model rarely ends with eos: its 8-token completions are cut at the
# limit, so the plumbing tests keep them (truncation has its own tests).
PARAMS = GenParams(max_new_tokens=8, temperature=0.0, reject_truncated=False)
# Six prompts whose last characters differ: the tiny model's greedy outputs differ too, so
# a wrong order would show.
PROMPTS = [[{"role": "user", "content": "Say " + "abcdef"[i] * (i + 1) + "qrstuv"[i]}]
           for i in range(6)]


def client(server_or_url, **kwargs) -> OpenAIChatGenerator:
    """A client of a test chat server (or URL): short timeout, tiny backoff, no retries."""
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.base_url
    kwargs = {"timeout_s": 10.0, "backoff_s": 0.01, "max_retries": 0, **kwargs}
    return OpenAIChatGenerator(url, model="tiny", api_key_env=None, **kwargs)
