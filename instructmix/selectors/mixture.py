"""EE-CPO: choose how many items of each category to train on (Beyond IID).

Maximise sum_i alpha_i sum_j gamma_ij x_j = sum_j w_j x_j, w = gamma^T alpha (linear), over
counts x_j in [floor_j, available_j], integer (MILP) or continuous (LP). Constraints, by
their mip names (also used in `MixtureResult.binding`):
- ``budget``: sum_j x_j == budget (items), or sum_j t_j x_j <= budget (tokens), and
  ``budget_use`` (tokens only): sum_j t_j x_j >= budget - max_j t_j. The budget is a fixed
  training size to allocate, as in the paper, not a cap: with negative weights the optimum
  would otherwise be to select nothing. The token slack (one item of the longest category)
  guarantees an integer solution.
- ``tr_pos_<j>``/``tr_neg_<j>``: d_j >= +-(x_j - current_j), and ``trust_region``:
  sum_j u_j d_j <= 2 * trust_region * budget, u_j = 1 (items) or t_j (tokens). Moving k
  items between categories changes sum |x - current| by 2k, so `trust_region` is the share
  of the budget that moves.
- Floors and availability are variable bounds, reported as ``floor[<cat>]`` and
  ``available[<cat>]``; their conflicts are caught before solving.
Integer counts add cuts that every integer x satisfies (the MILP optimum is unchanged):
``tr_hull_<j>`` (d_j >= the chord of |x - c_j| over [floor(c_j), floor(c_j) + 1] for a
fractional current_j) and, for an integer current in items, a parity cut (sum |x - c| has
the parity of budget - sum c). Without them the LP bound is loose and CBC can take minutes
at C = 200. A rounding dive on the LP gives CBC a start; CBC proves optimality within its
default gap (1e-4 relative). For integer counts a constraint is reported as binding when no
further item fits in its slack.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import mip
import numpy as np

_TOL = 1e-6
_LIBC = ctypes.CDLL(None) if os.name == "posix" else None  # to flush C stdio


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
    For x >= 0 and alpha >= 0, alpha^T gamma x is non-decreasing in every gamma_ij, so its
    worst case over the box [gamma_lo, gamma_hi] is at gamma_lo: maximising the worst case
    is the same LP/MILP with gamma_lo, which penalises categories with wide intervals."""
    mean, lo = np.asarray(gamma_mean, dtype=float), np.asarray(gamma_lo, dtype=float)
    if mean.shape != lo.shape or (lo > mean + _TOL).any():
        raise ValueError("gamma_lo must have gamma_mean's shape and not exceed it")
    return lo.copy()


def _vec(name: str, v, c: int) -> np.ndarray:
    if (a := np.asarray(v, dtype=float)).shape != (c,):
        raise ValueError(f"{name} must have shape ({c},), got {a.shape}")
    return a


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.4g}"


def _check(p: MixtureProblem, lo, hi, unit, cur) -> None:
    """Name the obvious conflicts before solving (bounds, budget, trust region)."""
    b, tokens = float(p.budget), p.tokens_per_item is not None
    slack, word = (float(unit.max()), "tokens") if tokens else (0.0, "items")
    for j in np.flatnonzero(lo > hi):
        raise InfeasibleMixture(f"floor of category '{p.categories[j]}' ({_num(lo[j])}) "
                                f"exceeds its availability ({_num(hi[j])})")
    if (need := float(unit @ lo)) > b + _TOL:
        extra = f" ({_num(lo.sum())} items)" if tokens else ""
        raise InfeasibleMixture(f"floors need {_num(need)} {word}{extra} but budget is {_num(b)}")
    if (have := float(unit @ hi)) < b - slack - _TOL:
        extra = f", minus a slack of one item, {_num(slack)} tokens" if tokens else ""
        raise InfeasibleMixture(f"availability of all categories ({_num(have)} {word}) is "
                                f"below the budget ({_num(b)}{extra})")
    if cur is None:
        return
    # Least sum_j u_j |x_j - current_j| to reach the bounds, then the budget band: exact for
    # the LP (projection onto the box, then any change of the total), a lower bound for
    # integer counts (the solver catches the rest).
    clip = np.clip(cur, lo, hi)
    box, total = float(unit @ np.abs(clip - cur)), float(unit @ clip)
    gap = max(b - slack - total, total - b, 0.0)
    allowed = 2.0 * p.trust_region * b
    if box + gap > allowed + _TOL:
        why = [n for n, hit in (("floors", (cur < lo - _TOL).any()), ("availability", (
            cur > hi + _TOL).any()), ("the budget", gap > _TOL)) if hit]
        raise InfeasibleMixture(
            f"trust region {p.trust_region:g} cannot reach {' and '.join(why)} from the "
            f"current mixture (needs moving {_num((box + gap) / 2)} {word}, allows "
            f"{_num(allowed / 2)}; sum |x - current| >= {_num(box + gap)} > {_num(allowed)})")


