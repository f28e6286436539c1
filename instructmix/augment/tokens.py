"""Token-matched subsets: augmented data is longer, so compare methods at equal TOKENS
(Tree-Instruct: at equal token budget a few complex items can beat many simple ones).

`token_match` picks a seeded random subset whose token total is as close as possible to
`target_tokens` without exceeding it: walk the items in a shuffled order and take each one
that still fits. Afterwards every item left out has more tokens than the remaining gap,
so the total is within one item of the target.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def _sizes(items: Sequence, n_tokens) -> list[int]:
    sizes = [n_tokens(x) for x in items] if callable(n_tokens) else [int(n) for n in n_tokens]
    if len(sizes) != len(items):
        raise ValueError(f"token_match: {len(sizes)} token counts for {len(items)} items")
    if any(n < 0 for n in sizes):
        raise ValueError("token_match: token counts must be >= 0")
    return sizes


def token_match(items: Sequence, n_tokens, target_tokens: int, seed: int) -> list[int]:
    """Indices (ascending) of the chosen items. `n_tokens`: a token count per item, or a
    function item -> tokens. The chosen total is <= `target_tokens`."""
    sizes = _sizes(items, n_tokens)
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    chosen, total = [], 0
    for k in order:
        if total + sizes[k] <= target_tokens:
            chosen.append(k)
            total += sizes[k]
    return sorted(chosen)


def subset_size(items: Sequence, n_tokens, indices: Sequence[int]) -> tuple[int, int]:
    """(number of items, total tokens) of the subset `indices`."""
    sizes = _sizes(items, n_tokens)
    return len(indices), sum(sizes[k] for k in indices)
