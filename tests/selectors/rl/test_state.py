"""RAISE's state: static columns (PCA semantics, category, complexity, tier, length) and the
dynamic columns (stage, difficulty, staleness, picks), checked column by column."""

from __future__ import annotations

import json

import numpy as np
import pytest

from instructmix.selectors.rl.state import (
    DYNAMIC,
    PCA_DIMS,
    TIER_NAMES,
    Dynamic,
    Pca,
    state_dim,
    state_matrix,
    static_features,
)

NAMES = ["code", "math", "summary"]
CATS = np.array(["math", "code", "summary", "math", "code", "summary"], dtype=object)
COMPLEXITY = np.array([0.0, 3.0, 7.0, 1.0, 15.0, 2.0])
N_TOKENS = np.array([10, 20, 99, 5, 40, 0])
TIERS = {"code": "base", "math": "dependent"}  # summary missing: middle


def _static(embedding=None, tiers=TIERS):
    if embedding is None:
        embedding = np.random.default_rng(0).normal(size=(len(CATS), 8))
    pca = Pca.fit(embedding, seed=0)
    return static_features(embedding, pca, CATS, NAMES, COMPLEXITY, tiers, N_TOKENS)


def test_column_counts_agree_with_state_dim():
    static = _static()
    c = len(NAMES)
    assert static.shape == (len(CATS), PCA_DIMS + c + 1 + len(TIER_NAMES) + 1)
    assert static.dtype == np.float32
    assert static.shape[1] + len(DYNAMIC) == state_dim(c)
    dyn = Dynamic.empty(len(CATS))
    states = state_matrix(static, dyn, np.arange(len(CATS)), 0, 10, 1.0, True)
    assert states.shape == (len(CATS), state_dim(c)) and states.dtype == np.float32
    assert state_dim(c + 4) - state_dim(c) == 4


def test_category_tier_complexity_and_length_columns():
    static = _static()
    c = len(NAMES)
    cat = static[:, PCA_DIMS:PCA_DIMS + c]
    want = np.array([[NAMES.index(x) == k for k in range(c)] for x in CATS], dtype=np.float32)
    assert np.array_equal(cat, want)
    comp = static[:, PCA_DIMS + c]
    assert np.allclose(comp, np.log1p(COMPLEXITY) / np.log1p(15.0), atol=1e-6)
    assert comp.max() == pytest.approx(1.0) and comp[0] == 0.0
    tier = static[:, PCA_DIMS + c + 1:PCA_DIMS + c + 4]
    want_tier = {"code": [1, 0, 0], "summary": [0, 1, 0], "math": [0, 0, 1]}
    assert np.array_equal(tier, np.array([want_tier[x] for x in CATS], dtype=np.float32))
    length = static[:, -1]
    assert np.allclose(length, np.log1p(N_TOKENS) / np.log1p(99.0), atol=1e-6)
    assert length[2] == pytest.approx(1.0) and length[5] == 0.0


def test_no_dag_gives_zero_tier_columns():
    static = _static(tiers={})
    c = len(NAMES)
    assert not static[:, PCA_DIMS + c + 1:PCA_DIMS + c + 4].any()
    assert np.array_equal(static[:, :PCA_DIMS + c + 1], _static()[:, :PCA_DIMS + c + 1])


def test_pca_pads_a_small_embedding_with_zeros():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 5)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5]) + 7.0
    pca = Pca.fit(x, seed=0)
    z = pca.project(x)
    assert z.shape == (20, PCA_DIMS) and z.dtype == np.float32
    assert np.abs(z[:, :5]).sum(0).all()  # every real axis is used
    assert not z[:, 5:].any()
    assert float(np.sqrt((z[:, 0] ** 2).mean())) == pytest.approx(1.0, rel=1e-5)
    var = z[:, :5].var(axis=0)
    assert np.all(np.diff(var) <= 1e-6)  # principal axes: decreasing variance
    cov = np.cov(z[:, :5].T)
    assert np.allclose(cov - np.diag(np.diag(cov)), 0.0, atol=1e-4)  # uncorrelated