def _trust_region(m, p: MixtureProblem, x: list, cur, unit: np.ndarray, b: float,
                  tokens: bool) -> float:
    """|x - current| (in budget units) within 2 x trust_region x budget; returns the bound."""
    rhs = 2.0 * (p.trust_region or 0.0) * b
    if cur is None:
        return rhs
    c = len(x)
    d = [m.add_var(name=f"d_{j}", lb=0.0) for j in range(c)]
    for j in range(c):
        m.add_constr(d[j] >= x[j] - float(cur[j]), name=f"tr_pos_{j}")
        m.add_constr(d[j] >= float(cur[j]) - x[j], name=f"tr_neg_{j}")
        base = float(np.floor(cur[j]))
        if p.integer and (f := float(cur[j]) - base) > _TOL:
            m.add_constr(d[j] >= f + (1 - 2 * f) * (x[j] - base), name=f"tr_hull_{j}")
    if p.integer and not tokens and np.allclose(cur, np.round(cur)):
        rhs = np.floor(rhs + _TOL)
        rhs -= (rhs - (b - np.round(cur).sum())) % 2  # parity cut
    m.add_constr(mip.xsum(float(unit[j]) * d[j] for j in range(c)) <= rhs,
                 name="trust_region")
    return rhs


def solve_mixture(p: MixtureProblem) -> MixtureResult:
    """Solve EE-CPO with CBC (single thread); raise InfeasibleMixture naming the conflict."""
    t0, c, gamma = time.perf_counter(), len(p.categories), np.asarray(p.gamma, dtype=float)
    if gamma.shape != (c, c):
        raise ValueError(f"gamma must have shape ({c}, {c}), got {gamma.shape}")
    alpha, hi = _vec("alpha", p.alpha, c), _vec("available", p.available, c)
    tokens = p.tokens_per_item is not None
    unit = _vec("tokens_per_item", p.tokens_per_item, c) if tokens else np.ones(c)
    if (alpha < 0).any() or (hi < 0).any() or (unit <= 0).any() or p.budget <= 0:
        raise ValueError("need alpha >= 0, available >= 0, tokens_per_item > 0, budget > 0")
    lo = np.zeros(c) if p.floors is None else _vec("floors", p.floors, c)
    if p.integer:
        lo, hi = np.ceil(lo - _TOL), np.floor(hi + _TOL)
    if p.trust_region is not None and (p.current is None or not 0 <= p.trust_region <= 1):
        raise ValueError("trust_region needs `current` and a value in [0, 1]")
    cur = None if p.trust_region is None else _vec("current", p.current, c)
    _check(p, lo, hi, unit, cur)

    w, b = gamma.T @ alpha, float(p.budget)
    m = mip.Model(sense=mip.MAXIMIZE, solver_name=mip.CBC)
    m.verbose, m.threads = 0, 1
    vtype = mip.INTEGER if p.integer else mip.CONTINUOUS
    x = [m.add_var(name=f"x_{j}", lb=lo[j], ub=hi[j], var_type=vtype) for j in range(c)]
    m.objective = mip.xsum(float(w[j]) * x[j] for j in range(c))
    used = mip.xsum(float(unit[j]) * x[j] for j in range(c))
    if tokens:
        m.add_constr(used <= b, name="budget")
        m.add_constr(used >= b - float(unit.max()), name="budget_use")
    else:
        m.add_constr(used == b, name="budget")
    rhs = _trust_region(m, p, x, cur, unit, b, tokens)
    with _quiet_stdout() if _LIBC is not None else nullcontext():
        if p.integer and (start := _dive_start(m, x)) is not None:
            m.start = start
        st = m.optimize()
    if st in (mip.OptimizationStatus.INFEASIBLE, mip.OptimizationStatus.INT_INFEASIBLE):
        groups = ["budget"] + ["budget_use"] * tokens + ["floors"] * (p.floors is not None)
        groups += ["availability"] + ["trust_region"] * (cur is not None)
        raise InfeasibleMixture(
            f"solver reports no feasible mixture ({st.name.lower()}); constraint groups "
            f"involved: {', '.join(groups + ['integrality'] * p.integer)}")
    if st not in (mip.OptimizationStatus.OPTIMAL, mip.OptimizationStatus.FEASIBLE):
        raise RuntimeError(f"CBC returned status {st.name}")
    xv = np.array([v.x for v in x], dtype=float)
    counts = np.round(xv) if p.integer else np.floor(xv + _TOL)
    return MixtureResult(
        counts={name: int(n) for name, n in zip(p.categories, counts, strict=True)},
        objective=float(m.objective_value), status=st.name.lower(),
        seconds=time.perf_counter() - t0, binding=_binding(p, xv, lo, hi, unit, cur, rhs))


