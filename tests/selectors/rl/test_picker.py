"""`BatchPicker`: per-cluster quotas, self-paced and policy choices, rewards from the
validation loss, picks, checkpoint state and pickling. `measure` stands in for the model's
loss (the picker's protocol: messages -> one loss per message)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

from instructmix.selectors.rl.picker import BatchPicker, PickSettings
from instructmix.selectors.rl.ppo import Policy
from instructmix.selectors.rl.state import DYNAMIC, PCA_DIMS, Pca, static_features

NAMES = ["a", "b", "c"]
HIDDEN = 8


def _message(text: str) -> list[dict]:
    return [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]


def _index(messages) -> list[int]:
    return [int(m[0]["content"][1:]) for m in messages]


class Measure:
    """Row i ("q<i>") has loss row_loss[i]; the validation rows ("v<k>") have losses whose
    mean is the next of `levels` at each call (the model improves between measurements)."""

    def __init__(self, row_loss, levels=None):
        self.row_loss = np.asarray(row_loss, dtype=float)
        self.levels = list(levels) if levels is not None else None
        self.valid_calls = 0
        self.row_calls = 0

    def __call__(self, messages):
        if messages[0][0]["content"].startswith("v"):
            level = self.levels[self.valid_calls] if self.levels else 2.0
            self.valid_calls += 1
            return [level - 0.5, level + 0.5]
        self.row_calls += 1
        return [float(self.row_loss[i]) for i in _index(messages)]


def _picker(sizes=(6, 6, 6), mode="selfpaced", per_cluster=2, candidates=10,
            refresh_every=1, refresh_rows=100, reward_every=1, seed=0, policy=None,
            record=False, cats=None, stage_features=True) -> BatchPicker:
    n = sum(sizes)
    clusters = np.repeat(np.arange(len(sizes)) * 5 + 3, sizes)  # labels need not be 0..k-1
    if cats is None:
        cats = np.array([NAMES[i % 3] for i in range(n)], dtype=object)
    rng = np.random.default_rng(42)
    emb = rng.normal(size=(n, 6))
    static = static_features(emb, Pca.fit(emb, 0), cats, NAMES, rng.integers(0, 9, n), {},
                             rng.integers(1, 50, n))
    settings = PickSettings(mode, per_cluster, candidates, refresh_every, refresh_rows,
                            reward_every, stage_features, record)
    return BatchPicker([f"id{i}" for i in range(n)], [_message(f"q{i}") for i in range(n)],
                       static, clusters, [_message("v0"), _message("v1")], settings, seed,
                       policy.state_dict() if policy is not None else None, HIDDEN)


def _policy(seed=0) -> Policy:
    torch.manual_seed(seed)
    return Policy(PCA_DIMS + len(NAMES) + 5 + len(DYNAMIC), HIDDEN)


def _favouring(category: str) -> Policy:
    """A policy whose score is ~50 for rows of `category` and ~0 for every other row."""
    policy = _policy()
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
        policy.actor[0].weight[0, PCA_DIMS + NAMES.index(category)] = 10.0
        policy.actor[2].weight[0, 0] = 10.0
        policy.actor[4].weight[0, 0] = 50.0
    return policy


def _cluster_of(picker: BatchPicker, positions) -> list[int]:
    return [int(picker.clusters[p]) for p in positions]


@pytest.mark.parametrize("mode", ["selfpaced", "policy"])
def test_choose_takes_per_cluster_rows_from_every_cluster(mode):
    losses = np.random.default_rng(0).permutation(18).astype(float)
    picker = _picker(mode=mode, candidates=4, policy=_policy(), refresh_rows=5)
    measure = Measure(losses)
    assert picker.batch_size == 6 and len(picker) == 18
    for step in range(5):
        positions = picker.choose(step, 5, measure)
        assert positions.dtype.kind == "i" and len(positions) == picker.batch_size
        assert len(set(positions.tolist())) == len(positions)
        clusters = _cluster_of(picker, positions)
        assert {c: clusters.count(c) for c in set(clusters)} == {3: 2, 8: 2, 13: 2}
        picker.commit(positions)
        batch = picker.batch(positions)
        assert batch["id"] == [f"id{p}" for p in positions]
        assert _index(batch["messages"]) == positions.tolist()
    assert picker.decisions == []  # record=False: nothing kept


def test_selfpaced_takes_the_lowest_losses_of_each_cluster():
    losses = np.random.default_rng(1).permutation(18).astype(float) + 0.5
    picker = _picker(mode="selfpaced", candidates=6)  # every row of a cluster is offered
    measure = Measure(losses)
    for step in range(3):
        positions = picker.choose(step, 3, measure)
        for k in range(3):
            members = np.arange(6 * k, 6 * k + 6)
            want = set(members[np.argsort(losses[members])[:2]].tolist())
            assert {p for p in positions.tolist() if 6 * k <= p < 6 * k + 6} == want
    assert measure.row_calls == 3  # refresh_every=1
    assert np.array_equal(picker.dyn.loss, losses) and (picker.dyn.scored_at == 2).all()


def test_selfpaced_imputes_the_mean_for_rows_never_scored():
    picker = _picker(mode="selfpaced", candidates=6, refresh_every=1000, reward_every=1000)
    loss = np.array([1.0, np.nan, 5.0, 9.0, 7.0, 6.0,  # cluster 3: NaN -> mean (~4.19) < 5
                     2.0, 3.0, 4.0, 0.5, 1.5, 6.5,
                     np.nan, 0.2, 8.0, np.nan, 0.1, 9.0])  # cluster 13: 0.1, 0.2 beat 4
    picker.dyn.loss[:] = loss
    assert 1.0 < np.nanmean(loss) < 5.0

    def never(messages):
        raise AssertionError("no measurement is due at step 1")

    positions = picker.choose(1, 10, never).tolist()
    assert sorted(positions) == [0, 1, 9, 10, 13, 16]


@pytest.mark.parametrize("category", NAMES)
def test_policy_picks_the_rows_it_scores_highest(category):
    # every cluster holds two rows of each category: the quota can be met from any one
    picker = _picker(mode="policy", candidates=6, policy=_favouring(category), record=True)
    measure = Measure(np.arange(18.0))
    want = {i for i in range(18) if NAMES[i % 3] == category}
    for step in range(4):
        positions = picker.choose(step, 4, measure)
        assert set(positions.tolist()) == want
        picker.commit(positions)
    assert len(picker.decisions) == 4
    d = picker.decisions[-1]
    assert d.states.shape == (18, PCA_DIMS + len(NAMES) + 5 + len(DYNAMIC))
    # the two favoured rows of a cluster tie: their order has probability 1/2; the rest ~1
    assert d.log_prob == pytest.approx(3 * math.log(0.5), abs=1e-6)
    assert sorted(d.groups.tolist()) == sorted(np.repeat([0, 1, 2], 6).tolist())


def test_policy_states_carry_losses_and_picks():
    losses = np.arange(1.0, 19.0)
    picker = _picker(mode="policy", candidates=6, policy=_policy(), record=True,
                     refresh_every=1000)
    measure = Measure(losses)
    picker.choose(0, 10, measure)  # scores every row (refresh_rows >= 18)
    picker.commit(np.array([0, 0, 4]))
    picker.choose(1, 10, measure)
    d = picker.decisions[-1]
    loss_col, stale_col, picks_col = (d.states[:, -len(DYNAMIC) + k] for k in (2, 3, 4))
    assert np.allclose(np.sort(loss_col), losses / losses.mean(), atol=1e-6)
    assert np.allclose(stale_col, 1 / 10)  # scored at step 0, now step 1 of 10
    assert np.allclose(np.sort(picks_col), [0.0] * 16 + [math.log(2), math.log(3)])
    step_share = d.states[:, -len(DYNAMIC)]
    assert np.allclose(step_share, 0.1)


def test_commit_counts_picks():
    picker = _picker()
    picker.commit(np.array([0, 0, 3]))
    picker.commit([3, 17])
    want = np.zeros(18, dtype=np.int64)
    want[[0, 3, 17]] = [2, 2, 1]
    assert np.array_equal(picker.dyn.picks, want)


LEVELS = [10.0, 9.0, 7.5, 7.0, 6.9, 6.0, 5.0]


def test_rewards_are_the_change_of_validation_loss_by_hand():
    picker = _picker(mode="policy", policy=_policy(), record=True, reward_every=2,
                     refresh_every=100)
    measure = Measure(np.arange(18.0), LEVELS)
    for step in range(6):
        picker.commit(picker.choose(step, 6, measure))
    assert [d.reward for d in picker.decisions] == pytest.approx([0, 1.0, 0, 1.5, 0, 0])
    picker.finish(6, measure)  # the last measurement rewards the last decision
    rewards = [d.reward for d in picker.decisions]
    assert rewards == pytest.approx([0.0, 10 - 9, 0.0, 9 - 7.5, 0.0, 7.5 - 7])
    assert sum(rewards) == pytest.approx(LEVELS[0] - LEVELS[3])  # telescopes
    assert picker.valid_history == [[0, 10.0], [2, 9.0], [4, 7.5], [6, 7.0]]
    assert measure.valid_calls == 4


@pytest.mark.parametrize("reward_every, steps", [(1, 4), (2, 5), (3, 6), (4, 3)])
def test_rewards_credit_the_decision_before_each_measurement(reward_every, steps):
    picker = _picker(mode="policy", policy=_policy(), record=True,
                     reward_every=reward_every, refresh_every=100)
    measure = Measure(np.arange(18.0), LEVELS)
    for step in range(steps):
        picker.commit(picker.choose(step, steps, measure))
    picker.finish(steps, measure)
    measured = [s for s in range(steps) if s % reward_every == 0] + [steps]
    want = np.zeros(steps)
    for k, s in enumerate(measured[1:], start=1):
        want[s - 1] += LEVELS[k - 1] - LEVELS[k]
    assert [d.reward for d in picker.decisions] == pytest.approx(want.tolist())
    assert [v[0] for v in picker.valid_history] == measured


def test_selfpaced_records_no_decisions_but_keeps_the_validation_history():
    picker = _picker(mode="selfpaced", reward_every=2, record=True)
    measure = Measure(np.arange(18.0), LEVELS)
    for step in range(3):
        picker.choose(step, 3, measure)
    picker.finish(3, measure)
    assert picker.decisions == []
    assert picker.valid_history == [[0, 10.0], [2, 9.0], [3, 7.5]]


def _run(picker, steps, start=0, total=12):
    measure = Measure(np.random.default_rng(5).permutation(18).astype(float))
    out = []
    for step in range(start, start + steps):
        positions = picker.choose(step, total, measure)
        picker.commit(positions)
        out.append(positions.tolist())
    return out


@pytest.mark.parametrize("mode", ["selfpaced", "policy"])
def test_state_dict_round_trip_continues_identically(mode):
    kw = dict(mode=mode, policy=_policy(), candidates=4, refresh_every=5, refresh_rows=7,
              reward_every=3)
    straight = _picker(**kw, seed=1)
    _run(straight, 4)
    state = json.loads(json.dumps(straight.state_dict()))  # checkpoints are JSON
    resumed = _picker(**kw, seed=99)  # the seed no longer matters: the RNG state is restored
    resumed.load_state_dict(state)
    assert resumed.valid_history == straight.valid_history
    assert np.array_equal(resumed.dyn.loss, straight.dyn.loss, equal_nan=True)
    assert np.array_equal(resumed.dyn.picks, straight.dyn.picks)
    assert np.isnan(straight.dyn.loss).any() and not np.isnan(straight.dyn.loss).all()
    want = _run(straight, 6, start=4)
    assert _run(resumed, 6, start=4) == want
    assert _run(_picker(**kw, seed=99), 6, start=4) != want  # without the state: differs


def _ray_like_round_trip(obj):
    """Pickle protocol 5 with the arrays' buffers handed back read-only, as Ray's object
    store does."""
    buffers = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    return pickle.loads(data, buffers=[b.raw().toreadonly() for b in buffers])


@pytest.mark.parametrize("mode", ["selfpaced", "policy"])
def test_pickled_picker_still_works(mode):
    kw = dict(mode=mode, policy=_policy(), candidates=4, refresh_every=2, refresh_rows=7,
              reward_every=2, record=True)
    original = _picker(**kw)
    _run(original, 3)
    if mode == "policy":
        assert original._policy is not None  # built while choosing; not pickled
    copy = _ray_like_round_trip(original)
    assert not copy.static.flags.writeable  # the simulation did hand back read-only arrays
    assert copy._policy is None
    for a in (copy.dyn.loss, copy.dyn.scored_at, copy.dyn.picks):
        assert a.flags.writeable
    assert _run(copy, 4, start=3) == _run(original, 4, start=3)
    assert np.array_equal(copy.dyn.picks, original.dyn.picks)
    plain = pickle.loads(pickle.dumps(original))
    assert _run(plain, 2, start=7) == _run(original, 2, start=7)


@pytest.mark.parametrize("mode", ["selfpaced", "policy"])
def test_top_up_keeps_the_batch_size_when_a_cluster_is_small(mode):
    picker = _picker(sizes=(1, 5, 6), mode=mode, policy=_policy(), candidates=10)
    measure = Measure(np.arange(12.0))
    for step in range(4):
        positions = picker.choose(step, 4, measure)
        assert len(positions) == picker.batch_size == 6
        assert len(set(positions.tolist())) == 6
        assert 0 in positions  # the one row of the small cluster
        clusters = _cluster_of(picker, positions)
        assert clusters.count(8) >= 2 and clusters.count(13) >= 2
        assert clusters.count(8) + clusters.count(13) == 5


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="picker mode"):
        _picker(mode="greedy")
