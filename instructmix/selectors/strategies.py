"""Selection strategies: which pool rows to train on, and in what order.

Each strategy first decides counts per category (`iid` samples rows directly), then draws
that many rows of each category uniformly (by seed) and orders them (shuffled, or the
dependency curriculum). Every pool row gets a reason: selected, not selected (and why), or
held out to score the probes.

- iid: uniform sample of rows at the budget.
- proportional: category counts proportional to the pool (largest remainder).
- regmix: RegMix-style: fit per-category score ~ mixture shares on every probe (ridge),
  score `regmix_samples` random Dirichlet mixtures at the budget, take the mean of the best
  1% (as RegMix averages its top mixtures), round to counts.
- milp: Beyond IID EE-CPO on python-mip with Γ from the probes (`mixture.py`).
- ifd: the budget's rows of highest instruction-following difficulty (`ifd.py`).
- full: every usable row (the full-data baseline; ignores the budget).
- selfpaced, raise: every usable row is a candidate; the batches are picked while training
  (`rl/picker.py`), for the steps the budget buys a static strategy.
With `budget_unit=tokens`, mixture strategies turn a share of the token budget into items
with the category's mean tokens per item (so the token total is met on average).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from instructmix.config import SelectConfig
from instructmix.layout import PROBE, Artifact, RunLayout
from instructmix.probes.design import largest_remainder
from instructmix.probes.interactions import gamma_matrix
from instructmix.selectors.curriculum import dependency_curriculum, shuffled, whole_run
from instructmix.selectors.iid import iid_order
from instructmix.selectors.mixture import (
    MixtureProblem,
    alpha_from_proportions,
    robust_gamma,
    solve_mixture,
)

WHOLE_POOL = ("full", "selfpaced", "raise")  # train on (or pick batches from) every row


def ifd_top(run: RunLayout, usable: np.ndarray, n_tokens: np.ndarray, sc: SelectConfig,
            max_len: int) -> np.ndarray:
    """The budget's top rows by IFD under the start model, in ranking order."""
    from instructmix.selectors.ifd import ifd_ranking, ifd_scores

    rows = np.flatnonzero(usable)
    pool = run.read_pool()
    messages = pool.column("messages").take(rows).to_pylist()
    ranked = rows[ifd_ranking(ifd_scores(run.model_path(), messages, max_len))]
    if sc.budget_unit == "items":
        return ranked[: sc.budget]
    return ranked[np.cumsum(n_tokens[ranked]) <= sc.budget]


@dataclass
class Choice:
    order: np.ndarray  # pool row indices in training order (one pass)
    reasons: list[str]  # one per pool row
    mixture: dict = field(default_factory=dict)  # counts and solver facts
    stream: np.ndarray | None = None  # the dependency curriculum over every pass of a run


def _alpha(sc: SelectConfig, names: list[str], available: np.ndarray) -> np.ndarray:
    if sc.alpha == "proportions":
        return alpha_from_proportions(available)
    unknown = sorted(set(sc.alpha) - set(names))
    if unknown:
        raise ValueError(f"select.alpha names categories not in the pool: {unknown}; "
                         f"pool categories: {names}")
    a = np.array([float(sc.alpha.get(c, 0.0)) for c in names])
    if (a < 0).any() or a.sum() <= 0:
        raise ValueError("select.alpha weights must be >= 0 with a positive sum")
    return a / a.sum()


def _load(run: RunLayout, art: Artifact) -> dict:
    if not run.exists(art):
        raise FileNotFoundError(f"{run.path(art)} is missing: this strategy needs the probe "
                                "stage (it was skipped or has not run)")
    return run.read_json(art)


def milp_counts(sc: SelectConfig, names: list[str], available: np.ndarray, tokens: np.ndarray,
                budget_items: int, run: RunLayout) -> tuple[np.ndarray, dict]:
    """The MILP mixture under the probe stage's Γ; with rounds of probes (PROBE.rounds), the
    trust region is centred on the mixture the last round probed around."""
    centre = None
    if run.exists(PROBE.rounds):
        last = run.read_json(PROBE.rounds)["rounds"][-1]["centre"]
        centre = np.array([last[c] for c in names], dtype=float)
    return milp_solve(sc, names, available, tokens, budget_items,
                      _load(run, PROBE.interactions), centre)


