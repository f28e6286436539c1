"""Train stage: the target run on Ray Train + DeepSpeed (`training.train_stage.run_train`).

With a picked strategy (`select.strategy: selfpaced | raise`) the run's batches are chosen
while it trains: rank 0's `BatchPicker` decides (with the trained RAISE policy from the
policy stage, or lowest current loss), the ids are broadcast, every worker reads its slice,
and the ids of every batch are logged (`TRAIN.batch_ids`). It runs for the steps the select
budget buys a static strategy (`picked_steps`).
"""

from __future__ import annotations

import logging

import numpy as np

from instructmix.config import PICKED, RunConfig
from instructmix.layout import POLICY, RunLayout
from instructmix.training.lora import check_adapters
from instructmix.training.train_stage import run_train

log = logging.getLogger("instructmix")


def policy_state(layout: RunLayout) -> dict:
    """The trained RAISE policy's weights (the policy stage's learner)."""
    from instructmix.selectors.rl.ppo import load_policy

    path = layout.path(POLICY.learner)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the raise strategy needs the policy "
                                "stage to have trained a policy")
    return load_policy(str(path)).state_dict()


def picker_for(cfg: RunConfig, layout: RunLayout, strategy: str, seed: int, cand=None):
    """(picker over every usable row, steps) for a picked strategy."""
    from instructmix.selectors.rl.candidates import Candidates, picked_steps

    cand = cand or Candidates.from_run(cfg, layout)
    mode = "policy" if strategy == "raise" else "selfpaced"
    state = policy_state(layout) if strategy == "raise" else None
    tokens = np.asarray(cand.pool.column("n_tokens"))[cand.usable]
    return cand.picker(cfg, mode, None, seed, state), picked_steps(cfg, tokens)


def run_target(cfg: RunConfig, layout: RunLayout) -> dict:
    check_adapters(layout.model_path(), cfg.train.lora, "train.lora")
    strategy = cfg.select.strategy
    if strategy not in PICKED:
        return run_train(cfg, layout)
    picker, steps = picker_for(cfg, layout, strategy, cfg.seed)
    log.info("train: %s picks every batch for %d steps from %d candidates", strategy, steps,
             len(picker))
    return dict(run_train(cfg, layout, picker, steps), picked_by=strategy)
