"""One short fine-tune and its scores, run inside a Ray Tune trial.

The training is `loop.sft` (the target run's loop) in the trial's own process with the
plain torch engine: a probe pays no Ray Train start-up. The trial reports per-category
response loss and token accuracy on `eval_file` (probes) and, with `generate`, exact match
(compare arms).
"""

from __future__ import annotations

import json
import os
import pickle
import time
from dataclasses import asdict, dataclass
from typing import ClassVar

from instructmix.config import TrainConfig


@dataclass(frozen=True)
class TrialSpec:
    """Everything one trial needs. Tune stores it as a plain dict (`to_dict`), which the
    trial validates back (`from_dict`): a misspelt or mistyped setting fails the trial
    by name."""

    name: str
    seed: int
    train_file: str  # ordered Parquet rows to train on
    eval_file: str  # Parquet rows to score
    model_path: str  # HF model to start from
    train: TrainConfig  # the in-process settings (see `in_process`)
    generate: bool = False  # also generate answers and score exact match
    max_new_tokens: int = 16
    score_batch_size: int = 64  # rows per scoring batch (`eval.batch_size`)
    save_to: str | None = None  # write the trained model there (HF format)
    picker_file: str | None = None  # a pickled BatchPicker choosing every batch
    fail_once: str | None = None  # testing: fail once, leaving this marker file
    # the fields naming files it reads and writes (moved for it on a remote run)
    READS: ClassVar = ("train_file", "eval_file", "model_path", "picker_file")
    WRITES: ClassVar = ("save_to",)

    def to_dict(self) -> dict:
        return dict(asdict(self), train=self.train.model_dump())

    @classmethod
    def from_dict(cls, data: dict) -> TrialSpec:
        return cls(**dict(data, train=TrainConfig.model_validate(data["train"])))


def in_process(tc: TrainConfig, **changes) -> TrainConfig:
    """The train section for `sft` in one process with the plain torch engine, with
    `changes` applied and validated (an unknown or mistyped key raises)."""
    fixed = {"num_workers": 1, "deepspeed": False, "torch_threads": 1, "log_batch_ids": False}
    return TrainConfig.model_validate({**tc.model_dump(), **fixed, **changes})


def _score(spec: TrialSpec, model, tok) -> dict:
    import pyarrow.parquet as pq

    from instructmix.evaluation.scoring import score_model
    from instructmix.evaluation.summary import summarise

    columns = ["id", "category", "messages", "answer"]
    if "meta" in pq.read_schema(spec.eval_file).names:
        columns.append("meta")  # testbed chains: scored by depth
    rows = pq.read_table(spec.eval_file, columns=columns).to_pylist()
    scored = score_model(model, tok, rows, spec.score_batch_size, spec.max_new_tokens,
                         spec.train.max_seq_len, generate_answers=spec.generate)
    return summarise(scored, rows)


def fine_tune_and_score(config: dict) -> None:
    """Tune trainable (`config["trial"]`: a `TrialSpec.to_dict()`); reports per-category
    loss, token accuracy and (with `generate`) exact match."""
    import pyarrow.parquet as pq
    from ray import tune

    from instructmix.cluster.sweep import this_trial_device
    from instructmix.training.loop import InProcessContext, LoopSpec, sft

    spec = TrialSpec.from_dict(config["trial"])
    if spec.fail_once and not os.path.exists(spec.fail_once):
        open(spec.fail_once, "w").close()
        raise RuntimeError(f"fault injection: trial {spec.name} fails once")
    t0 = time.time()
    table, picker = pq.read_table(spec.train_file), None
    if spec.picker_file:
        with open(spec.picker_file, "rb") as f:
            picker = pickle.load(f)
    rows = len(picker) if picker is not None else table.num_rows
    engine, tok, state = sft(LoopSpec(spec.model_path, spec.train, spec.seed, rows,
                                      picker=picker), InProcessContext(table, this_trial_device()))
    train_s = time.time() - t0
    if spec.save_to:
        engine.export(spec.save_to, 0, tok)  # LoRA: merged into plain weights
    model = engine._module().eval()
    summary = _score(spec, model, tok)
    per_cat = summary["per_category"]
    last = state["history"][-1] if state["history"] else {}
    tune.report({"name": spec.name, "seed": spec.seed,
                 "loss": {c: v["loss"] for c, v in per_cat.items()},
                 "token_accuracy": {c: v["token_accuracy"] for c, v in per_cat.items()},
                 "exact_match": {c: v["exact_match"] for c, v in per_cat.items()
                                 if v["exact_match"] is not None},
                 "steps": state["steps"], "train_tokens": last.get("tokens", 0),
                 "train_seconds": train_s, "seconds": time.time() - t0,
                 "final_train_loss": last.get("loss"),
                 # a JSON string: Tune's loggers take numbers and dicts, not lists of dicts
                 "picked": (json.dumps(picker.picked_by_window(state["batch_ids"]))
                            if picker is not None else None),
                 **{k: summary[k] for k in ("by_depth", "by_complexity") if k in summary}})