def pool_facts(cats: np.ndarray, n_tokens: np.ndarray, usable: np.ndarray, sc: SelectConfig
               ) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """(categories, usable items and mean tokens per category, the budget in items)."""
    names = sorted(set(cats[usable]))
    available = np.array([int(((cats == c) & usable).sum()) for c in names])
    tokens = np.array([n_tokens[(cats == c) & usable].mean() for c in names])
    budget_items = sc.budget if sc.budget_unit == "items" else int(
        round(sc.budget / float(tokens @ (available / available.sum()))))
    return names, available, tokens, budget_items


def milp_solve(sc: SelectConfig, names: list[str], available: np.ndarray, tokens: np.ndarray,
               budget_items: int, inter: dict, centre: np.ndarray | None = None
               ) -> tuple[np.ndarray, dict]:
    """Counts per category maximising the α-weighted Γ gain (`inter`: PROBE.interactions);
    the trust region is centred on `centre` (items per category), or the proportional
    mixture."""
    gamma = gamma_matrix(inter, "gamma", names)
    alpha = _alpha(sc, names, available)
    notes = []
    bad = np.isnan(gamma).all(axis=1)
    if bad.any():
        lost = [names[i] for i in np.flatnonzero(bad)]
        notes.append("unidentified abilities (their own items did not measurably help them) "
                     f"get no weight: {lost}")
        alpha = np.where(bad, 0.0, alpha)
    if sc.robust:
        lo = gamma_matrix(inter, "lo", names)
        if np.isnan(lo[np.isfinite(gamma)]).any():
            raise ValueError("select.robust needs confidence intervals: set probes.seeds >= 2")
        finite = np.isfinite(lo)
        lo = np.where(finite | np.isnan(gamma), lo, np.nanmin(np.where(finite, lo, np.nan)))
        gamma = robust_gamma(gamma, np.nan_to_num(np.minimum(lo, gamma)))
    gamma = np.nan_to_num(gamma)
    unit = tokens if sc.budget_unit == "tokens" else None
    current = None
    if sc.trust_region is not None:
        current = (largest_remainder(available, budget_items, available).astype(float)
                   if centre is None else np.asarray(centre, dtype=float))
        if unit is not None:
            current = current * (sc.budget / float(unit @ current))
    floors = np.minimum(sc.floor_per_category, available) if sc.floor_per_category else None
    res = solve_mixture(MixtureProblem(
        names, gamma, alpha, available, sc.budget, tokens_per_item=unit, floors=floors,
        current=current, trust_region=sc.trust_region))
    counts = np.array([res.counts[c] for c in names])
    return counts, {"objective": res.objective, "status": res.status,
                    "current": None if current is None else current.round(6).tolist(),
                    "solver_seconds": round(res.seconds, 4), "binding": res.binding,
                    "alpha": dict(zip(names, alpha.round(6).tolist(), strict=True)),
                    "weights": dict(zip(names, (gamma.T @ alpha).round(6).tolist(),
                                        strict=True)), "notes": notes}


