"""Order probes for the dependency DAG (Beyond IID §1.4): does training on j's items
*before* i's items help i more than training on other items before them?

Why: the asymmetry of Γ (`dependencies.infer_dag`) cannot see a prerequisite j → i whose
composite i teaches its part j back (γ_ji is then as large as γ_ij). An order probe asks
the curriculum's own question: is i learnt better from the same items when j came first?

Design, matched items and steps. For probe seed s and a candidate pair j → i, two probes
start from the same model (seed s's warm start, like the intervention probes):
- first-j: [j block, i block]
- alone:   [filler block, i block]
Each is one ordered stream trained for one epoch (no reshuffle). A block is laid out
`probes.epochs` times, reshuffled per pass, so its rows get as many passes as the rows of an
intervention probe. The j block is the `add_per_category` rows that j's intervention probe
adds to D0 (outside D0, so new to the warm model); the i block likewise, with the same rows
in the same order in both arms, always last. The filler has as many rows as the j block,
spread evenly (D0-style) over every category except i: the alone arm sees exactly as many
i rows as first-j, and both arms have the same rows, steps and learning rate at every
position. The filler holds a few rows of j (one category among C − 1): it is a neutral
mix, so an edge says "j first helps i more than an average mix first". The alone probe
depends only on (i, block size, seed): pairs with the same i share it.

Score: s_i on i's validation rows (`probes.score`, higher is better). Effect per seed d_s =
s_i(first-j) − s_i(alone); its mean over seeds with a Student-t interval over seeds (not Γ's
bootstrap: see `interval`). Effect in γ units: mean d / the typical own effect, the median
over categories of Δ_cc > 0 (what `add_per_category` more items of c did for c in the
intervention probes): "a j block first is worth this share of what a block of its own items
typically does for an ability". The scale is common to all pairs, not i's own Δ_ii: dividing
by Δ_ii blows up the effects on abilities that barely learn (a noise category), as
`min_self_effect` guards Γ.

Edge j → i when (1) the interval excludes 0 (lo > 0; one seed: no interval, the condition is
skipped with a note) and (2) the effect in γ units is ≥ `probes.dag_threshold`. Weight = the
effect in γ units; cycles (e.g. both directions of a pair pass) are broken at their weakest
edge as in `dependencies.dag_from_edges`.

Pre-filter: only pairs {i, j} with a finite γ_ij > 0 or γ_ji > 0 from the intervention probes
(which ran first) are order-probed, both directions (j then i, and i then j): which way a
pair goes is what the probes decide, and a prerequisite can even show γ < 0 in a mixture
(its items interfere when mixed) while helping when it comes first. Pairs rank by their
largest raw Δ; at most `probes.max_order_pairs` directed pairs.
"""

from __future__ import annotations

import numpy as np

from instructmix.config import ProbesConfig
from instructmix.probes.design import extra_rows


def candidates(gamma, delta, categories: list[str], cap: int) -> tuple[list[dict], list[str]]:
    """Candidate pairs and the directed pairs to order-probe. A pair {i, j} is a candidate
    when γ_ij > 0 or γ_ji > 0 (finite; row i = ability, column j = trained); both of its
    directions are probed. Pairs rank by their largest raw effect Δ among those directions
    (score units: γ divides by Δ_ii and would rank the rows of barely learnt abilities
    first), ties by names; pairs are taken while their directions fit in `cap`.
    Returns (directed pairs {base, dependent, gamma, delta}, notes)."""
    g, d = np.asarray(gamma, dtype=float), np.asarray(delta, dtype=float)
    cats = list(categories)
    pos = {(i, j) for i in range(len(cats)) for j in range(len(cats))
           if i != j and np.isfinite(g[i, j]) and g[i, j] > 0}
    pairs = sorted({tuple(sorted(k)) for k in pos},
                   key=lambda k: (-max(d[i, j] for i, j in (k, k[::-1]) if (i, j) in pos),
                                  cats[k[0]], cats[k[1]]))
    notes = [f"{len(pos)} of {len(cats) * (len(cats) - 1)} directed pairs have γ_ij > 0: "
             f"{len(pairs)} candidate pairs, both directions order-probed"]
    keep = pairs[: cap // 2]
    if len(keep) < len(pairs):
        notes.append(f"probes.max_order_pairs = {cap}: order-probed the {len(keep)} pairs with "
                     f"the largest Δ, dropped {[(cats[i], cats[j]) for i, j in pairs[len(keep):]]}")
    out = [{"base": cats[j], "dependent": cats[i], "gamma": float(g[i, j]),
            "delta": float(d[i, j])} for k in keep
           for i, j in sorted((k, k[::-1]), key=lambda ij: -d[ij])]  # larger Δ first
    return out, notes


def _passes(rows: np.ndarray, passes: int, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.permutation(rows) for _ in range(passes)]).astype(int)


def _filler(fresh: dict[str, np.ndarray], skip: str, n: int,
            rng: np.random.Generator) -> np.ndarray:
    """n rows spread evenly over every category but `skip` (one more row for a random few)."""
    others = [c for c in sorted(fresh) if c != skip and len(fresh[c])]
    if not others:
        return np.zeros(0, dtype=int)
    q, r = divmod(n, len(others))
    extra = set(rng.choice(len(others), r, replace=False).tolist()) if r else set()
    take = [fresh[c][: q + (k in extra)] for k, c in enumerate(others)]
    rows = np.concatenate(take).astype(int)
    return rows if len(rows) == n else rows[:n]  # a category with too few rows: shorter


def alone_name(i: str, n: int, s: int) -> str:
    return f"order-alone-{i}-n{n}-s{s}"


