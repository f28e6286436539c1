"""A local HF causal LM as a generator: `LocalLM` (one process), `GenerateBatch` (a Ray Data
actor) and `HFGenerator` (an actor pool answering a list of prompts).

torch/transformers/ray are imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from instructmix import storage
from instructmix.generation.base import TRUNCATED, GenParams, Reject


def chat_prompt(tok, messages: list[dict]) -> tuple[str, bool]:
    """The prompt string and whether the tokenizer must add its own special tokens: the chat
    template with a generation prompt, else the contents joined by blank lines."""
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), False
    return "\n\n".join(str(m.get("content", "")) for m in messages), True


class LocalLM:
    """A causal LM and its tokenizer, loaded once per process (or Ray actor); `threads` is
    torch's intra-op thread count (1 per actor on a shared machine)."""

    def __init__(self, path: str, threads: int = 1):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from instructmix.training.model_factory import context_length

        torch.set_num_threads(threads)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(path)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.context = context_length(self.model.config)

    def generate(self, prompts: list[list[dict]], max_new_tokens: int,
                 temperature: float) -> list[dict | Reject]:
        """One result per prompt: {text, finish_reason ('stop': ended with eos, 'length': hit
        the token limit), prompt_tokens, completion_tokens}, or a Reject when the prompt alone
        fills the context. All prompts run as one left-padded batch, so max_new_tokens is
        capped to what the longest prompt leaves of the context."""
        out: list[dict | Reject] = [None] * len(prompts)  # type: ignore[list-item]
        ids = []
        for k, msgs in enumerate(prompts):
            text, specials = chat_prompt(self.tok, msgs)
            row = self.tok(text, add_special_tokens=specials)["input_ids"]
            if self.context and len(row) >= self.context:
                out[k] = Reject(f"prompt of {len(row)} tokens does not fit the model's "
                                f"context of {self.context}")
            else:
                ids.append((k, row))
        if not ids:
            return out
        longest = max(len(r) for _, r in ids)
        budget = min(max_new_tokens, self.context - longest) if self.context else max_new_tokens
        enc = self.tok.pad({"input_ids": [r for _, r in ids]}, return_tensors="pt")
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {
            "do_sample": False}
        with self.torch.inference_mode():
            gen = self.model.generate(**enc, max_new_tokens=budget,
                                      pad_token_id=self.tok.pad_token_id,
                                      eos_token_id=self.tok.eos_token_id, **sampling)
        new = gen[:, enc["input_ids"].shape[1]:]
        for (k, row), tokens in zip(ids, new.tolist(), strict=True):
            eos = self.tok.eos_token_id
            stop = eos in tokens
            tokens = tokens[: tokens.index(eos)] if stop else tokens
            tokens = [t for t in tokens if t != self.tok.pad_token_id]
            out[k] = {"text": self.tok.decode(tokens, skip_special_tokens=True),
                      "finish_reason": "stop" if stop else "length",
                      "prompt_tokens": len(row), "completion_tokens": len(tokens)}
        return out


def as_completion(result: dict | Reject, reject_truncated: bool = True) -> str | Reject:
    """A generated text, or Reject('empty completion') when it is empty or whitespace, or
    Reject(TRUNCATED) when it was cut at the token limit and `reject_truncated`."""
    if isinstance(result, Reject):
        return result
    if not result["text"].strip():
        return Reject("empty completion", result["text"])
    if reject_truncated and result.get("finish_reason") == "length":
        return Reject(TRUNCATED, result["text"])
    return result["text"]


class GenerateBatch:
    """Ray Data callable class: {index, messages (JSON)} -> {index, text, error}; error is ''
    when `text` is a completion, else the Reject reason (and `text` its raw output)."""

    def __init__(self, model_path: str, max_new_tokens: int, temperature: float,
                 reject_truncated: bool = True):
        self.lm = LocalLM(storage.on_this_node(model_path), threads=1)
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.reject_truncated = reject_truncated

    def __call__(self, batch: dict) -> dict:
        prompts = [json.loads(m) for m in batch["messages"]]
        try:
            results = [as_completion(r, self.reject_truncated) for r in
                       self.lm.generate(prompts, self.max_new_tokens, self.temperature)]
        except Exception as e:  # noqa: BLE001 - a failed batch becomes Rejects, not a crash
            results = [Reject(f"hf: {type(e).__name__}: {e}")] * len(prompts)
        texts = [r.raw if isinstance(r, Reject) else r for r in results]
        errors = [r.reason if isinstance(r, Reject) else "" for r in results]
        return {"index": batch["index"], "text": texts, "error": errors}


def _fingerprint(path: str) -> str:
    """Names, sizes and mtimes of a local model folder: a rebuilt model misses the cache."""
    p = Path(path)
    if not p.is_dir():
        return path
    stat = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir()
                  if f.is_file())
    return hashlib.sha256(json.dumps(stat).encode()).hexdigest()[:16]


class HFGenerator:
    """A local HF causal LM run as a Ray Data actor pool of `actors` (None: one per cluster
    CPU) actors, each taking 0.5 CPU and generating `batch_size` prompts per generate();
    prompts are batched in order of length (results come back in the caller's order)."""

    def __init__(self, model_path: str, batch_size: int = 8, actors: int | None = None):
        self.model_path, self.batch_size, self.actors = model_path, batch_size, actors
        self.name = f"hf:{model_path}"
        self.identity = f"{self.name}@{_fingerprint(model_path)}"
        self.calls = 0  # prompts sent to the model

    def complete(self, prompts: list[list[dict]], params: GenParams) -> list[str | Reject]:
        import ray.data

        from instructmix.cluster import cluster_cpus, ensure_ray

        if not prompts:
            return []
        ensure_ray()  # no-op when the pipeline already joined a cluster
        self.calls += len(prompts)
        # shortest first: a batch pads to its longest prompt, so similar lengths batch best
        items = sorted(({"index": k, "messages": json.dumps(m)} for k, m in enumerate(prompts)),
                       key=lambda item: len(item["messages"]))
        actors = min(self.actors or cluster_cpus(), -(-len(items) // self.batch_size))
        ds = ray.data.from_items(items, override_num_blocks=-(-len(items) // self.batch_size))
        ds = ds.map_batches(
            GenerateBatch, batch_size=self.batch_size, batch_format="numpy",
            fn_constructor_kwargs={"model_path": storage.portable(self.model_path),
                                   "max_new_tokens": params.max_new_tokens,
                                   "temperature": params.temperature,
                                   "reject_truncated": params.reject_truncated},
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=0.5)
        out: list[str | Reject | None] = [None] * len(prompts)
        for row in ds.take_all():
            text, error = str(row["text"]), str(row["error"])
            out[int(row["index"])] = Reject(error, text) if error else text
        missing = [k for k, r in enumerate(out) if r is None]
        if missing:
            raise RuntimeError(f"hf generator: no result for prompts {missing[:5]}")
        return out  # type: ignore[return-value]
