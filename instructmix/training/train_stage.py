"""Train stage: Ray Train `TorchTrainer` over the selection, DeepSpeed ZeRO from config.

Checkpoints go to `train/ray_results/sft`; re-running the stage with the same run name and
storage path makes Ray Train resume from the latest checkpoint (`ray.train.get_checkpoint`
inside the loop). The final HF export is copied to `train/model`, the loss/throughput
history to `train/history.json`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from instructmix.config import RunConfig
from instructmix.training.loop import FINAL, HISTORY, train_loop
from instructmix.training.model_factory import model_path

log = logging.getLogger("instructmix")


def trainer_for(cfg: RunConfig, model: str, train_file: Path, storage: Path, name: str):
    """A TorchTrainer over one ordered Parquet file of chat rows."""
    import ray.data
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    tc = cfg.train
    rows = pq.read_metadata(train_file).num_rows
    # Materialised here, so the workers' iteration needs no read tasks: with every CPU
    # given to a training worker, a lazy read would wait for a CPU forever.
    ds = ray.data.read_parquet(str(train_file), columns=["id", "messages"]).materialize()
    env = {"DS_ACCELERATOR": "cuda" if tc.use_gpu else "cpu",
           "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    return TorchTrainer(
        train_loop,
        train_loop_config={"model_path": model, "train": tc.model_dump(), "seed": cfg.seed,
                           "rows": rows},
        torch_config=TorchConfig(backend="nccl" if tc.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=tc.use_gpu,
                                     resources_per_worker={"CPU": tc.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=str(storage.resolve()),
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=tc.max_failures),
                             worker_runtime_env={"env_vars": env}),
        datasets={"train": ds},
        dataset_config=DataConfig(datasets_to_split=[],
                                  execution_options=ExecutionOptions(preserve_order=True)),
    )


def run_train(cfg: RunConfig, out: Path) -> dict:
    os.environ["DS_ACCELERATOR"] = "cuda" if cfg.train.use_gpu else "cpu"
    run_dir = Path(cfg.run_dir)
    train_file = (run_dir / "select" / "train.parquet" if cfg.augment.train_on == "plain"
                  else run_dir / "augment" / "train.parquet")
    trainer = trainer_for(cfg, model_path(cfg.run_dir), train_file, out / "ray_results", "sft")
    result = trainer.fit()
    with result.checkpoint.as_directory() as d:
        if not Path(d, FINAL).is_file():
            raise RuntimeError(f"training ended without a final export (last checkpoint {d})")
        shutil.copytree(d, out / "model", dirs_exist_ok=True)
    state = json.loads((out / "model" / HISTORY).read_text())
    (out / "history.json").write_text(json.dumps(state["history"], indent=1))
    if state["batch_ids"]:
        (out / "batch_ids.json").write_text(json.dumps(state["batch_ids"]))
    last = state["history"][-1] if state["history"] else {}
    summary = {"steps": last.get("step"), "final_loss": last.get("loss"),
               "tokens_per_s": last.get("tokens_per_s"), "resumed_from": state["resumed_from"],
               "model": str(out / "model")}
    log.info("train: %s", summary)
    return summary
