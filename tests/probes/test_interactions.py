import json

import numpy as np
import pytest

from instructmix.layout import dumps
from instructmix.probes.interactions import (
    estimate_gamma,
    estimate_regression,
    gamma_from_beta,
    sign_recovery,
)

CATS = ["a", "b", "c", "d"]
# DELTA[i, j]: effect of training on j on the score of i (diagonal > 0).
DELTA = np.array([[0.50, 0.20, -0.10, 0.00],
                  [0.10, 0.40, 0.00, -0.12],
                  [0.00, -0.15, 0.60, 0.18],
                  [0.09, 0.00, 0.00, 0.30]])
TRUE_GAMMA = DELTA / np.diag(DELTA)[:, None]
TRUTH = [{"i": "a", "j": "b", "sign": "+"}, {"i": "a", "j": "c", "sign": "-"},
         {"i": "a", "j": "d", "sign": "0"}, {"i": "b", "j": "d", "sign": "-"},
         {"i": "c", "j": "d", "sign": "+"}, {"i": "d", "j": "b", "sign": "0"}]


def make_results(delta=DELTA, seeds=range(5), noise=0.01, cats=CATS, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    out = []
    for s in seeds:
        base = rng.normal(-2.0, 0.3, len(cats))  # seed-level baseline cancels in pairing
        out.append({"probe": "base", "seed": s, "scores": dict(zip(cats, base, strict=True))})
        for j, cj in enumerate(cats):
            sc = base + delta[:, j] + rng.normal(0, noise, len(cats))
            out.append({"probe": cj, "seed": s, "scores": dict(zip(cats, sc, strict=True))})
    return out


def test_recovers_known_gamma_with_covering_ci():
    est = estimate_gamma(make_results(), CATS, n_boot=500)
    assert est.n_seeds == 5 and not est.unidentified
    assert np.allclose(est.delta, DELTA, atol=0.02)
    assert np.allclose(est.gamma, TRUE_GAMMA, atol=0.1)
    assert np.all(est.lo <= est.gamma + 1e-12) and np.all(est.gamma <= est.hi + 1e-12)
    covered = (est.lo <= TRUE_GAMMA + 1e-9) & (TRUE_GAMMA - 1e-9 <= est.hi)
    assert covered.mean() >= 0.75
    assert np.allclose(np.diag(est.gamma), 1.0)
    json.loads(dumps(est.to_json()))  # strict JSON through the run layout's writer


def test_sign_recovery_clean_case():
    est = estimate_gamma(make_results(noise=1e-4), CATS, n_boot=200)
    rec = sign_recovery(est, TRUTH + [{"i": "zz", "j": "a", "sign": "+"}])
    assert rec["share"] == 1.0 and rec["n"] == len(TRUTH) and rec["skipped"] == 1
    strict = sign_recovery(est, TRUTH, strict=True)
    assert strict["share"] == 1.0
    wrong = sign_recovery(est, [{"i": "a", "j": "b", "sign": "-"}])
    assert wrong["share"] == 0.0 and not wrong["details"][0]["recovered"]


def test_unidentified_row_is_nan_with_reason():
    delta = DELTA.copy()
    delta[2, 2] = -0.05  # training on c did not help c
    est = estimate_gamma(make_results(delta=delta, noise=1e-3), CATS, n_boot=200)
    assert "c" in est.unidentified and "did not help" in est.unidentified["c"]
    assert np.isnan(est.gamma[2]).all() and np.isnan(est.lo[2]).all()
    assert np.isfinite(est.gamma[[0, 1, 3]]).all()
    out = json.loads(dumps(est.to_json()))
    assert out["gamma"][2] == [None] * 4
    rec = sign_recovery(est, [{"i": "c", "j": "d", "sign": "+"}, {"i": "c", "j": "a", "sign": "0"}])
    assert rec["recovered"] == 0 and rec["unidentified"] == 2


def test_noisy_diagonal_gives_unbounded_ci():
    delta = DELTA.copy()
    delta[3, 3] = 0.004  # positive on average, but within the seed noise
    est = estimate_gamma(make_results(delta=delta, noise=0.05, rng_seed=0), CATS, n_boot=300)
    assert "d" not in est.unidentified and est.delta[3, 3] > 0
    assert np.isinf(est.lo[3]).all() and np.isinf(est.hi[3]).all()
    assert any("CI unbounded" in n for n in est.notes)
    # a planted "0" in that row: the interval (-inf, inf) contains 0 but confirms nothing
    rec = sign_recovery(est, [{"i": "d", "j": "b", "sign": "0"}])
    assert abs(est.gamma[3, 1]) >= 0.05 and rec["recovered"] == 0


def test_single_seed_has_nan_ci_and_note():
    est = estimate_gamma(make_results(seeds=[7]), CATS)
    assert est.n_seeds == 1 and np.isnan(est.lo).all() and np.isnan(est.hi).all()
    assert np.allclose(est.gamma, TRUE_GAMMA, atol=0.15)
    assert any("single seed" in n for n in est.notes)


def test_missing_probes_are_named():
    results = [r for r in make_results(seeds=range(3))
               if (r["probe"], r["seed"]) not in {("b", 2), ("base", 1)}]
    with pytest.raises(ValueError, match=r"\('base', 1\).*\('b', 2\)"):
        estimate_gamma(results, CATS)


def test_missing_score_and_duplicates_rejected():
    results = make_results(seeds=range(2))
    del results[3]["scores"]["c"]
    with pytest.raises(ValueError, match="no finite score"):
        estimate_gamma(results, CATS)
    with pytest.raises(ValueError, match="distinct"):
        estimate_gamma(make_results(seeds=[0]) * 2, CATS)


def test_regression_recovers_beta_from_random_mixtures():
    rng = np.random.default_rng(1)
    beta = DELTA / 100  # score change per item
    x = rng.integers(0, 200, size=(80, 4)).astype(float)  # totals vary
    b = np.array([-2.0, -1.5, -3.0, -2.5])
    y = b + x @ beta.T + rng.normal(0, 0.01, size=(80, 4))
    reg = estimate_regression(x, y, CATS, n_boot=200)
    assert np.allclose(reg.beta, beta, atol=2e-4)
    assert ((reg.lo <= beta) & (beta <= reg.hi)).mean() >= 0.75
    assert np.allclose(reg.predict(x[:3]), b + x[:3] @ beta.T, atol=0.02)
    assert reg.predict(x[0]).shape == (4,)
    g = gamma_from_beta(reg)
    assert g.method == "regression" and np.allclose(g.gamma, TRUE_GAMMA, atol=0.1)
    assert sign_recovery(g, TRUTH)["share"] == 1.0
    json.loads(dumps(reg.to_json()))


def test_regression_flags_constant_totals():
    rng = np.random.default_rng(2)
    x = rng.dirichlet(np.ones(4), size=30) * 100
    y = x @ (DELTA / 100).T + rng.normal(0, 0.01, size=(30, 4))
    reg = estimate_regression(x, y, CATS, n_boot=50)
    assert any("same total" in n for n in reg.notes)


def test_barely_learnable_row_is_unidentified_relative_to_the_median_own_effect():
    delta = DELTA.copy()
    delta[3] = [-0.30, 0.20, 0.0, 0.03]  # d gains 0.03 from its own items, ~0.1 x the median
    results = make_results(delta=delta, noise=1e-4)
    loose = estimate_gamma(results, CATS, n_boot=100)
    assert "d" not in loose.unidentified and loose.gamma[3, 0] < -9  # the row blows up
    est = estimate_gamma(results, CATS, n_boot=100, min_self=0.25)
    assert set(est.unidentified) == {"d"} and "barely helped" in est.unidentified["d"]
    assert np.isnan(est.gamma[3]).all() and np.isfinite(est.gamma[:3]).all()
    assert np.allclose(est.gamma[:3], loose.gamma[:3])
    # the typical own effect is the median of the *positive* ones: rows that do not learn at
    # all (b, c here) must not drag the threshold below zero
    delta[1, 1], delta[2, 2] = -0.2, -0.1
    est = estimate_gamma(make_results(delta=delta, noise=1e-4), CATS, n_boot=100, min_self=0.25)
    assert set(est.unidentified) == {"b", "c", "d"} and "barely" in est.unidentified["d"]
