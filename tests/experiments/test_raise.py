"""RAISE end to end on real Ray: policy episodes as a Ray Tune sweep (a failed episode is
retried), the learner resuming after its saved round, and the policy's choices reaching the
batches of the Ray Train + DeepSpeed target run (rank 0 decides, every worker trains its
slice); the picked arms of compare run at the static arms' steps."""

import numpy as np
import pytest
import torch

from instructmix.experiments.policy_stage import run_policy
from instructmix.layout import POLICY, TRAIN, RunLayout
from instructmix.pipeline import BY_NAME, run_stage
from instructmix.runtime import FAIL_TRIAL
from instructmix.selectors.rl.candidates import picked_steps
from instructmix.selectors.rl.ppo import Learner
from instructmix.selectors.rl.state import PCA_DIMS
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow
CATS = ["reverse", "upper", "rev_upper"]
RAISE = {"rounds": 1, "episodes_per_round": 4, "episode_steps": 4, "clusters": 2,
         "candidates_per_cluster": 8, "reward_every": 2, "refresh_every": 2,
         "refresh_rows": 16, "valid_rows": 8, "hidden": 8}


def _config(run, **changes):
    sections = dict(
        pool={"testbed": {"items_per_category": 60, "eval_per_category": 4,
                          "categories": CATS}},
        probes={"valid_per_category": 6},
        select={"strategy": "raise", "budget": 48},
        train={"num_workers": 2, "deepspeed": True, "zero_stage": 2, "micro_batch_size": 4,
               "epochs": 1, "max_steps": None, "checkpoint_every": 100},
        compare={"strategies": [], "seeds": [0]})
    for key, value in changes.items():
        sections[key] = dict(sections.get(key, {}), **value)
    return tiny_config(run, **sections)


def test_policy_episodes_on_tune_then_resume(ray_local, tmp_path, monkeypatch):
    run = tmp_path / "run"
    cfg = _config(run, **{"raise": RAISE})
    for stage in ("pool", "model", "probe"):
        run_stage(cfg, BY_NAME[stage])
    monkeypatch.setenv(FAIL_TRIAL, "r000-e01")
    run_stage(cfg, BY_NAME["policy"])

    layout = RunLayout(run, "policy")
    rounds = layout.read_json(POLICY.rounds)
    # one round of 4 episodes, all Tune trials; the one that failed once was retried
    assert len(rounds) == 1 and rounds[0]["failed"] == []
    assert sorted(e["name"] for e in rounds[0]["episodes"]) == [f"r000-e0{k}" for k in range(4)]
    assert (layout.path(POLICY.episodes) / "round-000" / "r000-e01.failed-once").exists()
    assert len(list((layout.path(POLICY.tune) / "round-000").glob("*/result.json"))) == 4
    for e in rounds[0]["episodes"]:
        # the return telescopes: sum of rewards = P(final) - P(start), P = -validation loss
        assert e["return"] == pytest.approx(e["first_valid_loss"] - e["final_valid_loss"],
                                            abs=1e-9)
        assert e["steps"] == 4
    assert Learner.load(str(layout.path(POLICY.learner))).round == 1

    # the learner resumes after its saved round: a second call trains only round 2
    monkeypatch.delenv(FAIL_TRIAL)
    more = cfg.model_copy(update={"raise_": cfg.raise_.model_copy(update={"rounds": 2})})
    run_policy(more, layout)
    again = layout.read_json(POLICY.rounds)
    assert [r["round"] for r in again] == [0, 1] and again[0] == rounds[0]
    learner = Learner.load(str(layout.path(POLICY.learner)))
    assert learner.round == 2 and len(learner.history) == 2


def _upper_policy(names: list[str], dim: int, hidden: int) -> Learner:
    """A policy scoring rows of category 'upper' ~100 and every other row ~0."""
    learner = Learner(dim, _settings(hidden), seed=0)
    actor = learner.policy.actor
    with torch.no_grad():
        for layer in (actor[0], actor[2], actor[4]):
            layer.weight.zero_()
            layer.bias.zero_()
        actor[0].weight[0, PCA_DIMS + names.index("upper")] = 5.0
        actor[2].weight[0, 0] = 5.0
        actor[4].weight[0, 0] = 100.0
    return learner


def _settings(hidden: int):
    from instructmix.selectors.rl.ppo import PPOSettings

    return PPOSettings(hidden=hidden)


def test_policy_choices_reach_the_ray_train_batches(ray_local, tmp_path):
    run = tmp_path / "run"
    # one cluster, every candidate offered: the policy alone decides what a batch holds
    cfg = _config(run, **{"raise": dict(RAISE, clusters=1, candidates_per_cluster=1000)})
    for stage in ("pool", "model", "probe", "policy", "select", "augment"):
        run_stage(cfg, BY_NAME[stage])
    layout = RunLayout(run)
    names = sorted(CATS)
    learner = _upper_policy(names, PCA_DIMS + len(names) + 1 + 3 + 1 + 5, RAISE["hidden"])
    learner.save(str(layout.path(POLICY.learner)))
    summary = run_stage(cfg, BY_NAME["train"])["summary"]

    pool = layout.read_pool()
    category = dict(zip(pool.column("id").to_pylist(), pool.column("category").to_pylist(),
                        strict=True))
    held = layout.validation_ids()
    batches = layout.read_json(TRAIN.batch_ids)
    usable = np.array([i not in held for i in pool.column("id").to_pylist()])
    tokens = np.asarray(pool.column("n_tokens"))[usable]
    assert summary["picked_by"] == "raise"
    assert len(batches) == summary["steps"] == picked_steps(cfg, tokens) == 48 // 8
    for batch in batches:
        assert len(batch) == 8 and len(set(batch)) == 8  # 2 workers x 4 rows, no repeats
        assert {category[i] for i in batch} == {"upper"} and not set(batch) & held
    history = layout.read_json(TRAIN.picker)["valid_history"]
    assert [s for s, _ in history] == [0, 2, 4, 6]  # reward_every 2, and the final model
