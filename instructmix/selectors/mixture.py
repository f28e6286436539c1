"""EE-CPO: choose how many items of each category to train on (Beyond IID, METHODS.md §1.3).

Objective (linear, no pairwise products): maximise sum_i alpha_i sum_j gamma_ij x_j
= sum_j w_j x_j with w = gamma^T alpha, over counts x_j in [floor_j, available_j]
(integer for the MILP, continuous for the LP relaxation).

Constraints, with their mip names (also used in `MixtureResult.binding`):
- ``budget``: sum_j x_j == budget (items), or sum_j t_j x_j <= budget (tokens).
- ``budget_use`` (tokens only): sum_j t_j x_j >= budget - max_j t_j.
  The budget is a fixed training size to allocate, as in the paper, not a cap: with
  negative weights the optimum would otherwise be to select nothing. In items the budget
  is therefore an equality; in tokens the slack is one item of the longest category,
  so an integer solution always exists.
- ``tr_pos_<j>``/``tr_neg_<j>``: d_j >= x_j - current_j and d_j >= current_j - x_j, and
  ``trust_region``: sum_j u_j d_j <= 2 * trust_region * budget, with u_j = 1 (items) or
  t_j (tokens). Moving k items from one category to another changes sum |x - current| by
  2k, so `trust_region` is the share of the budget that moves.
- Floors and availability are variable bounds; they are reported as ``floor[<cat>]`` and
  ``available[<cat>]``. Their conflicts are caught before solving.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import mip
import numpy as np

_TOL = 1e-6


class InfeasibleMixture(ValueError):
    """No mixture satisfies the constraints; the message names the ones that conflict."""


@dataclass
class MixtureProblem:
    categories: list[str]
    gamma: np.ndarray  # C x C, gamma[i, j] = effect of one item of j on ability i
    alpha: np.ndarray  # C, importance of ability i (>= 0)
    available: np.ndarray  # C, items of each category in the pool (int)
    budget: int  # total items, or tokens when tokens_per_item is given
    tokens_per_item: np.ndarray | None = None  # C, mean tokens per item -> budget in tokens
    floors: np.ndarray | None = None  # C, minimum items per category
    current: np.ndarray | None = None  # C, current mixture (items) for the trust region
    trust_region: float | None = None  # max share of the budget moved away from `current`
    integer: bool = True  # MILP (integer counts) or LP relaxation


@dataclass
class MixtureResult:
    counts: dict[str, int]  # (floats rounded down if LP)
    objective: float  # of the solver's solution (LP: before rounding down)
    status: str  # "optimal" etc.
    seconds: float  # model building + solving
    binding: list[str]  # names of constraints that are tight at the optimum


def alpha_from_proportions(available) -> np.ndarray:
    """Importance of each ability = its current share of the pool (the paper's default)."""
    a = np.asarray(available, dtype=float)
    if a.ndim != 1 or (a < 0).any() or a.sum() <= 0:
        raise ValueError("available must be a 1-D non-negative array with a positive sum")
    return a / a.sum()


def robust_gamma(gamma_mean, gamma_lo) -> np.ndarray:
    """Gamma for the robust mixture: the lower confidence bound of every gamma_ij.

    For x >= 0 and alpha >= 0 the objective alpha^T gamma x is non-decreasing in every
    gamma_ij, so its worst case over the box [gamma_lo, gamma_hi] is reached at gamma_lo.
    Maximising that worst case is the same LP/MILP with gamma_lo; categories whose effect
    is uncertain (wide interval) are thereby penalised.
    """
    mean, lo = np.asarray(gamma_mean, dtype=float), np.asarray(gamma_lo, dtype=float)
    if mean.shape != lo.shape:
        raise ValueError(f"gamma_mean {mean.shape} and gamma_lo {lo.shape} differ in shape")
    if (lo > mean + _TOL).any():
        raise ValueError("gamma_lo must not exceed gamma_mean")
    return lo.copy()


def _vec(name: str, v, c: int) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.shape != (c,):
        raise ValueError(f"{name} must have shape ({c},), got {a.shape}")
    return a


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.4g}"


def _check(p: MixtureProblem, lo, hi, unit, cur):
    """Name the obvious conflicts before solving (bounds, budget, trust region)."""
    names, b = p.categories, float(p.budget)
    tokens = p.tokens_per_item is not None
    slack = float(unit.max()) if tokens else 0.0
    word = "tokens" if tokens else "items"
    for j in np.flatnonzero(lo > hi):
        raise InfeasibleMixture(
            f"floor of category '{names[j]}' ({_num(lo[j])}) exceeds its availability "
            f"({_num(hi[j])})")
    need = float(unit @ lo)
    if need > b + _TOL:
        extra = f" ({_num(lo.sum())} items)" if tokens else ""
        raise InfeasibleMixture(f"floors need {_num(need)} {word}{extra} but budget is {_num(b)}")
    have = float(unit @ hi)
    if have < b - slack - _TOL:
        extra = f", minus a slack of one item, {_num(slack)} tokens" if tokens else ""
        raise InfeasibleMixture(
            f"availability of all categories ({_num(have)} {word}) is below the budget "
            f"({_num(b)}{extra})")
    if cur is None:
        return
    # Least sum_j u_j |x_j - current_j| to reach the bounds and then the budget band: exact
    # for the LP (projection onto the box, then any change of the total), a lower bound
    # for integer counts; the solver catches what this misses.
    clip = np.clip(cur, lo, hi)
    box = float(unit @ np.abs(clip - cur))
    total = float(unit @ clip)
    gap = max(b - slack - total, total - b, 0.0)
    allowed = 2.0 * p.trust_region * b
    if box + gap > allowed + _TOL:
        why = [n for n, hit in (("floors", (cur < lo - _TOL).any()),
                                ("availability", (cur > hi + _TOL).any()),
                                ("the budget", gap > _TOL)) if hit]
        raise InfeasibleMixture(
            f"trust region {p.trust_region:g} cannot reach {' and '.join(why)} from the "
            f"current mixture (needs moving {_num((box + gap) / 2)} {word}, allows "
            f"{_num(allowed / 2)}; sum |x - current| >= {_num(box + gap)} > {_num(allowed)})")


