"""Interaction matrix Γ from probe results (Beyond IID).

Intervention (`estimate_gamma`): per seed a base probe M0 (D0) and one probe M_j per category
(D0 + n items of j); Δ_ij = s_i(M_j) − s_i(M0) paired by seed, averaged; γ_ij = Δ_ij / Δ_ii.
Regression (`estimate_regression`): random mixtures, s_i ≈ b_i + Σ_j β_ij x_j (ridge);
`gamma_from_beta`: γ_ij = β_ij / β_ii. Scores: higher is better (e.g. negative loss).
CIs: bootstrap percentiles (seeds, resp. probe rows, resampled). Row i is *unidentified*
(γ row NaN, reason in `unidentified`) unless its own effect is > 0, > `min_rel` × the row's
largest |effect| (default 1e-3: |γ| ≤ 1000) and ≥ `min_self` × the median of the positive
own effects (library default 0, config default 0.25): γ_ij divides by Δ_ii, so an ability
that barely learns from its own items (an unlearnable category) would blow its row up by
1/Δ_ii and swamp the mixture objective.
If more than (1 − ci)/2 of the resamples leave the diagonal unidentified, the ratio is
unbounded at that level: that row's CI is (−inf, inf).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _plain(a) -> list:
    """Nested lists of floats, NaN and ±inf kept (the run layout's writer makes them null
    and lists them, its reader puts them back: an unbounded interval stays unbounded)."""
    return np.asarray(a, dtype=float).tolist()


@dataclass
class GammaEstimate:
    """γ (C×C, row i = ability scored, column j = category trained) with bootstrap CI.
    `delta` holds the un-normalised effects (Δ, or β per item for the regression)."""

    categories: list[str]
    delta: np.ndarray
    gamma: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n_seeds: int
    ci: float = 0.9
    unidentified: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    method: str = "intervention"

    def to_json(self) -> dict:
        arrays = {k: _plain(getattr(self, k)) for k in ("delta", "gamma", "lo", "hi")}
        return {"method": self.method, "categories": list(self.categories), **arrays,
                "n_seeds": self.n_seeds, "ci": self.ci, "unidentified": self.unidentified,
                "notes": self.notes}


def _typical_own_effect(diag: np.ndarray) -> np.ndarray:
    """Median of the positive own effects along the last axis (0 when none is positive)."""
    pos = np.where(diag > 0, diag, np.nan)
    ok = np.isfinite(pos).any(axis=-1, keepdims=True)
    return np.where(ok, np.nanmedian(np.where(ok, pos, 0.0), axis=-1, keepdims=True), 0.0)


def _identified(m: np.ndarray, min_rel: float, min_self: float) -> np.ndarray:
    diag = np.diagonal(m, axis1=-2, axis2=-1)
    return ((diag > 0) & (diag > min_rel * np.abs(m).max(axis=-1))
            & (diag >= min_self * _typical_own_effect(diag)))


def _normalise(point, boot, cats, ci, min_rel, min_self, what, **kw) -> GammaEstimate:
    gamma, lo, hi = (np.full(point.shape, np.nan) for _ in range(3))
    ok = _identified(point, min_rel, min_self)
    diag = np.diag(point)
    typical = float(_typical_own_effect(diag)[0])
    unidentified = {cats[i]: (
        f"{what}_ii = {diag[i]:.3g} not clearly > 0: training on {cats[i]} did not help it"
        if diag[i] <= 0 or diag[i] <= min_rel * np.abs(point[i]).max() else
        f"{what}_ii = {diag[i]:.3g} < {min_self:g} x the median positive own effect "
        f"{typical:.3g}: "
        f"training on {cats[i]} barely helped it") for i in np.flatnonzero(~ok)}
    gamma[ok] = point[ok] / diag[ok, None]
    notes = list(kw.pop("notes", []))
    if boot is not None:
        good = _identified(boot, min_rel, min_self)  # B×C
        bdiag = np.where(good, np.diagonal(boot, axis1=1, axis2=2), 1.0)
        bg = np.where(good[:, :, None], boot / bdiag[:, :, None], np.nan)
        alpha = (1 - ci) / 2
        for i in np.flatnonzero(ok):
            bad = 1 - good[:, i].mean()
            if bad <= alpha:
                lo[i], hi[i] = np.nanquantile(bg[:, i], [alpha, 1 - alpha], axis=0)
            else:
                lo[i], hi[i] = -np.inf, np.inf
                notes.append(f"{cats[i]}: {what}_ii unidentified in {bad:.0%} of resamples: "
                             "CI unbounded")
    return GammaEstimate(list(cats), point, gamma, lo, hi, ci=ci, unidentified=unidentified,
                         notes=notes, **kw)


def _scores(scores: dict, cats: list[str], key) -> np.ndarray:
    v = np.array([float(scores.get(c, np.nan)) for c in cats])
    if not np.isfinite(v).all():
        bad = [c for c, x in zip(cats, v, strict=True) if not np.isfinite(x)]
        raise ValueError(f"probe result {key} has no finite score for {bad}")
    return v


def estimate_gamma(results: list[dict], categories: list[str], n_boot: int = 1000,
                   ci: float = 0.9, rng_seed: int = 0, min_rel: float = 1e-3,
                   min_self: float = 0.0) -> GammaEstimate:
    """Intervention estimate of Γ from `{"probe": "base" | j, "seed", "scores": {i: s_i}}`."""
    cats = list(categories)
    if len(set(cats)) != len(cats) or "base" in cats:
        raise ValueError(f"categories must be unique and not 'base': {cats}")
    table = {(str(r["probe"]), int(r["seed"])): r["scores"] for r in results}
    if len(table) != len(results) or not table:
        raise ValueError(f"{len(results)} probe results, {len(table)} distinct (probe, seed)")
    seeds = sorted({s for _, s in table})
    missing = [(p, s) for s in seeds for p in ["base", *cats] if (p, s) not in table]
    if missing:
        raise ValueError(f"missing probe results (probe, seed): {missing}")
    vec = {k: _scores(v, cats, k) for k, v in table.items() if k[0] in ("base", *cats)}
    per_seed = np.stack([np.stack([vec[(cj, s)] - vec[("base", s)] for cj in cats], axis=1)
                         for s in seeds])  # seed × i × j
    extra = sorted({p for p, _ in table} - set(cats) - {"base"})
    notes = [f"ignored probes of unrequested categories: {extra}"] if extra else []
    if len(seeds) < 2:
        boot = None
        notes.append("single seed: no confidence interval (lo/hi are NaN)")
    else:
        idx = np.random.default_rng(rng_seed).integers(0, len(seeds), (n_boot, len(seeds)))
        boot = per_seed[idx].mean(axis=1)
    return _normalise(per_seed.mean(axis=0), boot, cats, ci, min_rel, min_self, "delta",
                      n_seeds=len(seeds), notes=notes)


@dataclass
class RegressionEstimate:
    """s_i ≈ intercept_i + Σ_j beta_ij x_j (beta: score change per item of j)."""

    categories: list[str]
    beta: np.ndarray
    intercept: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n_rows: int
    ridge: float
    ci: float = 0.9
    notes: list[str] = field(default_factory=list)
    boot: np.ndarray | None = field(default=None, repr=False)

    def predict(self, x) -> np.ndarray:
        """Predicted scores (C,) for one mixture (C,), or (M, C) for M mixtures."""
        return self.intercept + np.asarray(x, dtype=float) @ self.beta.T

    def to_json(self) -> dict:
        arrays = {k: _plain(getattr(self, k)) for k in ("beta", "intercept", "lo", "hi")}
        return {"method": "regression", "categories": list(self.categories), **arrays,
                "n_rows": self.n_rows, "ridge": self.ridge, "ci": self.ci, "notes": self.notes}


def _ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge on centred x (intercept unpenalised); penalty = ridge × mean column variance × N,
    so `ridge` is unit-free. Min-norm solution when the design is singular."""
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    lam = ridge * float(((x - xm) ** 2).sum()) / x.shape[1]
    a = np.vstack([x - xm, np.sqrt(lam) * np.eye(x.shape[1])])
    b = np.vstack([y - ym, np.zeros((x.shape[1], y.shape[1]))])
    beta = np.linalg.lstsq(a, b, rcond=None)[0].T  # beta[i, j]
    return beta, ym - beta @ xm