def regmix_counts(sc: SelectConfig, names: list[str], available: np.ndarray, budget_items: int,
                  run: RunLayout, seed: int) -> tuple[np.ndarray, dict]:
    fit = _load(run, PROBE.regression)
    idx = [fit["categories"].index(c) for c in names]
    beta = np.array(fit["beta"], dtype=float)[np.ix_(idx, idx)]
    alpha = _alpha(sc, names, available)
    rng = np.random.default_rng([seed, 31])
    shares = rng.dirichlet(np.ones(len(names)), size=sc.regmix_samples)
    shares = shares[(shares * budget_items <= available + 1e-9).all(axis=1)]
    if len(shares) == 0:
        shares = (available / available.sum())[None, :]
    predicted = shares @ beta.T @ alpha  # alpha-weighted predicted score (intercept const)
    top = shares[np.argsort(predicted)[-max(1, len(shares) // 100):]].mean(axis=0)
    counts = largest_remainder(top, budget_items, available)
    return counts, {"shares": dict(zip(names, top.round(4).tolist(), strict=True)),
                    "mixtures_scored": int(len(shares)),
                    "alpha": dict(zip(names, alpha.round(6).tolist(), strict=True))}


def choose(strategy: str, curriculum: str, cats: np.ndarray, n_tokens: np.ndarray,
           usable: np.ndarray, sc: SelectConfig, run: RunLayout, seed: int,
           max_len: int = 128, epochs: int = 1) -> Choice:
    """Pick and order rows of the pool (`usable` rows only); `max_len` is the sequence
    length the ifd strategy scores with; with the dependency curriculum and `epochs` > 1
    the choice also holds the whole run's stream (`Choice.stream`)."""
    names, available, tokens, budget_items = pool_facts(cats, n_tokens, usable, sc)
    info: dict = {"strategy": strategy, "curriculum": curriculum}
    rng = np.random.default_rng([seed, 5])
    if strategy == "iid":
        rows = np.flatnonzero(usable)
        picked = rows[iid_order(n_tokens[rows], sc.budget, sc.budget_unit, seed)]
    elif strategy in WHOLE_POOL:
        picked = np.flatnonzero(usable)
    elif strategy == "ifd":
        picked = ifd_top(run, usable, n_tokens, sc, max_len)
        info["ifd"] = "IFD = exp(loss with instruction - loss without) under the start model"
    else:
        if strategy == "proportional":
            counts = largest_remainder(available, budget_items, available)
        elif strategy == "regmix":
            counts, extra = regmix_counts(sc, names, available, budget_items, run, seed)
            info.update(extra)
        elif strategy == "milp":
            counts, extra = milp_counts(sc, names, available, tokens, budget_items, run)
            info.update(extra)
        else:
            raise ValueError(f"unknown strategy {strategy!r}")
        picked = np.concatenate([rng.permutation(np.flatnonzero((cats == c) & usable))[:n]
                                 for c, n in zip(names, counts, strict=True)]).astype(int)
    sel_cats, sel_counts = np.unique(cats[picked], return_counts=True)
    per_cat = {str(c): int(n) for c, n in zip(sel_cats, sel_counts, strict=True)}
    info["counts"] = {c: per_cat.get(c, 0) for c in names}
    info["available"] = dict(zip(names, available.tolist(), strict=True))
    stream = None
    if curriculum == "dependency":
        tiers = _load(run, PROBE.dependencies)["tiers"]
        perm = dependency_curriculum(list(cats[picked]), tiers, sc.curriculum_bias, seed)
        info["tiers"] = tiers
        if epochs > 1 and len(picked):
            stream = picked[whole_run(list(cats[picked]), tiers, sc.curriculum_bias, seed,
                                      epochs)]
            info["stream_epochs"] = epochs
    else:
        perm = shuffled(len(picked), seed)
    order = picked[np.asarray(perm, dtype=int)] if len(picked) else picked
    reasons = _reasons(strategy, cats, usable, order, info["counts"], sc)
    return Choice(order, reasons, info, stream)


def _reasons(strategy: str, cats: np.ndarray, usable: np.ndarray, order: np.ndarray,
             counts: dict, sc: SelectConfig) -> list[str]:
    """Why each pool row is selected or not."""
    chosen = np.zeros(len(cats), dtype=bool)
    chosen[order] = True
    reasons = []
    for k, c in enumerate(cats):
        n = counts.get(c, 0)
        if not usable[k]:
            reasons.append("held out: scores the probes (never trained on)")
        elif strategy in WHOLE_POOL:
            reasons.append("full: every usable row" if strategy == "full" else
                           f"{strategy}: a candidate; batches are picked while training")
        elif chosen[k]:
            reasons.append(f"{strategy}: one of {n} items of {c!r} in the mixture"
                           if strategy not in ("iid", "ifd") else f"{strategy}: in the budget")
        elif strategy in ("iid", "ifd"):
            reasons.append(f"{strategy}: outside the budget of {sc.budget} {sc.budget_unit}")
        elif n == 0:
            reasons.append(f"{strategy}: category {c!r} gets 0 items in the mixture")
        else:
            reasons.append(f"{strategy}: beyond the {n} items of {c!r} in the mixture")
    return reasons
