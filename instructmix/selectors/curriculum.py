"""Dependency curriculum in three soft phases (Beyond IID DT-CSFT).

The order is three consecutive phases of (about) equal size (sizes differ by at most one;
earlier phases get the extra items). Each phase draws its items from the pool without
replacement with its own weights:
  - phase 1: `bias` for base-tier items, 1 for the others;
  - phase 2: 1 for every item (uniform);
  - phase 3: `bias` for dependent-tier items, 1 for the others.
The three phases draw *concurrently*: items are visited in a random order and each goes to
phase k with probability ∝ weight_k(tier) × room left in phase k. (Drawing the phases one after
the other does not work: the last phase would just get the leftovers, so its weights would be
void, or phase 2 would be starved of the tier phase 3 drew first.) This gives monotone soft
phases: base share falls and dependent share rises from phase 1 to 3, middle items gather in
phase 2, and every tier can still appear in every phase. Every item appears exactly once;
within a phase the order is a uniform shuffle. Categories missing from `tiers` count as
"middle". bias = 1 gives a uniform shuffle. Deterministic by `seed`. The trainer must keep
this order (no reshuffle across phases).
"""

from __future__ import annotations

import numpy as np

TIERS = ("base", "middle", "dependent")


def _phase_sizes(n: int, phases: int = 3) -> list[int]:
    return [n // phases + (k < n % phases) for k in range(phases)]


def _tiers_of(categories_of_items: list[str], tiers: dict[str, str]) -> np.ndarray:
    unknown = sorted({t for t in tiers.values() if t not in TIERS})
    if unknown:
        raise ValueError(f"unknown tiers {unknown}; expected one of {TIERS}")
    return np.array([tiers.get(c, "middle") for c in categories_of_items], dtype=object)


def dependency_curriculum(categories_of_items: list[str], tiers: dict[str, str],
                          bias: float = 3.0, seed: int = 0) -> list[int]:
    """Permutation of item indices: base-biased phase, uniform phase, dependent-biased phase."""
    if not bias > 0:
        raise ValueError(f"bias must be > 0, got {bias}")
    tier = _tiers_of(categories_of_items, tiers)
    n = len(tier)
    weights = {"base": (bias, 1.0, 1.0), "middle": (1.0, 1.0, 1.0),
               "dependent": (1.0, 1.0, bias)}
    rng = np.random.default_rng(seed)
    room = _phase_sizes(n)
    phase = np.empty(n, dtype=int)
    for i, u in zip(rng.permutation(n).tolist(), rng.random(n).tolist(), strict=True):
        w0, w1, w2 = weights[tier[i]]
        m0, m1 = w0 * room[0], w1 * room[1]  # a full phase has zero mass
        v = u * (m0 + m1 + w2 * room[2])
        k = 0 if v < m0 else 1 if v < m0 + m1 else 2
        room[k] -= 1
        phase[i] = k
    order = [rng.permutation(np.flatnonzero(phase == k)) for k in range(3)]
    return [int(i) for i in np.concatenate(order)]


def whole_run(categories_of_items: list[str], tiers: dict[str, str], bias: float,
              seed: int, epochs: int) -> list[int]:
    """The curriculum over a whole run of `epochs` passes: the passes' items laid out as one
    stream (every item `epochs` times) and ordered in three phases over all of it, so phase
    1 is the start of training, not of every epoch. Indices into `categories_of_items`."""
    n = len(categories_of_items)
    order = dependency_curriculum(list(categories_of_items) * epochs, tiers, bias, seed)
    return [i % n for i in order]


def shuffled(n: int, seed: int = 0) -> list[int]:
    """Uniform random order of n items (the `none` curriculum ablation)."""
    return [int(i) for i in np.random.default_rng(seed).permutation(n)]


def phase_shares(order: list[int], categories_of_items: list[str], tiers: dict[str, str],
                 phases: int = 3) -> list[dict]:
    """Per phase (same split as the curriculum): item count and share of each tier."""
    tier = _tiers_of(categories_of_items, tiers)[np.asarray(order, dtype=int)]
    out, start = [], 0
    for k, size in enumerate(_phase_sizes(len(tier), phases)):
        part = tier[start:start + size]
        start += size
        shares = {t: float(np.mean(part == t)) if size else float("nan") for t in TIERS}
        out.append({"phase": k + 1, "n": size, **shares})
    return out
