"""IFD top-k (instruction-following difficulty, Li et al. 2023): score every row with the
start model as IFD = exp(loss(response | instruction) − loss(response alone)), the ratio of
the response perplexities with and without the instruction. A high IFD means the instruction
helps the model little (a hard row); IFD ≥ 1 means it does not help at all, which the method
treats as a misaligned row. Rows are ranked by IFD, highest first among IFD < 1, then the
rows with IFD ≥ 1; the budget takes the top of that ranking.
"""

from __future__ import annotations

import numpy as np

from instructmix.training.collate import as_messages, load_tokenizer


def ifd_scores(model_path: str, messages: list, max_len: int, batch_size: int = 32
               ) -> np.ndarray:
    """IFD of every row under the model in `model_path` (one process, fp32)."""
    import torch
    from transformers import AutoModelForCausalLM

    from instructmix.training.response import response_scores

    tok = load_tokenizer(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    rows = [as_messages(m) for m in messages]
    bare = [[{"role": "user", "content": ""}, m[-1]] for m in rows]
    out = np.empty(len(rows))
    for start in range(0, len(rows), batch_size):
        part = slice(start, start + batch_size)
        with_instruction, _ = response_scores(model, tok, rows[part], max_len)
        alone, _ = response_scores(model, tok, bare[part], max_len)
        out[part] = np.exp(np.asarray(with_instruction) - np.asarray(alone))
    return out


def ifd_ranking(ifd: np.ndarray) -> np.ndarray:
    """Row positions, best first: IFD < 1 by decreasing IFD, then IFD >= 1 (ties by
    position)."""
    aligned = ifd < 1
    return np.lexsort((np.arange(len(ifd)), -ifd, ~aligned))
