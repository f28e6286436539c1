"""PPO for RAISE: the acquisition policy, acting, GAE, episode files and the learner.

One decision = one training step of an episode: the candidates offered (their states, their
clusters) and the ordered picks drawn by `action.plackett_luce_sample`. The actor scores each
candidate; the critic values the step from the mean of the candidates' states (a pooled
summary of where the run stands). Rewards are filled in by the caller after the step (RAISE:
the change of the validation score), so an episode's return telescopes to its improvement.

The learner takes whole finished episodes (they run in parallel elsewhere), computes GAE per
episode, normalises advantages over the batch and takes `epochs` full-batch steps of the
clipped PPO objective plus a value loss. Its checkpoint holds everything needed to continue
bit-identically: weights, Adam state, round, settings, RNG states and the stats history.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from instructmix.selectors.rl.action import plackett_luce_log_prob, plackett_luce_sample


@dataclass(frozen=True)
class PPOSettings:
    lr: float = 3e-4
    clip: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    epochs: int = 4
    value_coef: float = 0.5
    entropy_coef: float = 0.0  # bonus on the entropy of each cluster's first pick
    hidden: int = 64
    max_grad_norm: float = 0.5


class Policy(nn.Module):
    """Actor (a score per candidate) and critic (a value per step from the pooled states)."""

    def __init__(self, state_dim: int, hidden: int):
        super().__init__()
        self.state_dim, self.hidden = state_dim, hidden
        self.actor = nn.Sequential(nn.Linear(state_dim, hidden), nn.Tanh(),
                                   nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.critic = nn.Sequential(nn.Linear(state_dim, hidden), nn.Tanh(),
                                    nn.Linear(hidden, 1))

    def scores(self, states: torch.Tensor) -> torch.Tensor:
        """[n, d] candidate states -> [n] scores."""
        return self.actor(states).squeeze(-1)

    def value(self, states: torch.Tensor) -> torch.Tensor:
        """[n, d] candidate states -> scalar value of the step."""
        return self.critic(states.mean(dim=0)).squeeze(-1)


@dataclass
class Decision:
    states: np.ndarray  # float32 [n, d]: the candidates offered at this step
    groups: np.ndarray  # int64 [n]: their clusters
    chosen: np.ndarray  # int64 [m]: ordered positions drawn
    log_prob: float
    value: float
    reward: float = 0.0


def act(policy: Policy, states: np.ndarray, groups: np.ndarray, per_group: int,
        rng: np.random.Generator) -> Decision:
    """Score the candidates, draw per cluster, and record the step (reward 0 for now)."""
    states = np.ascontiguousarray(states, dtype=np.float32)
    groups = np.asarray(groups).astype(np.int64)
    with torch.no_grad():
        x = torch.from_numpy(states)
        scores = policy.scores(x).double().numpy()
        value = float(policy.value(x))
    chosen, log_prob = plackett_luce_sample(scores, groups, per_group, rng)
    return Decision(states, groups, chosen, log_prob, value)


def gae(rewards, values, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns of one finished episode (the value after the end is 0)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if rewards.shape != values.shape or rewards.ndim != 1:
        raise ValueError("rewards and values must be 1-D of the same length")
    adv = np.zeros_like(rewards)
    running, next_value = 0.0, 0.0
    for t in range(len(rewards) - 1, -1, -1):
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        adv[t], next_value = running, values[t]
    return adv, adv + values


def _atomic(path: Path, write) -> None:
    """Write through `write(file)` to a temporary sibling, then rename over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
    os.replace(tmp, path)


def save_trajectory(path, decisions: list[Decision], info: dict) -> None:
    """One episode as one .npz file: per-decision arrays concatenated, with offsets."""
    d = decisions[0].states.shape[1] if decisions else 0
    arrays = {
        "states": (np.concatenate([x.states for x in decisions]).astype(np.float32)
                   if decisions else np.zeros((0, d), np.float32)),
        "groups": np.concatenate([x.groups for x in decisions] or [np.zeros(0)]),
        "offsets": np.cumsum([0] + [len(x.states) for x in decisions]),
        "chosen": np.concatenate([x.chosen for x in decisions] or [np.zeros(0)]),
        "chosen_offsets": np.cumsum([0] + [len(x.chosen) for x in decisions]),
        "log_prob": np.array([x.log_prob for x in decisions], np.float64),
        "value": np.array([x.value for x in decisions], np.float64),
        "reward": np.array([x.reward for x in decisions], np.float64),
        "info": np.array(json.dumps(info)),
    }
    arrays["groups"] = arrays["groups"].astype(np.int64)
    arrays["chosen"] = arrays["chosen"].astype(np.int64)
    _atomic(Path(path), lambda fh: np.savez(fh, **arrays))


def load_trajectory(path) -> tuple[list[Decision], dict]:
    """The decisions and info written by `save_trajectory`."""
    with np.load(path, allow_pickle=False) as f:
        a = {k: f[k] for k in f.files}
    off, coff = a["offsets"], a["chosen_offsets"]
    decisions = [
        Decision(states=a["states"][off[i]:off[i + 1]], groups=a["groups"][off[i]:off[i + 1]],
                 chosen=a["chosen"][coff[i]:coff[i + 1]], log_prob=float(a["log_prob"][i]),
                 value=float(a["value"][i]), reward=float(a["reward"][i]))
        for i in range(len(off) - 1)
    ]
    return decisions, json.loads(str(a["info"]))


@dataclass
class _Batch:
    """All decisions of an update as tensors: candidates concatenated, cut by `offsets`."""

    states: torch.Tensor
    offsets: list[int]
    decisions: list[Decision]
    owner: torch.Tensor  # decision index of every candidate
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    mean_return: float


