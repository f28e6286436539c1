"""RAISE's action: Plackett–Luce draws against brute force, and the K-means clustering."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch

from instructmix.selectors.rl.action import kmeans, plackett_luce_log_prob, plackett_luce_sample

SCORES = np.array([0.3, -1.2, 1.5, 0.4, -0.5])
GROUPS = np.array([7, 2, 7, 2, 7])  # not contiguous, not starting at 0: group 2 comes first


def _brute_force(scores, groups, per_group):
    """{ordered outcome: probability} by the sequential product formula."""
    per_group_outcomes = []
    for g in sorted(set(groups.tolist())):
        members = [i for i in range(len(scores)) if groups[i] == g]
        outcomes = {}
        for draw in itertools.permutations(members, min(per_group, len(members))):
            p, left = 1.0, list(members)
            for c in draw:
                p *= math.exp(scores[c]) / sum(math.exp(scores[j]) for j in left)
                left.remove(c)
            outcomes[draw] = p
        per_group_outcomes.append(outcomes)
    joint = {}
    for combo in itertools.product(*(o.items() for o in per_group_outcomes)):
        joint[sum((k for k, _ in combo), ())] = math.prod(p for _, p in combo)
    return joint


def test_log_prob_matches_brute_force():
    joint = _brute_force(SCORES, GROUPS, 2)
    assert len(joint) == 2 * 6  # group 2: 2 ordered pairs; group 7: 3 * 2
    assert sum(joint.values()) == pytest.approx(1.0, abs=1e-12)
    scores = torch.tensor(SCORES, dtype=torch.float64, requires_grad=True)
    for outcome, p in joint.items():
        lp = plackett_luce_log_prob(scores, GROUPS, np.array(outcome))
        assert lp.item() == pytest.approx(math.log(p), abs=1e-10)
    lp.backward()  # differentiable: the gradient of a log-prob sums to 0 per group
    assert scores.grad is not None and float(scores.grad.abs().sum()) > 0
    assert float(scores.grad[GROUPS == 2].sum()) == pytest.approx(0.0, abs=1e-12)


def test_sampler_log_prob_and_frequencies_match_brute_force():
    joint = _brute_force(SCORES, GROUPS, 2)
    rng = np.random.default_rng(0)
    draws = 20_000
    counts = Counter()
    for k in range(draws):
        chosen, lp = plackett_luce_sample(SCORES, GROUPS, 2, rng)
        key = tuple(chosen.tolist())
        if k < 50:
            assert chosen.dtype == np.int64
            assert lp == pytest.approx(math.log(joint[key]), abs=1e-10)
        counts[key] += 1
    assert set(counts) <= set(joint)
    for outcome, p in joint.items():
        assert abs(counts[outcome] / draws - p) < 0.01, outcome


def test_sampler_caps_per_group_and_orders_groups():
    rng = np.random.default_rng(1)
    chosen, lp = plackett_luce_sample(SCORES, GROUPS, 5, rng)
    assert sorted(chosen[:2].tolist()) == [1, 3] and sorted(chosen[2:].tolist()) == [0, 2, 4]
    expected = _brute_force(SCORES, GROUPS, 5)[tuple(chosen.tolist())]
    assert lp == pytest.approx(math.log(expected), abs=1e-10)
    chosen, lp = plackett_luce_sample(SCORES, GROUPS, 0, rng)
    assert chosen.size == 0 and lp == 0.0


def test_sampler_is_stable_for_large_scores():
    scores = np.array([1000.0, 999.0, -1000.0, 1001.0])
    chosen, lp = plackett_luce_sample(scores, np.zeros(4, np.int64), 3, np.random.default_rng(2))
    assert np.isfinite(lp) and lp <= 0.0
    torch_lp = plackett_luce_log_prob(torch.tensor(scores), np.zeros(4, np.int64), chosen)
    assert float(torch_lp) == pytest.approx(lp, abs=1e-9)


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    x = np.concatenate([c + rng.normal(size=(30, 2)) for c in centers])
    return x, np.repeat([0, 1, 2], 30)


def test_kmeans_separates_blobs_and_is_deterministic():
    x, truth = _blobs()
    perm = np.random.default_rng(1).permutation(len(x))
    x, truth = x[perm], truth[perm]
    labels = kmeans(x, 3, seed=5)
    assert labels.dtype == np.int64 and set(labels.tolist()) == {0, 1, 2}
    for blob in range(3):  # each blob is exactly one cluster, and the clusters differ
        assert len(set(labels[truth == blob].tolist())) == 1
    assert len({labels[truth == b][0] for b in range(3)}) == 3
    assert np.array_equal(kmeans(x, 3, seed=5), labels)


def test_kmeans_caps_k_and_relabels():
    x, _ = _blobs()
    labels = kmeans(x[:2], 5, seed=0)
    assert sorted(labels.tolist()) == [0, 1]
    same = np.ones((6, 3))  # one distinct point: one cluster, labelled 0
    assert kmeans(same, 3, seed=0).tolist() == [0] * 6
    assert kmeans(np.zeros((0, 3)), 3, seed=0).shape == (0,)
    with pytest.raises(ValueError):
        kmeans(x, 0, seed=0)
