"""Train stage: Ray Train `TorchTrainer` over the selection, DeepSpeed ZeRO from config.

Checkpoints go to `TRAIN.ray_results` (run name `sft`); re-running the stage with the same
run name and storage path makes Ray Train resume from the latest checkpoint
(`ray.train.get_checkpoint` inside the loop). The final HF export is copied to
`TRAIN.model`, the loss/throughput history to `TRAIN.history`.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import signal
import threading
from pathlib import Path

import pyarrow.parquet as pq

from instructmix.config import RunConfig
from instructmix.layout import TRAIN, RunLayout
from instructmix.runtime import fail_at_step, worker_env
from instructmix.training.loop import FINAL, HISTORY, LoopSpec, train_loop

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
    spec = LoopSpec(model, tc, cfg.seed, rows, fail_at_step())
    env = worker_env(DS_ACCELERATOR="cuda" if tc.use_gpu else "cpu")
    return TorchTrainer(
        train_loop,
        train_loop_config={"spec": spec},
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


def fit_and_release(trainer):
    """`trainer.fit()`, then drop Ray Train's Ctrl-C handler: it holds the handle of the
    run's controller actor, which (with its dataset actors) would otherwise stay alive for
    as long as the driver does."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    try:
        return trainer.fit()
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
        gc.collect()


def run_train(cfg: RunConfig, layout: RunLayout) -> dict:
    train_file = layout.train_rows(cfg.augment.train_on)
    storage = layout.writable(TRAIN.ray_results)
    result = fit_and_release(trainer_for(cfg, layout.model_path(), train_file, storage, "sft"))
    model_dir = layout.writable(TRAIN.model)
    with result.checkpoint.as_directory() as d:
        if not Path(d, FINAL).is_file():
            raise RuntimeError(f"training ended without a final export (last checkpoint {d})")
        shutil.copytree(d, model_dir, dirs_exist_ok=True)
    state = json.loads((model_dir / HISTORY).read_text())
    layout.write_json(TRAIN.history, state["history"])
    if state["batch_ids"]:
        layout.write_json(TRAIN.batch_ids, state["batch_ids"], indent=None)
    last = state["history"][-1] if state["history"] else {}
    summary = {"steps": last.get("step"), "final_loss": last.get("loss"),
               "tokens_per_s": last.get("tokens_per_s"), "resumed_from": state["resumed_from"],
               "model": str(model_dir)}
    log.info("train: %s", summary)
    return summary
