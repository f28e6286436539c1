"""The one SFT loop, run by every Ray Train worker (DeepSpeed ZeRO or plain torch) and, in
one process, by every probe and compare trial.

Data order: every worker reads the whole (ordered) selection and takes its slice of each
global batch (rank r gets rows [r*B, (r+1)*B) of global batch t), so the global order the
select stage wrote — shuffled or a curriculum — is exactly the order of training. The last
incomplete global batch of an epoch is dropped.

With a `picker` (RAISE, self-paced), batches are chosen while training instead: at every
step each worker asks the picker (which may score rows with the current model, all workers
together), rank 0's choice is broadcast, and every worker takes its slice of that batch.
The ids of every batch are then always logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from instructmix import storage
from instructmix.cluster import quiet_progress
from instructmix.config import TrainConfig
from instructmix.runtime import FAIL_AT_STEP
from instructmix.training.engine import Engine

log = logging.getLogger("instructmix")
HISTORY = "train_state.json"  # inside checkpoints and the export: history, resumes, batch ids
FINAL = "final.json"


def _sum_over_workers(values: list[float], world: int) -> list[float]:
    if world == 1:
        return values
    import torch

    from instructmix.training.response import summed_over_workers

    return summed_over_workers(torch.tensor(values, dtype=torch.float64)).tolist()


class RayTrainContext:
    """The loop's view of a Ray Train worker: rank, data shard, checkpoints, reports."""

    checkpoints = True

    def __init__(self):
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()  # cuda:N with train.use_gpu
        # Ray Data logs each epoch's pass over the shard ("execution finished") per worker
        logging.getLogger("ray.data").setLevel(logging.WARNING)

    def latest_checkpoint(self):
        import ray.train

        return ray.train.get_checkpoint()

    def global_batches(self, global_batch: int):
        import ray.train

        shard = ray.train.get_dataset_shard("train")
        yield from shard.iter_batches(batch_size=global_batch, batch_format="numpy",
                                      drop_last=True, prefetch_batches=1)

    def report(self, metrics: dict, directory: str | None) -> None:
        import ray.train
        from ray.train import Checkpoint

        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(directory)
                         if directory else None)
        if directory:  # wait until Ray Train has registered it: a worker killed later
            # resumes from it, so at most one interval is trained twice
            ray.train.get_all_reported_checkpoints(
                consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)


class InProcessContext:
    """The same loop in the calling process (a Ray Tune trial): one worker, rows from an
    ordered Arrow table, no checkpoints (a probe is short; a failed trial is retried), on
    `device` (`sweep.this_trial_device`)."""

    rank, world, checkpoints = 0, 1, False

    def __init__(self, table, device: str = "cpu"):
        self.table, self.device = table.select(["id", "messages"]), device

    def latest_checkpoint(self):
        return None

    def global_batches(self, global_batch: int):
        for start in range(0, self.table.num_rows - global_batch + 1, global_batch):
            part = self.table.slice(start, global_batch)
            yield {"id": part.column("id").to_pylist(),
                   "messages": part.column("messages").to_pylist()}

    def report(self, metrics: dict, directory: str | None) -> None:
        pass


@dataclass(frozen=True)
class LoopSpec:
    """What one SFT run needs: the model to start from, the train section, the seed, the
    number of rows in the ordered training set, and (testing) a step to fail after once."""

    model_path: str
    train: TrainConfig
    seed: int
    rows: int
    fail_at_step: int | None = None
    picker: Any = None  # chooses each global batch (see `_picked_stream`); None: the order


