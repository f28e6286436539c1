"""Policy stage: trains the RAISE policy (METHODS §2) when `raise` is a strategy of the run.

Round r: `raise.episodes_per_round` episodes run in parallel as Ray Tune trials, each a
short fine-tune (`raise.episode_steps`) of the start model on its own random subset of
the usable pool (`raise.episode_share`), its batches drawn by the current policy; then the
PPO learner updates on their trajectories and is saved (`POLICY.learner`). Re-running the
stage resumes after the last saved round. A failed episode is retried
(`raise.max_failures`); a round whose episodes all fail stops the stage.
Writes `POLICY.rounds` (per round: episode returns, validation losses, PPO statistics,
failures) and `POLICY.cost` (episode steps, tokens and seconds).
"""

from __future__ import annotations

import logging
import math
import pickle

import numpy as np

from instructmix.cluster.sweep import per_trial, run_trials
from instructmix.config import RunConfig, TrainConfig
from instructmix.experiments.episode import EpisodeSpec, run_episode
from instructmix.experiments.trial import in_process
from instructmix.layout import POLICY, RunLayout
from instructmix.runtime import fail_trial
from instructmix.selectors.rl.candidates import Candidates, global_batch

log = logging.getLogger("instructmix")


def episode_train(cfg: RunConfig, rows: int) -> TrainConfig:
    """The target run's settings in one process for `raise.episode_steps` steps over
    `rows` candidates."""
    batch, steps = global_batch(cfg), cfg.raise_.episode_steps
    epochs = math.ceil(steps / max(1, rows // batch))
    return in_process(cfg.train, micro_batch_size=batch, epochs=epochs, max_steps=steps)


def _learner(cfg: RunConfig, layout: RunLayout, dim: int):
    from instructmix.selectors.rl.ppo import Learner, PPOSettings

    path = layout.path(POLICY.learner)
    if path.is_file():
        learner = Learner.load(str(path))
        log.info("policy: resuming after round %d (%s)", learner.round, path)
        return learner
    rc = cfg.raise_
    settings = PPOSettings(lr=rc.lr, clip=rc.clip, epochs=rc.ppo_epochs, hidden=rc.hidden)
    return Learner(dim, settings, cfg.seed)


def _episodes(cfg: RunConfig, layout: RunLayout, cand: Candidates, learner, r: int) -> list:
    rc, usable = cfg.raise_, np.flatnonzero(cand.usable)
    size = max(global_batch(cfg), int(round(rc.episode_share * len(usable))))
    folder = layout.writable(POLICY.episodes) / f"round-{r:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    policy_state = {k: v.detach().clone() for k, v in learner.policy.state_dict().items()}
    specs = []
    for e in range(rc.episodes_per_round):
        seed = cfg.seed * 100_003 + r * 1_000 + e
        rows = np.random.default_rng([seed, 17]).choice(usable, min(size, len(usable)),
                                                         replace=False)
        picker = cand.picker(cfg, "policy", rows, seed, policy_state, record=True)
        name = f"r{r:03d}-e{e:02d}"
        with open(folder / f"{name}.picker.pkl", "wb") as f:
            pickle.dump(picker, f)
        fail = str(folder / f"{name}.failed-once") if fail_trial() == name else None
        specs.append(EpisodeSpec(name, seed, str(folder / f"{name}.picker.pkl"),
                                 layout.model_path(), episode_train(cfg, len(rows)),
                                 str(folder / f"{name}.trajectory.npz"), fail))
    return specs


def _round(cfg: RunConfig, layout: RunLayout, cand: Candidates, learner) -> dict:
    from instructmix.selectors.rl.ppo import load_trajectory

    r = learner.round
    specs = _episodes(cfg, layout, cand, learner, r)
    rc = cfg.raise_
    resources = per_trial(rc.cpus_per_episode, rc.gpus_per_episode)
    done, failed = run_trials(f"round-{r:03d}", specs, run_episode,
                              layout.writable(POLICY.tune), resources, None, rc.max_failures)
    if not done:
        raise RuntimeError(f"policy: every episode of round {r} failed: {failed}")
    done = sorted(done, key=lambda d: d["trial"])
    stats = learner.update([load_trajectory(d["trajectory"])[0] for d in done])
    keys = ("return", "first_valid_loss", "final_valid_loss", "steps", "train_tokens",
            "seconds")
    return {"round": r, "episodes": [dict({k: d[k] for k in keys}, name=d["trial"])
                                     for d in done],
            "failed": failed, "ppo": stats}


def run_policy(cfg: RunConfig, layout: RunLayout) -> dict:
    if not cfg.uses_raise:
        layout.write_json(POLICY.skipped, {"reason": "no strategy is raise"})
        return {"skipped": "no strategy in select/compare is raise"}
    from instructmix.selectors.rl.state import state_dim

    cand = Candidates.from_run(cfg, layout)
    learner = _learner(cfg, layout, state_dim(len(cand.names)))
    rounds = layout.read_json(POLICY.rounds, [])[: learner.round]
    while learner.round < cfg.raise_.rounds:
        record = _round(cfg, layout, cand, learner)
        # the record first: a crash before the learner's save re-runs the round and the
        # slice above drops its stale record; the other order could lose a round's record
        rounds.append(record)
        layout.write_json(POLICY.rounds, rounds)
        learner.save(str(layout.writable(POLICY.learner)))
        returns = [e["return"] for e in record["episodes"]]
        log.info("policy: round %d/%d mean return %.4f over %d episodes", record["round"] + 1,
                 cfg.raise_.rounds, float(np.mean(returns)), len(returns))
    episodes = [e for r in rounds for e in r["episodes"]]
    cost = {"rounds": len(rounds), "episodes": len(episodes),
            "failed_episodes": sum(len(r["failed"]) for r in rounds),
            "episode_steps": int(sum(e["steps"] for e in episodes)),
            "episode_train_tokens": int(sum(e["train_tokens"] for e in episodes)),
            "episode_seconds": round(sum(e["seconds"] for e in episodes), 1)}
    layout.write_json(POLICY.cost, cost)
    first, last = rounds[0]["episodes"], rounds[-1]["episodes"]
    return dict(cost, first_round_return=float(np.mean([e["return"] for e in first])),
                last_round_return=float(np.mean([e["return"] for e in last])))