def estimate_regression(mixtures, scores, categories: list[str], ridge: float = 1e-3,
                        n_boot: int = 1000, ci: float = 0.9, rng_seed: int = 0):
    """Fit β from N random-mixture probes: `mixtures` N×C item counts, `scores` N×C."""
    x, y = np.asarray(mixtures, dtype=float), np.asarray(scores, dtype=float)
    c, n = len(categories), len(x)
    if x.shape != (n, c) or y.shape != (n, c) or n < 2 or not np.isfinite([x, y]).all():
        raise ValueError(f"need N>=2 finite rows of C={c}: mixtures {x.shape}, scores {y.shape}")
    notes = [f"{n} probes for {c + 1} parameters per row: beta is ridge-determined"] * (n <= c)
    totals = x.sum(axis=1)
    if np.ptp(totals) <= 1e-9 * max(1.0, np.abs(totals).max()):
        notes.append("every mixture has the same total: beta is identified only up to a "
                     "per-row shift (ridge picks the min-norm one); vary the totals")
    beta, b = _ridge(x, y, ridge)
    rows = np.random.default_rng(rng_seed).integers(0, n, (n_boot, n))
    boot = np.stack([_ridge(x[k], y[k], ridge)[0] for k in rows])
    lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return RegressionEstimate(list(categories), beta, b, lo, hi, n, ridge, ci, notes, boot)