def _broadcast(value, world: int):
    """Rank 0's `value` on every worker."""
    if world == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def train_loop(config: dict) -> None:
    """Per-worker entry point for TorchTrainer (`config["spec"]`: a LoopSpec): trains, then
    exports the HF model."""
    quiet_progress()
    ctx = RayTrainContext()
    spec = config["spec"]  # its model: on this node (a remote run's is fetched)
    result = sft(replace(spec, model_path=storage.on_this_node(spec.model_path)), ctx)
    if result is None:
        return  # finished before an interruption; the export is already reported
    engine, tokenizer, state = result
    with tempfile.TemporaryDirectory() as d:
        engine.export(d, ctx.rank, tokenizer)
        if ctx.rank == 0:
            Path(d, HISTORY).write_text(json.dumps(state))
            Path(d, FINAL).write_text(json.dumps({"steps": state["steps"]}))
        history = state["history"]
        ctx.report(dict(history[-1], final=True) if history else {"final": True},
                   d if ctx.rank == 0 else None)


def _total_steps(spec: LoopSpec, world: int) -> tuple[int, int]:
    """(steps per epoch, total steps)."""
    tc = spec.train
    steps_per_epoch = spec.rows // (tc.micro_batch_size * world)
    if steps_per_epoch == 0:
        raise ValueError(f"selection of {spec.rows} rows is smaller than one global "
                         f"batch ({tc.micro_batch_size} x {world} workers)")
    total = steps_per_epoch * tc.epochs
    return steps_per_epoch, min(total, tc.max_steps) if tc.max_steps else total


@contextlib.contextmanager
def checkpoint_files(ckpt):
    """A Ray Train checkpoint as a local directory. A remote one is downloaded into a folder
    of this process's own: `Checkpoint.as_directory` shares one temp folder among the workers
    of a node, and one worker's clean-up can delete it while another is about to read it
    ("Checkpoint directory ... does not exist")."""
    import pyarrow.fs

    if isinstance(ckpt.filesystem, pyarrow.fs.LocalFileSystem):
        yield ckpt.path
        return
    with tempfile.TemporaryDirectory(prefix="instructmix-checkpoint-") as d:
        yield ckpt.to_directory(d)


def _resume(ctx, engine, state: dict) -> tuple[int, dict] | None:
    """(step, state) from the latest checkpoint; None when it says training finished."""
    ckpt = ctx.latest_checkpoint()
    if not ckpt:
        return 0, state
    with checkpoint_files(ckpt) as d:
        if os.path.exists(os.path.join(d, FINAL)):
            return None
        step = engine.load(d)
        state = json.loads(Path(d, HISTORY).read_text())
    state["resumed_from"].append(step)
    return step, state


class _Window:
    """Loss and tokens since the last log line; one history record per `log_every` steps."""

    def __init__(self, world: int):
        self.world, self.t0, self.tokens, self.losses = world, time.time(), 0, []

    def add(self, loss: float, tokens: int) -> None:
        self.losses.append(loss)
        self.tokens += tokens

    def record(self, step: int, epoch: int, lr: float) -> dict:
        # mean loss over the window and the workers; non-padding tokens of all workers
        loss_sum, seen = _sum_over_workers([sum(self.losses) / len(self.losses),
                                            self.tokens], self.world)
        self.losses = []
        return {"step": step, "epoch": epoch, "loss": loss_sum / self.world, "lr": lr,
                "tokens": int(seen), "tokens_per_s": seen / (time.time() - self.t0)}


