"""One RAISE episode, run inside a Ray Tune trial: a short fine-tune of the start model on a
subset of the pool (`raise.episode_share`), its batches drawn by the current policy; it
saves the trajectory (every decision with its reward) for the learner.

The training is `loop.sft` in the trial's process, the loop the target run uses.
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import asdict, dataclass
from typing import ClassVar

import pyarrow as pa

from instructmix.config import TrainConfig


@dataclass(frozen=True)
class EpisodeSpec:
    name: str
    seed: int
    picker_file: str  # a pickled BatchPicker (mode "policy", recording) with the policy
    model_path: str
    train: TrainConfig
    trajectory_file: str  # where the trajectory goes (.npz)
    fail_once: str | None = None  # testing: fail once, leaving this marker file
    READS: ClassVar = ("picker_file", "model_path")  # see TrialSpec
    WRITES: ClassVar = ("trajectory_file",)

    def to_dict(self) -> dict:
        return dict(asdict(self), train=self.train.model_dump())

    @classmethod
    def from_dict(cls, data: dict) -> EpisodeSpec:
        return cls(**dict(data, train=TrainConfig.model_validate(data["train"])))


def run_episode(config: dict) -> None:
    """Tune trainable (`config["trial"]`: an `EpisodeSpec.to_dict()`)."""
    from ray import tune

    from instructmix.cluster.sweep import this_trial_device
    from instructmix.selectors.rl.ppo import save_trajectory
    from instructmix.training.loop import InProcessContext, LoopSpec, sft

    spec = EpisodeSpec.from_dict(config["trial"])
    if spec.fail_once and not os.path.exists(spec.fail_once):
        open(spec.fail_once, "w").close()
        raise RuntimeError(f"fault injection: episode {spec.name} fails once")
    with open(spec.picker_file, "rb") as f:
        picker = pickle.load(f)
    t0 = time.time()
    rows = pa.table({"id": picker.ids, "messages": picker.messages})
    _, _, state = sft(LoopSpec(spec.model_path, spec.train, spec.seed, len(picker),
                               picker=picker), InProcessContext(rows, this_trial_device()))
    ret = float(sum(d.reward for d in picker.decisions))
    history = picker.valid_history
    save_trajectory(spec.trajectory_file, picker.decisions,
                    {"name": spec.name, "valid_history": history, "return": ret})
    last = state["history"][-1] if state["history"] else {}
    tune.report({"name": spec.name, "return": ret, "steps": state["steps"],
                 "decisions": len(picker.decisions), "train_tokens": last.get("tokens", 0),
                 "first_valid_loss": history[0][1], "final_valid_loss": history[-1][1],
                 "seconds": time.time() - t0, "trajectory": spec.trajectory_file})