def _dive_start(m: mip.Model, x: list) -> list | None:
    """A feasible integer start, or None: fix one fractional count of the LP relaxation
    to its nearest integer (the other side if that is infeasible), re-solve, repeat."""
    saved, flip = [(v, v.lb, v.ub) for v in x], None  # flip: the other side to try
    try:
        for _ in range(2 * len(x) + 1):
            if m.optimize(relax=True) != mip.OptimizationStatus.OPTIMAL:
                if flip is None:
                    return None
                flip[0].lb = flip[0].ub = flip[1]
                flip = None
                continue
            xv = np.array([v.x for v in x], dtype=float)
            frac = np.flatnonzero(np.abs(xv - np.round(xv)) > _TOL)
            if len(frac) == 0:
                return [(v, round(v.x) if v.idx < len(x) else v.x) for v in m.vars]
            v, val = x[frac[0]], float(xv[frac[0]])
            v.lb = v.ub = float(np.round(val))
            flip = (v, float(np.floor(val) if np.round(val) > val else np.ceil(val)))
        return None
    finally:
        for v, lo, hi in saved:
            v.lb, v.ub = lo, hi


@contextmanager
def _quiet_stdout():
    """python-mip 2.0's CBC prints Clp's LP log to fd 1 even with verbose = 0: mute fd 1
    during the solve (what other threads write there meanwhile is lost too)."""
    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        _LIBC.fflush(None)
        os.dup2(saved, 1)
        os.close(saved), os.close(null)


def _binding(p, xv, lo, hi, unit, cur, rhs) -> list[str]:
    b, tol = float(p.budget), _TOL * max(1.0, p.budget)
    item = float(unit.min()) - tol if p.integer else tol  # "no further item fits"
    used, out, t_max = float(unit @ xv), ["budget"], float(unit.max())
    if p.tokens_per_item is not None:
        out = ["budget"] * (used > b - item) + ["budget_use"] * (used <= b - t_max + tol)
    if cur is not None and float(unit @ np.abs(xv - cur)) > rhs - 2 * item:
        out.append("trust_region")
    for j, name in enumerate(p.categories):
        eps = _TOL * max(1.0, hi[j])
        if p.floors is not None and lo[j] > 0 and xv[j] <= lo[j] + eps:
            out.append(f"floor[{name}]")
        if xv[j] >= hi[j] - eps:
            out.append(f"available[{name}]")
    return out
