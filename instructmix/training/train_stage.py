"""Train stage: Ray Train `TorchTrainer` over the selection, DeepSpeed ZeRO from config.

Checkpoints go to `TRAIN.ray_results` (run name `sft`; in the bucket when run_dir is
`s3://…`, instructmix.storage.ray_storage); re-running the stage with the same
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
from instructmix.storage import portable, ray_storage
from instructmix.training.loop import FINAL, HISTORY, LoopSpec, checkpoint_files, train_loop

log = logging.getLogger("instructmix")


def trainer_for(cfg: RunConfig, model: str, train_file: Path, storage: Path, name: str,
                picker=None, max_steps: int | None = None):
    """A TorchTrainer over one ordered Parquet file of chat rows, or (with a `picker`) over
    the batches the picker chooses for `max_steps` steps."""
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    tc = cfg.train if max_steps is None else cfg.train.model_copy(update={
        "max_steps": max_steps, "epochs": max(cfg.train.epochs, max_steps)})
    if picker is None:
        rows, datasets = pq.read_metadata(train_file).num_rows, {"train": _put_rows(train_file)}
    else:
        rows, datasets = len(picker), {}
    spec = LoopSpec(portable(model), tc, cfg.seed, rows, fail_at_step(), picker)
    env = worker_env(DS_ACCELERATOR="cuda" if tc.use_gpu else "cpu")
    storage_path, storage_fs = ray_storage(storage)  # a remote run's: straight to the bucket
    return TorchTrainer(
        train_loop,
        train_loop_config={"spec": spec},
        torch_config=TorchConfig(backend="nccl" if tc.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=tc.use_gpu,
                                     resources_per_worker={"CPU": tc.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=storage_path,
                             storage_filesystem=storage_fs,
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=tc.max_failures),
                             worker_runtime_env={"env_vars": env}),
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=[],
                                  execution_options=ExecutionOptions(preserve_order=True)),
    )


def _put_rows(train_file: Path, block_rows: int = 4096):
    """The ordered training rows as a dataset of blocks the driver puts in the object store,
    one block of `block_rows` at a time (driver memory: one block). No read tasks: with
    every CPU given to a training worker a lazy read would wait forever, and on a busy
    cluster starting read tasks took longer than the whole read."""
    import pyarrow as pa
    import ray
    import ray.data

    batches = pq.ParquetFile(train_file).iter_batches(batch_size=block_rows,
                                                      columns=["id", "messages"])
    refs = [ray.put(pa.Table.from_batches([b])) for b in batches]
    return ray.data.from_arrow_refs(refs or [ray.put(pq.read_table(
        train_file, columns=["id", "messages"]))])


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


def run_train(cfg: RunConfig, layout: RunLayout, picker=None,
              max_steps: int | None = None) -> dict:
    """Trains on the selection (or its augmentation); with a `picker`, on the batches it
    chooses for `max_steps` steps (its validation losses go to `TRAIN.picker`)."""
    train_file, whole_run = layout.train_rows(cfg.augment.train_on)
    if whole_run and picker is None:  # the file holds every pass: train it once
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 1})})
    storage = layout.writable(TRAIN.ray_results)
    result = fit_and_release(trainer_for(cfg, layout.model_path(), train_file, storage, "sft",
                                         picker, max_steps))
    model_dir = layout.writable(TRAIN.model)
    with checkpoint_files(result.checkpoint) as d:
        if not Path(d, FINAL).is_file():
            raise RuntimeError(f"training ended without a final export (last checkpoint {d})")
        shutil.copytree(d, model_dir, dirs_exist_ok=True)
    state = json.loads((model_dir / HISTORY).read_text())
    layout.write_json(TRAIN.history, state["history"])
    if state["batch_ids"]:
        layout.write_json(TRAIN.batch_ids, state["batch_ids"], indent=None)
    if state.get("picker"):
        layout.write_json(TRAIN.picker, {"valid_history": state["picker"]["valid_history"]})
    last = state["history"][-1] if state["history"] else {}
    summary = {"steps": last.get("step"), "final_loss": last.get("loss"),
               "tokens_per_s": last.get("tokens_per_s"), "resumed_from": state["resumed_from"],
               "model": str(model_dir)}
    log.info("train: %s", summary)
    return summary