def _checkpoint(ctx, engine, state: dict, step: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        engine.save(d, step, ctx.rank)
        if ctx.rank == 0:
            Path(d, HISTORY).write_text(json.dumps(state))
        history = state["history"]
        ctx.report(dict(history[-1]) if history else {"step": step}, d)


def _ordered_stream(ctx, global_batch: int, steps_per_epoch: int, step: int):
    """(epoch, batch) of the ordered rows from `step` on, epoch after epoch."""
    while True:
        epoch, skip = divmod(step, steps_per_epoch)
        for k, batch in enumerate(ctx.global_batches(global_batch)):
            if k < skip:
                continue
            yield epoch, batch
            step += 1
            if (k + 1) == steps_per_epoch:
                break


def _picked_stream(spec: LoopSpec, ctx, measure, step: int, total: int):
    """(0, batch) chosen by `spec.picker` at each step: `choose(step, total, measure)` on
    every worker (`measure(messages)` -> losses is collective), rank 0's positions broadcast,
    then `commit(positions)` everywhere so every picker keeps the same state. After the
    last step the loop calls `finish(step, measure)` (the last reward)."""
    picker = spec.picker
    while True:
        positions = _broadcast(picker.choose(step, total, measure), ctx.world)
        picker.commit(positions)
        yield 0, picker.batch(positions)
        step += 1


def _run_steps(spec: LoopSpec, ctx, engine, tokenizer, step: int, state: dict) -> None:
    from instructmix.training.collate import as_messages, collate
    from instructmix.training.response import worker_losses

    tc, rank, world = spec.train, ctx.rank, ctx.world
    B, (steps_per_epoch, total) = tc.micro_batch_size, _total_steps(spec, world)
    window, picker = _Window(world), spec.picker
    if step >= total:
        return
    if picker is None:
        stream = _ordered_stream(ctx, B * world, steps_per_epoch, step)
    else:
        def measure(messages):
            return worker_losses(engine._module(), tokenizer, messages, tc.max_seq_len,
                                 rank, world)

        stream = _picked_stream(spec, ctx, measure, step, total)
    for epoch, batch in stream:
        if (tc.log_batch_ids or picker is not None) and rank == 0:
            state["batch_ids"].append([str(i) for i in batch["id"]])
        rows = batch["messages"][rank * B : (rank + 1) * B]
        inputs = collate(tokenizer, [as_messages(m) for m in rows], tc.max_seq_len)
        window.add(engine.step(inputs), int(inputs["attention_mask"].sum()))
        step += 1
        if picker is not None and step == total:
            picker.finish(step, measure)
        if step % tc.log_every == 0 or step == total:
            rec = window.record(step, epoch, engine.lr())
            state["history"].append(rec)
            if rank == 0 and ctx.checkpoints:
                # a logger, not print: Ray Train shows a worker's print twice (its logger
                # and a copy to Ray's stdout)
                log.info("train: step %d/%d loss %.4f %.0f tokens/s", step, total,
                         rec["loss"], rec["tokens_per_s"])
        if ctx.checkpoints and (step % tc.checkpoint_every == 0 or step == total):
            if picker is not None:
                state["picker"] = picker.state_dict()
            _checkpoint(ctx, engine, state, step)
        if step == spec.fail_at_step and not state["resumed_from"]:
            raise RuntimeError(f"fault injection: {FAIL_AT_STEP}={step}")
        if step >= total:
            break


def sft(spec: LoopSpec, ctx):
    """The SFT loop. Returns (engine, tokenizer, state), or None when a checkpoint says it
    finished."""
    import torch
    from transformers import AutoModelForCausalLM

    from instructmix.training.collate import load_tokenizer
    from instructmix.training.lora import add_adapters

    tc = spec.train
    torch.set_num_threads(tc.torch_threads)
    torch.manual_seed(spec.seed)
    tokenizer = load_tokenizer(spec.model_path)
    model = AutoModelForCausalLM.from_pretrained(spec.model_path, dtype=torch.float32)
    if model.loss_type is None:  # GPT2LMHeadModel's class name names no loss: the one it uses
        model.loss_type = "ForCausalLM"  # anyway, without a warning per process
    if tc.lora is not None:
        model = add_adapters(model, tc.lora)
    total = _total_steps(spec, ctx.world)[1]
    engine = Engine(model, tc, total, ctx.world, ctx.device)
    resumed = _resume(ctx, engine, {"history": [], "resumed_from": [], "batch_ids": [],
                                    "steps": total})
    if resumed is None:
        return None
    step, state = resumed
    if spec.picker is not None and state.get("picker"):
        spec.picker.load_state_dict(state["picker"])
    _run_steps(spec, ctx, engine, tokenizer, step, state)
    return engine, tokenizer, state