def solve_mixture(p: MixtureProblem) -> MixtureResult:
    """Solve EE-CPO with CBC (single thread); raise InfeasibleMixture naming the conflict."""
    t0 = time.perf_counter()
    c = len(p.categories)
    gamma = np.asarray(p.gamma, dtype=float)
    if gamma.shape != (c, c):
        raise ValueError(f"gamma must have shape ({c}, {c}), got {gamma.shape}")
    alpha = _vec("alpha", p.alpha, c)
    hi = _vec("available", p.available, c)
    if (alpha < 0).any() or (hi < 0).any() or p.budget <= 0:
        raise ValueError("alpha and available must be >= 0 and budget > 0")
    tokens = p.tokens_per_item is not None
    unit = _vec("tokens_per_item", p.tokens_per_item, c) if tokens else np.ones(c)
    if (unit <= 0).any():
        raise ValueError("tokens_per_item must be > 0")
    lo = np.zeros(c) if p.floors is None else _vec("floors", p.floors, c)
    if p.integer:
        lo, hi = np.ceil(lo - _TOL), np.floor(hi + _TOL)
    cur = None
    if p.trust_region is not None:
        if p.current is None or not 0.0 <= p.trust_region <= 1.0:
            raise ValueError("trust_region needs `current` and a value in [0, 1]")
        cur = _vec("current", p.current, c)
    _check(p, lo, hi, unit, cur)

    w = gamma.T @ alpha
    b = float(p.budget)
    vtype = mip.INTEGER if p.integer else mip.CONTINUOUS
    m = mip.Model(sense=mip.MAXIMIZE, solver_name=mip.CBC)
    m.verbose = 0
    m.threads = 1
    x = [m.add_var(name=f"x_{j}", lb=lo[j], ub=hi[j], var_type=vtype) for j in range(c)]
    m.objective = mip.xsum(float(w[j]) * x[j] for j in range(c))
    used = mip.xsum(float(unit[j]) * x[j] for j in range(c))
    if tokens:
        m.add_constr(used <= b, name="budget")
        m.add_constr(used >= b - float(unit.max()), name="budget_use")
    else:
        m.add_constr(used == b, name="budget")
    if cur is not None:
        d = [m.add_var(name=f"d_{j}", lb=0.0) for j in range(c)]
        for j in range(c):
            m.add_constr(d[j] >= x[j] - float(cur[j]), name=f"tr_pos_{j}")
            m.add_constr(d[j] >= float(cur[j]) - x[j], name=f"tr_neg_{j}")
        m.add_constr(mip.xsum(float(unit[j]) * d[j] for j in range(c))
                     <= 2.0 * p.trust_region * b, name="trust_region")
    st = m.optimize()
    S = mip.OptimizationStatus
    if st in (S.INFEASIBLE, S.INT_INFEASIBLE, S.NO_SOLUTION_FOUND):
        groups = ["budget"] + (["budget_use"] if tokens else [])
        groups += ["floors"] * (p.floors is not None) + ["availability"]
        groups += ["trust_region"] * (cur is not None) + ["integrality"] * p.integer
        raise InfeasibleMixture(
            f"solver reports no feasible mixture ({st.name.lower()}); constraint groups "
            f"involved: {', '.join(groups)}")
    if st not in (S.OPTIMAL, S.FEASIBLE):
        raise RuntimeError(f"CBC returned status {st.name}")
    xv = np.array([v.x for v in x], dtype=float)
    counts = np.round(xv) if p.integer else np.floor(xv + _TOL)
    return MixtureResult(
        counts={name: int(n) for name, n in zip(p.categories, counts, strict=True)},
        objective=float(m.objective_value),
        status=st.name.lower(),
        seconds=time.perf_counter() - t0,
        binding=_binding(p, xv, lo, hi, unit, cur, tokens))


def _binding(p, xv, lo, hi, unit, cur, tokens) -> list[str]:
    b = float(p.budget)
    tol = _TOL * max(1.0, b)
    used = float(unit @ xv)
    out = []
    if tokens:
        out += ["budget"] * (used >= b - tol)
        out += ["budget_use"] * (used <= b - float(unit.max()) + tol)
    else:
        out.append("budget")
    if cur is not None and float(unit @ np.abs(xv - cur)) >= 2 * p.trust_region * b - tol:
        out.append("trust_region")
    for j, name in enumerate(p.categories):
        eps = _TOL * max(1.0, hi[j])
        if p.floors is not None and lo[j] > 0 and xv[j] <= lo[j] + eps:
            out.append(f"floor[{name}]")
        if xv[j] >= hi[j] - eps:
            out.append(f"available[{name}]")
    return out