def gamma_from_beta(reg: RegressionEstimate, min_rel: float = 1e-3,
                    min_self: float = 0.0) -> GammaEstimate:
    """γ_ij = β_ij / β_ii with CIs from the same bootstrap (`n_seeds` = probe rows)."""
    return _normalise(reg.beta, reg.boot, reg.categories, reg.ci, min_rel, min_self, "beta",
                      n_seeds=reg.n_rows, method="regression",
                      notes=[*reg.notes, "n_seeds counts probe rows"])


def gamma_matrix(inter: dict, key: str, order: list[str]) -> np.ndarray:
    """Matrix `key` ("gamma", "lo", "hi", ...) of an interactions record (PROBE.interactions,
    null = NaN) with rows and columns in the order of the categories `order`."""
    missing = [c for c in order if c not in inter["categories"]]
    if missing:
        raise ValueError(f"the probe stage's interactions have no estimate for categories "
                         f"{missing}")
    idx = [inter["categories"].index(c) for c in order]
    m = np.array([[np.nan if v is None else v for v in row] for row in inter[key]], float)
    return m[np.ix_(idx, idx)]


def sign_recovery(estimate: GammaEstimate, ground_truth_interactions: list[dict],
                  tol: float = 0.05, strict: bool = False) -> dict:
    """Share of planted signs recovered. "+"/"-": sign of γ (strict: CI excludes 0 and
    |γ| >= tol). "0": |γ| < tol, or a bounded CI that contains 0 (an unbounded or missing CI
    confirms nothing). NaN γ (an unidentified row) is never
    recovered and is counted in `unidentified`; entries naming categories the estimate lacks
    are skipped (not counted)."""
    idx = {c: k for k, c in enumerate(estimate.categories)}
    details, skipped = [], 0
    for e in ground_truth_interactions:
        i, j, sign = e["i"], e["j"], e["sign"]
        s = {"+": 1.0, "-": -1.0, "0": 0.0}.get(sign)
        if s is None:
            raise ValueError(f"sign must be '+', '-' or '0': {e}")
        if i not in idx or j not in idx:
            skipped += 1
            continue
        g, lo, hi = (float(m[idx[i], idx[j]]) for m in (estimate.gamma, estimate.lo, estimate.hi))
        if sign == "0":  # an unbounded interval contains 0 but cannot confirm it
            bounded = np.isfinite(lo) and np.isfinite(hi)
            ok = np.isfinite(g) and (abs(g) < tol or (bounded and lo <= 0 <= hi))
        else:  # NaN compares False
            ok = s * g > 0 and (not strict or (s * lo > 0 and s * hi > 0 and abs(g) >= tol))
        details.append({"i": i, "j": j, "sign": sign, "kind": e.get("kind"), "gamma": g,
                        "lo": lo, "hi": hi, "recovered": bool(ok)})
    n, rec = len(details), sum(d["recovered"] for d in details)
    unidentified = sum(not np.isfinite(d["gamma"]) for d in details)
    return {"n": n, "recovered": rec, "share": rec / n if n else float("nan"),
            "unidentified": unidentified, "skipped": skipped, "details": details}