def _batch(episodes: list[list[Decision]], s: PPOSettings) -> _Batch:
    decisions = [d for ep in episodes for d in ep]
    if not decisions:
        raise ValueError("no decisions to learn from")
    if any(len(d.states) == 0 for d in decisions):
        raise ValueError("a decision offered no candidates")
    adv, ret = [], []
    for ep in episodes:
        a, r = gae([d.reward for d in ep], [d.value for d in ep], s.gamma, s.lam)
        adv.append(a)
        ret.append(r)
    adv, ret = np.concatenate(adv), np.concatenate(ret)
    if len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    counts = [len(d.states) for d in decisions]
    return _Batch(
        states=torch.from_numpy(np.concatenate([d.states for d in decisions]).astype(np.float32)),
        offsets=np.cumsum([0] + counts).tolist(),
        decisions=decisions,
        owner=torch.repeat_interleave(torch.arange(len(decisions)), torch.tensor(counts)),
        old_log_prob=torch.tensor([d.log_prob for d in decisions], dtype=torch.float64),
        advantages=torch.from_numpy(adv),
        returns=torch.from_numpy(ret).float(),
        mean_return=float(np.mean([sum(d.reward for d in ep) for ep in episodes])),
    )


def _first_pick_entropy(scores: torch.Tensor, groups: np.ndarray) -> torch.Tensor:
    """Sum over clusters of the entropy of the cluster's first pick (a cheap proxy)."""
    g = torch.from_numpy(groups)
    same = torch.unique(g)[:, None] == g[None, :]
    logp = torch.log_softmax(scores.unsqueeze(0).masked_fill(~same, float("-inf")), dim=1)
    # p * log p with p = 0 outside the cluster; zero the -inf first, else its gradient is nan
    return -(logp.exp() * logp.masked_fill(~same, 0.0)).sum()


class Learner:
    """PPO over finished episodes; `round` counts updates, `history` keeps their stats.

    `rng` (numpy) and `torch_rng` are the learner's own generators for callers (e.g. to draw
    episode seeds); they are saved and restored with the checkpoint.
    """

    def __init__(self, state_dim: int, settings: PPOSettings, seed: int):
        self.state_dim, self.settings, self.seed = state_dim, settings, seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = Policy(state_dim, settings.hidden)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=settings.lr)
        self.rng = np.random.default_rng(seed)
        self.torch_rng = torch.Generator().manual_seed(seed)
        self.round = 0
        self.history: list[dict] = []

    def update(self, episodes: list[list[Decision]]) -> dict:
        """One PPO round on the episodes; returns (and records) its stats."""
        batch = _batch(episodes, self.settings)
        self.policy.train()
        totals = {"policy_loss": 0.0, "value_loss": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0}
        for _ in range(self.settings.epochs):
            for key, val in self._step(batch).items():
                totals[key] += val / self.settings.epochs
        stats = {"round": self.round, "mean_return": batch.mean_return, **totals,
                 "decisions": len(batch.decisions)}
        self.round += 1
        self.history.append(stats)
        return stats

    def _step(self, batch: _Batch) -> dict:
        s = self.settings
        scores = self.policy.scores(batch.states)
        cuts = [scores[a:b] for a, b in zip(batch.offsets[:-1], batch.offsets[1:], strict=True)]
        new_lp = torch.stack([plackett_luce_log_prob(c, d.groups, d.chosen)
                              for c, d in zip(cuts, batch.decisions, strict=True)]).double()
        log_ratio = new_lp - batch.old_log_prob
        ratio = log_ratio.exp()
        surrogate = torch.min(ratio * batch.advantages,
                              ratio.clamp(1 - s.clip, 1 + s.clip) * batch.advantages)
        policy_loss = -surrogate.mean()
        pooled = torch.zeros(len(batch.decisions), batch.states.shape[1])
        pooled.index_add_(0, batch.owner, batch.states)
        pooled /= torch.bincount(batch.owner, minlength=len(batch.decisions))[:, None]
        value_loss = (self.policy.critic(pooled).squeeze(-1) - batch.returns).pow(2).mean()
        loss = policy_loss + s.value_coef * value_loss
        if s.entropy_coef:
            entropy = torch.stack([_first_pick_entropy(c, d.groups)
                                   for c, d in zip(cuts, batch.decisions, strict=True)]).mean()
            loss = loss - s.entropy_coef * entropy
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), s.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            kl = ((ratio - 1) - log_ratio).mean()
            clipped = ((ratio - 1).abs() > s.clip).double().mean()
        return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(),
                "approx_kl": kl.item(), "clip_fraction": clipped.item()}

    def save(self, path) -> None:
        """Everything needed to continue bit-identically, as one file written atomically."""
        state = {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "round": self.round,
            "settings": dataclasses.asdict(self.settings),
            "state_dim": self.state_dim,
            "seed": self.seed,
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": self.torch_rng.get_state(),
            "history": self.history,
        }
        _atomic(Path(path), lambda fh: torch.save(state, fh))

    @classmethod
    def load(cls, path) -> Learner:
        state = torch.load(path, weights_only=True)
        learner = cls(state["state_dim"], PPOSettings(**state["settings"]), state["seed"])
        learner.policy.load_state_dict(state["policy"])
        learner.optimizer.load_state_dict(state["optimizer"])
        learner.round = state["round"]
        learner.history = list(state["history"])
        learner.rng.bit_generator.state = state["numpy_rng"]
        learner.torch_rng.set_state(state["torch_rng"])
        return learner


def load_policy(path) -> Policy:
    """The policy of a saved `Learner`, in eval mode (for the target run)."""
    state = torch.load(path, weights_only=True)
    policy = Policy(state["state_dim"], state["settings"]["hidden"])
    policy.load_state_dict(state["policy"])
    return policy.eval()
