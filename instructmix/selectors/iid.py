"""IID baseline: a uniform random sample of the pool at a budget in items or tokens."""

from __future__ import annotations

import numpy as np


def iid_order(n_tokens: np.ndarray, budget: int, unit: str, seed: int) -> np.ndarray:
    """Indices of a uniform random sample that fits the budget, in training order."""
    perm = np.random.default_rng(seed).permutation(len(n_tokens))
    if unit == "items":
        return perm[:budget]
    fits = np.cumsum(n_tokens[perm]) <= budget
    return perm[fits]
