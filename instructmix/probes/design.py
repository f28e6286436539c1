"""Which rows each probe trains on: held-out validation rows, the base
mixture D0 of each probe seed, one intervention probe per category (D0 + more of it), and
random Dirichlet mixtures. Pure functions of the categories, the usable rows and the seed.
The rows an intervention probe adds (`extra_rows`) are also the blocks of the order probes
(`instructmix.probes.order`).
"""

from __future__ import annotations

import numpy as np

from instructmix.config import ProbesConfig


def largest_remainder(shares: np.ndarray, total: int, cap: np.ndarray) -> np.ndarray:
    """Integer counts ~ shares * total, summing to min(total, cap.sum()), each <= cap."""
    shares = np.asarray(shares, dtype=float)
    total = int(min(total, cap.sum()))
    counts = np.zeros(len(shares), dtype=int)
    left = total
    while left > 0:
        room = cap - counts
        w = np.where(room > 0, shares, 0.0)
        if w.sum() <= 0:
            w = (room > 0).astype(float)
        want = w / w.sum() * left
        add = np.minimum(np.floor(want).astype(int), room)
        if add.sum() == 0:  # hand out single items by largest remainder
            k = np.argmax(np.where(room > 0, want - np.floor(want) + 1e-9 * w, -1))
            add[k] = 1
        counts += add
        left -= int(add.sum())
    return counts


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
                 s: int, centre: dict[str, int] | None = None) -> np.ndarray:
    """D0 of probe seed `s`: the first `base_per_category` rows of every category (or
    `centre[c]` rows of c: a later round's base, around the current mixture)."""
    perm = _permutations(cats, usable, seed, s)
    size = centre or dict.fromkeys(perm, pc.base_per_category)
    return np.concatenate([perm[c][: size.get(c, 0)] for c in sorted(perm)])


def extra_rows(cats: np.ndarray, usable: np.ndarray, pc: ProbesConfig, seed: int,
               s: int, centre: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Per category, the (up to) `add_per_category` rows its intervention probe of seed `s`
    adds to D0: rows outside D0 and outside the first round's D0 (the warm start's rows), so
    new to a model warm-started on it."""
    perm = _permutations(cats, usable, seed, s)
    start = {c: max(pc.base_per_category, (centre or {}).get(c, 0)) for c in perm}
    return {c: rows[start[c]: start[c] + pc.add_per_category] for c, rows in perm.items()}


def centre_counts(names: list[str], mixture: np.ndarray, available: np.ndarray,
                  pc: ProbesConfig) -> dict[str, int]:
    """A round's base mixture: the shares of `mixture` (items per category of `names`) at
    D0's size (base_per_category x categories items), each category capped so its
    intervention still has rows to add."""
    cap = np.maximum(np.asarray(available) - pc.add_per_category, 0)
    shares = np.asarray(mixture, dtype=float) / np.sum(mixture)
    counts = largest_remainder(shares, pc.base_per_category * len(names), cap)
    return {c: int(n) for c, n in zip(names, counts, strict=True)}


def plan(cats: np.ndarray, usable: np.ndarray, pc: ProbesConfig, seed: int,
         centre: dict[str, int] | None = None, prefix: str = "") -> tuple[list[dict], list[str]]:
    """Probe mixtures as row indices; with `centre` (a later round) only the intervention
    probes around it, their names prefixed. Returns (probes, notes)."""
    names = sorted(set(cats[usable]))
    notes, probes = [], []
    for s in range(pc.seeds if pc.design != "random" else 0):
        extras = extra_rows(cats, usable, pc, seed, s, centre)
        d0 = base_mixture(cats, usable, pc, seed, s, centre)
        probes.append({"name": f"{prefix}base-s{s}", "probe": "base", "seed": s, "rows": d0})
        for c in names:
            extra = extras[c]
            if len(extra) < pc.add_per_category and s == 0:
                usable_c = int(((cats == c) & usable).sum())
                notes.append(f"category {c!r} has {usable_c} usable rows: its probe adds "
                             f"{len(extra)} instead of {pc.add_per_category}")
            probes.append({"name": f"{prefix}{c}-s{s}", "probe": c, "seed": s,
                           "rows": np.concatenate([d0, extra])})
    if pc.design != "intervention" and centre is None:
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
