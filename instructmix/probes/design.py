"""Which rows each probe trains on: held-out validation rows, the base
mixture D0 of each probe seed, one intervention probe per category (D0 + more of it), and
random Dirichlet mixtures. Pure functions of the categories, the usable rows and the seed.
The rows an intervention probe adds (`extra_rows`) are also the blocks of the order probes
(`instructmix.probes.order`).
"""

from __future__ import annotations

import numpy as np

from instructmix.config import ProbesConfig


def split_validation(cats: np.ndarray, per_category: int, seed: int) -> np.ndarray:
    """Boolean mask of rows held out to score probes: `per_category` random rows per category
    (at most half of a category)."""
    rng = np.random.default_rng([seed, 7])
    mask = np.zeros(len(cats), dtype=bool)
    for c in sorted(set(cats)):
        rows = np.flatnonzero(cats == c)
        mask[rng.permutation(rows)[: min(per_category, len(rows) // 2)]] = True
    return mask


def _permutations(cats, usable, seed: int, s: int) -> dict:
    rng = np.random.default_rng([seed, s])
    return {c: rng.permutation(np.flatnonzero((cats == c) & usable))
            for c in sorted(set(cats[usable]))}


def base_mixture(cats: np.ndarray, usable: np.ndarray, pc: ProbesConfig, seed: int,
                 s: int) -> np.ndarray:
    """D0 of probe seed `s`: the first `base_per_category` rows of every category."""
    perm = _permutations(cats, usable, seed, s)
    return np.concatenate([perm[c][: pc.base_per_category] for c in sorted(perm)])


def extra_rows(cats: np.ndarray, usable: np.ndarray, pc: ProbesConfig, seed: int,
               s: int) -> dict[str, np.ndarray]:
    """Per category, the (up to) `add_per_category` rows its intervention probe of seed `s`
    adds to D0: rows outside D0, so new to a model warm-started on D0."""
    perm = _permutations(cats, usable, seed, s)
    return {c: rows[pc.base_per_category: pc.base_per_category + pc.add_per_category]
            for c, rows in perm.items()}


def plan(cats: np.ndarray, usable: np.ndarray, pc: ProbesConfig,
         seed: int) -> tuple[list[dict], list[str]]:
    """Probe mixtures as row indices. Returns (probes, notes)."""
    names = sorted(set(cats[usable]))
    notes, probes = [], []
    for s in range(pc.seeds if pc.design != "random" else 0):
        extras = extra_rows(cats, usable, pc, seed, s)
        d0 = base_mixture(cats, usable, pc, seed, s)
        probes.append({"name": f"base-s{s}", "probe": "base", "seed": s, "rows": d0})
        for c in names:
            extra = extras[c]
            if len(extra) < pc.add_per_category and s == 0:
                usable_c = int(((cats == c) & usable).sum())
                notes.append(f"category {c!r} has {usable_c} usable rows: its probe adds "
                             f"{len(extra)} instead of {pc.add_per_category}")
            probes.append({"name": f"{c}-s{s}", "probe": c, "seed": s,
                           "rows": np.concatenate([d0, extra])})
    if pc.design != "intervention":
        size = pc.base_per_category * len(names)
        for k in range(pc.random_mixtures):
            rng = np.random.default_rng([seed, 1000 + k])
            total = int(rng.uniform(0.5, 1.5) * size)
            share = rng.dirichlet(np.ones(len(names)))
            rows = []
            for c, n in zip(names, rng.multinomial(total, share), strict=True):
                rows.append(rng.permutation(np.flatnonzero((cats == c) & usable))[:n])
            probes.append({"name": f"random-{k}", "probe": f"random-{k}", "seed": k,
                           "rows": np.concatenate(rows)})
    return probes, notes