def test_pca_projects_a_wide_embedding_on_32_axes():
    rng = np.random.default_rng(2)
    direction = rng.normal(size=64)
    t = rng.normal(size=80)
    x = t[:, None] * direction + 0.01 * rng.normal(size=(80, 64))
    z = Pca.fit(x, seed=0).project(x)
    assert z.shape == (80, PCA_DIMS) and np.abs(z[:, PCA_DIMS - 1]).sum() > 0
    # the first axis carries the one real direction: it follows t (up to sign)
    assert abs(np.corrcoef(z[:, 0], t)[0, 1]) > 0.999
    assert np.abs(z[:, 1:]).max() < 0.1 * np.abs(z[:, 0]).max()


def test_pca_fit_on_a_sample_is_seeded():
    x = np.random.default_rng(3).normal(size=(50, 6))
    a, b = Pca.fit(x, seed=4, sample=20), Pca.fit(x, seed=4, sample=20)
    assert np.array_equal(a.axes, b.axes) and np.array_equal(a.mean, b.mean)
    assert not np.allclose(a.mean, x.mean(0))  # fitted on 20 of the 50 rows


def _dyn():
    return Dynamic(loss=np.array([1.0, 2.0, np.nan, 9.0, np.nan]),
                   scored_at=np.array([4, 0, -1, 8, -1], dtype=np.int64),
                   picks=np.array([0, 1, 3, 0, 0], dtype=np.int64))


def test_state_matrix_dynamic_columns():
    static = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    rows = np.array([2, 0, 1, 4])
    s = state_matrix(static, _dyn(), rows, step=10, total=20, valid_rel=0.8,
                     stage_features=True)
    assert s.shape == (4, 4 + len(DYNAMIC))
    assert np.array_equal(s[:, :4], static[rows])
    step_share, valid_rel, loss, stale, picks = s[:, 4:].T
    assert np.allclose(step_share, 0.5) and np.allclose(valid_rel, 0.8)
    # mean of the known losses of every candidate (1, 2, 9), not only of `rows`: 4
    assert np.allclose(loss, [1.0, 0.25, 0.5, 1.0])
    assert np.allclose(stale, [1.0, (10 - 4) / 20, (10 - 0) / 20, 1.0])
    assert np.allclose(picks, np.log1p([3, 0, 1, 0]))


def test_state_matrix_without_stage_features_zeroes_the_stage_columns():
    static = np.ones((5, 2), dtype=np.float32)
    rows = np.arange(5)
    on = state_matrix(static, _dyn(), rows, 10, 20, 0.8, stage_features=True)
    off = state_matrix(static, _dyn(), rows, 10, 20, 0.8, stage_features=False)
    assert not off[:, 2:4].any()
    assert on[:, 2:4].all()
    assert np.array_equal(off[:, 4:], on[:, 4:]) and np.array_equal(off[:, :2], on[:, :2])


def test_state_matrix_before_any_score():
    dyn = Dynamic.empty(3)
    s = state_matrix(np.zeros((3, 1), np.float32), dyn, np.arange(3), 0, 0, 1.0, True)
    assert np.isfinite(s).all()
    assert np.allclose(s[:, 3], 1.0) and np.allclose(s[:, 4], 1.0)  # loss = mean, stale 1
    assert np.allclose(s[:, 1], 0.0)  # step 0 of a zero-step run: no division by zero


def test_dynamic_round_trip_with_nan():
    dyn = _dyn()
    data = json.loads(json.dumps(dyn.to_dict()))  # JSON: how checkpoints store it
    assert data["loss"][2] is None
    back = Dynamic.from_dict(data)
    assert np.array_equal(back.loss, dyn.loss, equal_nan=True)
    assert np.array_equal(back.scored_at, dyn.scored_at)
    assert np.array_equal(back.picks, dyn.picks)
    assert back.loss.dtype == np.float64
    assert back.scored_at.dtype == np.int64 and back.picks.dtype == np.int64
    for a in (back.loss, back.scored_at, back.picks):
        assert a.flags.writeable
    empty = Dynamic.empty(4)
    assert np.isnan(empty.loss).all() and (empty.scored_at == -1).all() and not empty.picks.any()
