"""EE-CPO mixture solver: hand-checkable optima with real CBC solves (no mocks)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from instructmix.selectors.mixture import (
    InfeasibleMixture,
    MixtureProblem,
    alpha_from_proportions,
    robust_gamma,
    solve_mixture,
)

CATS = ["a", "b", "c"]


def problem(weights=(3.0, 2.0, 1.0), available=(50, 80, 100), budget=100, **kw):
    """gamma diagonal and alpha = 1, so the per-item weights w are `weights`."""
    return MixtureProblem(categories=list(CATS[: len(weights)]), gamma=np.diag(weights),
                          alpha=np.ones(len(weights)), available=np.array(available),
                          budget=budget, **kw)


def test_best_category_first_then_next_best():
    r = solve_mixture(problem())
    assert r.status == "optimal"
    assert r.counts == {"a": 50, "b": 50, "c": 0}
    assert r.objective == pytest.approx(3 * 50 + 2 * 50)
    assert r.binding == ["budget", "available[a]"]
    assert solve_mixture(problem(budget=40)).counts == {"a": 40, "b": 0, "c": 0}
    assert r.seconds > 0


def test_gamma_orientation_column_is_the_trained_category():
    # Only ability 0 matters; one item of category 1 helps it twice as much as category 0.
    p = MixtureProblem(["x", "y"], gamma=np.array([[1.0, 2.0], [0.0, 1.0]]),
                       alpha=np.array([1.0, 0.0]), available=np.array([100, 100]), budget=60)
    assert solve_mixture(p).counts == {"x": 0, "y": 60}


def test_whole_budget_is_used_even_with_negative_weights():
    r = solve_mixture(problem(weights=(-1.0, -2.0, -3.0), available=(60, 60, 60)))
    assert r.counts == {"a": 60, "b": 40, "c": 0}
    assert r.objective == pytest.approx(-140)


def test_floors_are_respected_and_reported():
    r = solve_mixture(problem(floors=np.array([0, 0, 20])))
    assert r.counts == {"a": 50, "b": 30, "c": 20}
    assert set(r.binding) == {"budget", "available[a]", "floor[c]"}


def test_token_budget_prefers_value_per_token():
    # w / tokens: a 0.3, b 1.0, c 0.5 -> b fully (160 tokens), then 20 items of c (40 tokens)
    p = problem(tokens_per_item=np.array([10.0, 2.0, 2.0]), budget=200)
    r = solve_mixture(p)
    assert r.counts == {"a": 0, "b": 80, "c": 20}
    assert r.objective == pytest.approx(2 * 80 + 20)
    assert set(r.binding) == {"budget", "available[b]"}


def test_lp_fractional_vs_milp():
    # 10 tokens; a: 4 tokens, w 5; b: 3 tokens, w 3. LP: a = 2.5 (12.5). MILP: a=1, b=2 (11).
    kw = dict(weights=(5.0, 3.0), available=(10, 10), budget=10,
              tokens_per_item=np.array([4.0, 3.0]))
    lp = solve_mixture(problem(integer=False, **kw))
    assert lp.objective == pytest.approx(12.5)
    assert lp.counts == {"a": 2, "b": 0}  # 2.5 rounded down
    milp = solve_mixture(problem(**kw))
    assert milp.objective == pytest.approx(11)
    assert milp.counts == {"a": 1, "b": 2}


def test_trust_region_limits_movement_exactly():
    # 10% of 90 items may move: 9 items go from the worst category to the best.
    cur = np.array([30.0, 30.0, 30.0])
    p = problem(available=(100, 100, 100), budget=90, current=cur, trust_region=0.1)
    r = solve_mixture(p)
    assert r.counts == {"a": 39, "b": 30, "c": 21}
    assert sum(abs(r.counts[k] - 30) for k in CATS) == 18
    assert "trust_region" in r.binding
    free = solve_mixture(problem(available=(100, 100, 100), budget=90))
    assert free.counts == {"a": 90, "b": 0, "c": 0}


def test_token_trust_region_counts_tokens():
    cur = np.array([30.0, 30.0, 30.0])
    p = problem(available=(100, 100, 100), budget=180, tokens_per_item=np.array([2.0] * 3),
                current=cur, trust_region=0.1, integer=False)
    r = solve_mixture(p)  # 18 tokens = 9 items of 2 tokens may move
    assert r.counts == {"a": 39, "b": 30, "c": 21}


@pytest.mark.parametrize("kw, expected", [
    (dict(floors=np.array([60, 0, 0])), "floor of category 'a' (60) exceeds its availability (50)"),
    (dict(available=(500, 500, 500), budget=1000, floors=np.array([400, 400, 400])),
     "floors need 1200 items but budget is 1000"),
    (dict(available=(300, 300, 200), budget=1000),
     "availability of all categories (800 items) is below the budget (1000)"),
    (dict(tokens_per_item=np.array([10.0, 10.0, 10.0]), floors=np.array([5, 5, 5])),
     "floors need 150 tokens (15 items) but budget is 100"),
    (dict(available=(100, 100, 100), budget=90, current=np.array([30.0, 30.0, 30.0]),
          floors=np.array([0, 0, 60]), trust_region=0.1),
     "trust region 0.1 cannot reach floors and the budget from the current mixture "
     "(needs moving 30 items, allows 9"),
    (dict(available=(100, 100, 100), budget=90, current=np.array([50.0, 50.0, 50.0]),
          trust_region=0.1),
     "trust region 0.1 cannot reach the budget from the current mixture (needs moving 30"),
])
def test_obvious_conflicts_are_named_before_solving(kw, expected):
    with pytest.raises(InfeasibleMixture) as e:
        solve_mixture(problem(**kw))
    assert expected in str(e.value)


def test_solver_infeasibility_names_constraint_groups():
    # The LP can stay at the fractional current mixture; integer counts must move 1 item.
    kw = dict(weights=(1.0, 1.0), available=(1, 1), budget=1,
              current=np.array([0.5, 0.5]), trust_region=0.1)
    assert solve_mixture(problem(integer=False, **kw)).status == "optimal"
    with pytest.raises(InfeasibleMixture) as e:
        solve_mixture(problem(**kw))
    msg = str(e.value)
    for group in ("budget", "availability", "trust_region", "integrality"):
        assert group in msg


def test_robust_gamma_avoids_wide_interval():
    mean = np.diag([2.0, 1.8])
    lo = np.diag([0.5, 1.6])  # a looks better on average but is far less certain
    base = dict(categories=["a", "b"], alpha=np.ones(2), available=np.array([100, 100]),
                budget=100)
    assert solve_mixture(MixtureProblem(gamma=mean, **base)).counts == {"a": 100, "b": 0}
    rob = robust_gamma(mean, lo)
    np.testing.assert_array_equal(rob, lo)
    assert solve_mixture(MixtureProblem(gamma=rob, **base)).counts == {"a": 0, "b": 100}
    with pytest.raises(ValueError):
        robust_gamma(mean, lo + 5)


def test_alpha_from_proportions_and_input_validation():
    np.testing.assert_allclose(alpha_from_proportions([10, 30]), [0.25, 0.75])
    with pytest.raises(ValueError):
        alpha_from_proportions([0, 0])
    with pytest.raises(ValueError, match="trust_region needs"):
        solve_mixture(problem(trust_region=0.1))
    with pytest.raises(ValueError, match="gamma must have shape"):
        solve_mixture(MixtureProblem(CATS, np.eye(2), np.ones(3), np.array([1, 1, 1]), 2))


def _brute_force(w, avail, budget, unit, slack, floors, cur, tr):
    best = -np.inf
    ranges = (range(int(f), int(a) + 1) for f, a in zip(floors, avail, strict=True))
    for x in itertools.product(*ranges):
        x = np.array(x, dtype=float)
        if not budget - slack - 1e-9 <= unit @ x <= budget + 1e-9:
            continue
        if unit @ np.abs(x - cur) <= 2 * tr * budget + 1e-9:
            best = max(best, float(w @ x))
    return best


@pytest.mark.parametrize("tr", [0.05, 0.2])
@pytest.mark.parametrize("seed", range(6))
def test_milp_cuts_keep_the_true_optimum(seed, tr):
    # The hull and parity cuts must never cut off the best integer mixture.
    rng = np.random.default_rng(seed)
    avail = rng.integers(3, 9, size=3)
    tokens = seed % 2 == 1
    unit = rng.integers(1, 4, size=3).astype(float) if tokens else np.ones(3)
    budget = int(0.6 * (unit @ avail))
    cur = avail * budget / (unit @ avail)
    if seed % 3 == 0:
        cur = np.floor(cur)
    floors = np.array([1, 0, 1])
    gamma = rng.normal(size=(3, 3))
    p = MixtureProblem(CATS, gamma, np.ones(3), avail, budget, floors=floors, current=cur,
                       trust_region=tr, tokens_per_item=unit if tokens else None)
    slack = unit.max() if tokens else 0.0
    expected = _brute_force(gamma.T @ np.ones(3), avail, budget, unit, slack, floors, cur, tr)
    if expected == -np.inf:
        with pytest.raises(InfeasibleMixture):
            solve_mixture(p)
    else:
        assert solve_mixture(p).objective == pytest.approx(expected, abs=1e-6)


def test_solver_log_does_not_reach_stdout(capfd):
    solve_mixture(problem(integer=False))
    solve_mixture(problem(current=np.array([40.0, 30.0, 30.0]), trust_region=0.05))
    assert capfd.readouterr().out == ""