def first_name(j: str, i: str, s: int) -> str:
    return f"order-{j}-then-{i}-s{s}"


def plan_order(cats: np.ndarray, usable: np.ndarray, pc: ProbesConfig, seed: int,
               pairs: list[dict]) -> tuple[list[dict], list[str]]:
    """The order probes of `pairs` for every probe seed, as ordered row indices (train them
    for one epoch, unshuffled). Each probe: name, role ("first" | "alone"), base (None for
    alone), dependent, seed, block (rows of the first block), rows. Returns (probes, notes)."""
    probes, notes = [], []
    for s in range(pc.seeds):
        fresh = extra_rows(cats, usable, pc, seed, s)
        alone: dict[tuple[str, int], dict] = {}
        for p in pairs:
            j, i = p["base"], p["dependent"]
            bj, bi = fresh.get(j, np.zeros(0, int)), fresh.get(i, np.zeros(0, int))
            if not len(bj) or not len(bi):
                if s == 0:
                    notes.append(f"{j} → {i}: no rows outside D0 for a block: not probed")
                continue
            i_rows = _passes(bi, pc.epochs, np.random.default_rng([seed, s, 31, len(bi)]))
            key = (i, len(bj))
            if key not in alone:
                rng = np.random.default_rng([seed, s, 37, len(bj)])
                fill = _filler(fresh, i, len(bj), rng)
                if len(fill) < len(bj):
                    notes.append(f"alone arm of {i} (seed {s}): filler has {len(fill)} "
                                 f"rows for a block of {len(bj)}: sizes not matched")
                alone[key] = {"name": alone_name(i, len(bj), s), "role": "alone",
                              "base": None, "dependent": i, "seed": s, "block": len(bj),
                              "rows": np.concatenate([_passes(fill, pc.epochs, rng), i_rows])}
                probes.append(alone[key])
            j_rows = _passes(bj, pc.epochs, np.random.default_rng([seed, s, 41]))
            probes.append({"name": first_name(j, i, s), "role": "first", "base": j,
                           "dependent": i, "seed": s, "block": len(bj), "alone": alone[key]["name"],
                           "rows": np.concatenate([j_rows, i_rows])})
    return probes, notes


def interval(values, ci: float) -> tuple[float, float]:
    """Student-t interval of the mean over seeds (NaN with fewer than 2). A percentile
    bootstrap over 2-3 seeds is about as wide as the seeds' own spread and would call
    most pairs edges."""
    from scipy.stats import t

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float("nan"), float("nan")
    half = t.ppf((1 + ci) / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def order_edges(per_seed: dict[tuple[str, str], list[float]], scale: float,
                ci: float, threshold: float) -> tuple[list[dict], list[str]]:
    """The edge rule (module doc) on per-seed effects d_s of each pair (j, i); `scale` = the
    typical own effect (`typical_own_effect`). Returns (one row per pair: effect, interval,
    per-seed values, effect in γ units, edge, reason; notes)."""
    rows, notes = [], []
    ok_scale = bool(np.isfinite(scale) and scale > 0)
    for (j, i), values in sorted(per_seed.items()):
        v = [float(x) for x in values]
        mean = float(np.mean(v)) if v else float("nan")
        lo, hi = interval(v, ci)
        scaled = mean / scale if ok_scale else float("nan")
        no_ci = not np.isfinite(lo)
        clear = no_ci or lo > 0
        big = bool(np.isfinite(scaled) and scaled >= threshold)
        why = ("interval excludes 0" if not no_ci and clear else
               "no interval (one seed)" if no_ci else "interval contains 0")
        why += f"; effect {scaled:.3g} x typical own effect {'>=' if big else '<'} {threshold:g}"
        rows.append({"base": j, "dependent": i, "effect": mean, "lo": lo, "hi": hi,
                     "per_seed": v, "effect_gamma_units": scaled,
                     "edge": bool(clear and big and v), "reason": why})
    if any(not np.isfinite(r["lo"]) for r in rows):
        notes.append("order probes with fewer than 2 seeds have no interval: the lo > 0 "
                     "condition is skipped for them")
    if not ok_scale:
        notes.append(f"no positive own effect to scale by ({scale}): no order edge")
    return rows, notes


def typical_own_effect(delta) -> float:
    """Median of the positive own intervention effects Δ_ii (what `add_per_category` more
    items of a category did for it); NaN when none is positive."""
    diag = np.diag(np.asarray(delta, dtype=float))
    pos = diag[np.isfinite(diag) & (diag > 0)]
    return float(np.median(pos)) if len(pos) else float("nan")


def per_seed_effects(records: list[dict], score: str) -> dict[tuple[str, str], list[float]]:
    """d_s = s_i(first-j) − s_i(alone) per pair (j, i), over the seeds where both ran.
    `records`: the order probes of `plan_order` with their trial's "loss"/"token_accuracy"."""
    def s_i(r: dict) -> float | None:
        m = r.get("token_accuracy" if score == "token_accuracy" else "loss") or {}
        x = m.get(r["dependent"])
        return None if x is None else (float(x) if score == "token_accuracy" else -float(x))

    alone = {r["name"]: s_i(r) for r in records if r["role"] == "alone"}
    out: dict[tuple[str, str], list[float]] = {}
    for r in sorted((r for r in records if r["role"] == "first"), key=lambda r: r["seed"]):
        a, f = alone.get(r["alone"]), s_i(r)
        key = (r["base"], r["dependent"])
        out.setdefault(key, [])
        if a is not None and f is not None:
            out[key].append(f - a)
    return out
