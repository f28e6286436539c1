"""PPO for RAISE: GAE by hand, a bandit it must learn, exact resume, episode files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from instructmix.selectors.rl.action import plackett_luce_log_prob
from instructmix.selectors.rl.ppo import (
    Decision,
    Learner,
    Policy,
    PPOSettings,
    act,
    gae,
    load_policy,
    load_trajectory,
    save_trajectory,
)


def test_gae_by_hand():
    rewards, values = [1.0, 0.0, 2.0], [0.5, 1.0, 1.5]
    adv, ret = gae(rewards, values, gamma=1.0, lam=1.0)  # reward-to-go minus value
    assert np.allclose(ret, [3.0, 2.0, 2.0])
    assert np.allclose(adv, [2.5, 1.0, 0.5])
    adv, ret = gae(rewards, values, gamma=1.0, lam=0.0)  # one-step TD errors
    assert np.allclose(adv, [1.0 + 1.0 - 0.5, 0.0 + 1.5 - 1.0, 2.0 - 1.5])
    assert np.allclose(ret, adv + np.array(values))
    adv, _ = gae(rewards, values, gamma=0.5, lam=1.0)
    assert np.allclose(adv, [1.0 + 0.5 * 0.0 + 0.25 * 2.0 - 0.5, 0.5 * 2.0 - 1.0, 0.5])


def test_act_records_a_consistent_decision():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(12, 3)).astype(np.float32)
    groups = np.repeat([0, 1, 2], 4)
    policy = Policy(3, 16)
    d = act(policy, states, groups, 2, rng)
    assert d.chosen.dtype == np.int64 and len(d.chosen) == 6 and d.reward == 0.0
    assert [int(groups[c]) for c in d.chosen] == [0, 0, 1, 1, 2, 2]
    with torch.no_grad():
        x = torch.from_numpy(states)
        lp = plackett_luce_log_prob(policy.scores(x), groups, d.chosen)
        assert d.value == pytest.approx(float(policy.value(x)), abs=1e-6)
    assert d.log_prob == pytest.approx(float(lp), abs=1e-5)


BANDIT = np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4, dtype=np.float32)  # 4 good, 4 bad


def _p_good(policy: Policy) -> float:
    with torch.no_grad():
        return float(torch.softmax(policy.scores(torch.from_numpy(BANDIT)), 0)[:4].sum())


@pytest.fixture
def one_thread():
    """Tiny ops: one intra-op thread is much faster than two on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_ppo_learns_the_better_arm(one_thread):
    learner = Learner(2, PPOSettings(lr=1e-3), seed=0)
    rng = np.random.default_rng(0)
    groups = np.zeros(8, np.int64)
    assert abs(_p_good(learner.policy) - 0.5) < 0.15
    for _ in range(40):
        episodes = []
        for _ in range(16):
            d = act(learner.policy, BANDIT, groups, 1, rng)
            d.reward = float(d.chosen[0] < 4)
            episodes.append([d])
        stats = learner.update(episodes)
    assert _p_good(learner.policy) > 0.9
    assert stats["mean_return"] > 0.7 and stats["decisions"] == 16
    assert learner.round == 40 and len(learner.history) == 40


def _episodes(seed: int, n_episodes=3, steps=4):
    """Episodes from a fixed behaviour policy, with varying candidate counts."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    behaviour = Policy(5, 8)
    out = []
    for _ in range(n_episodes):
        ep = []
        for _ in range(steps):
            n = int(rng.integers(6, 12))
            d = act(behaviour, rng.normal(size=(n, 5)), rng.integers(0, 3, n), 2, rng)
            d.reward = float(rng.normal())
            ep.append(d)
        out.append(ep)
    return out


def test_resume_is_bit_identical(tmp_path, one_thread):
    settings = PPOSettings(hidden=16, entropy_coef=0.01)
    batches = [_episodes(s) for s in (1, 2, 3)]
    straight = Learner(5, settings, seed=7)
    for b in batches[:2]:
        straight.update(b)
    path = tmp_path / "learner.pt"
    straight.save(path)
    assert not (tmp_path / "learner.pt.tmp").exists()
    resumed = Learner.load(path)
    straight.update(batches[2])
    resumed.update(batches[2])
    pairs = zip(straight.policy.state_dict().values(), resumed.policy.state_dict().values(),
                strict=True)
    for a, b in pairs:
        assert torch.isfinite(a).all() and torch.equal(a, b)
    assert resumed.round == straight.round == 3
    assert resumed.history == straight.history and resumed.settings == settings
    assert resumed.rng.integers(1 << 30) == straight.rng.integers(1 << 30)
    assert torch.equal(torch.rand(3, generator=resumed.torch_rng),
                       torch.rand(3, generator=straight.torch_rng))
    policy = load_policy(path)
    assert not policy.training
    x = torch.from_numpy(batches[0][0][0].states)
    with torch.no_grad():
        assert not torch.equal(policy.scores(x), straight.policy.scores(x))  # round 2 vs 3


def test_learners_with_the_same_seed_agree_and_other_seeds_differ():
    a, b, c = (Learner(5, PPOSettings(hidden=8), seed=s) for s in (1, 1, 2))
    pa, pb, pc = (list(x.policy.parameters())[0] for x in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_trajectory_round_trip(tmp_path):
    decisions = [d for ep in _episodes(4, n_episodes=1, steps=3) for d in ep]
    assert len({len(d.states) for d in decisions}) > 1
    info = {"episode": 3, "seed": 11, "scores": [0.1, 0.2]}
    path = tmp_path / "episode.npz"
    save_trajectory(path, decisions, info)
    loaded, loaded_info = load_trajectory(path)
    assert loaded_info == info and len(loaded) == len(decisions)
    for a, b in zip(decisions, loaded, strict=True):
        assert np.array_equal(a.states, b.states) and b.states.dtype == np.float32
        assert np.array_equal(a.groups, b.groups) and b.groups.dtype == np.int64
        assert np.array_equal(a.chosen, b.chosen) and b.chosen.dtype == np.int64
        assert (a.log_prob, a.value, a.reward) == (b.log_prob, b.value, b.reward)
    save_trajectory(path, [], {})
    assert load_trajectory(path) == ([], {})


def test_update_refuses_no_decisions():
    with pytest.raises(ValueError):
        Learner(2, PPOSettings(), seed=0).update([[]])
    assert Decision(np.zeros((1, 2), np.float32), np.zeros(1, np.int64),
                    np.zeros(1, np.int64), 0.0, 0.0).reward == 0.0
