"""The one SFT loop, run by every Ray Train worker (DeepSpeed ZeRO or plain torch).

Data order: every worker reads the whole (ordered) selection and takes its slice of each
global batch (rank r gets rows [r*B, (r+1)*B) of global batch t), so the global order the
select stage wrote — shuffled or a curriculum — is exactly the order of training. The last
incomplete global batch of an epoch is dropped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from pathlib import Path

HISTORY = "history.json"
FINAL = "final.json"


def lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def deepspeed_config(tc: dict) -> dict:
    return {
        "train_micro_batch_size_per_gpu": tc["micro_batch_size"],
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 1.0,
        "optimizer": {"type": "AdamW", "params": {"lr": tc["lr"], "torch_adam": True,
                                                  "weight_decay": tc["weight_decay"]}},
        "zero_optimization": {"stage": tc["zero_stage"]},
        "bf16": {"enabled": tc["precision"] == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


class Engine:
    """forward/backward/step, checkpoint and export for DeepSpeed or plain torch."""

    def __init__(self, model, tc: dict, total_steps: int, world: int):
        import torch

        self.tc, self.deepspeed = tc, tc["deepspeed"]
        schedule = lr_lambda(tc["warmup_steps"], total_steps)
        if self.deepspeed:
            import deepspeed

            self.model, _, _, self.sched = deepspeed.initialize(
                model=model, model_parameters=model.parameters(), config=deepspeed_config(tc),
                lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule))
        else:
            import ray.train.torch

            self.model = ray.train.torch.prepare_model(model) if world > 1 else model
            self.opt = torch.optim.AdamW(self.model.parameters(), lr=tc["lr"],
                                         weight_decay=tc["weight_decay"])
            self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, schedule)
        self.torch = torch

    def step(self, batch) -> float:
        if self.deepspeed:
            loss = self.model(**batch).loss
            self.model.backward(loss)
            self.model.step()
        else:
            loss = self.model(**batch).loss
            loss.backward()
            self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    def lr(self) -> float:
        return float(self.sched.get_last_lr()[0])

    def save(self, path: str, step: int, rank: int) -> None:
        if self.deepspeed:
            self.model.save_checkpoint(path, tag="ckpt", client_state={"step": step})
        elif rank == 0:
            self.torch.save({"model": self._module().state_dict(), "opt": self.opt.state_dict(),
                             "sched": self.sched.state_dict(), "step": step},
                            os.path.join(path, "plain.pt"))

    def load(self, path: str) -> int:
        if self.deepspeed:
            _, state = self.model.load_checkpoint(path, tag="ckpt")
            return int(state["step"])
        state = self.torch.load(os.path.join(path, "plain.pt"), weights_only=False)
        self._module().load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        return int(state["step"])

    def _module(self):
        return getattr(self.model, "module", self.model)

    def export(self, path: str, rank: int, tokenizer) -> None:
        """HF safetensors in fp32 on rank 0; ZeRO-3 first gathers the partitioned weights."""
        module = self._module()
        gather = contextlib.nullcontext()
        if self.deepspeed and self.tc["zero_stage"] == 3:
            import deepspeed

            gather = deepspeed.zero.GatheredParameters(list(module.parameters()),
                                                       modifier_rank=None)
        with gather:
            state = {k: v.detach().float().clone() for k, v in module.state_dict().items()}
        if rank == 0:
            module.config.torch_dtype = "float32"
            module.save_pretrained(path, state_dict=state)
            tokenizer.save_pretrained(path)


def _sum_over_workers(values: list[float], world: int) -> list[float]:
    if world == 1:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


class RayTrainContext:
    """The loop's view of a Ray Train worker: rank, data shard, checkpoints, reports."""

    checkpoints = True

    def __init__(self):
        import ray.train

        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()

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


class InProcessContext:
    """The same loop in the calling process (a Ray Tune trial): one worker, rows from an
    ordered Arrow table, no checkpoints (a probe is short; a failed trial is retried)."""

    rank, world, checkpoints = 0, 1, False

    def __init__(self, table):
        self.table = table.select(["id", "messages"])

    def latest_checkpoint(self):
        return None

    def global_batches(self, global_batch: int):
        for start in range(0, self.table.num_rows - global_batch + 1, global_batch):
            part = self.table.slice(start, global_batch)
            yield {"id": part.column("id").to_pylist(),
                   "messages": part.column("messages").to_pylist()}

    def report(self, metrics: dict, directory: str | None) -> None:
        pass


def train_loop(config: dict) -> None:
    """Per-worker entry point for TorchTrainer: trains, then exports the HF model."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    ctx = RayTrainContext()
    result = sft(config, ctx)
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


def sft(config: dict, ctx):
    """The SFT loop. `config`: model_path, train (TrainConfig dict), seed, rows (selection
    size). Returns (engine, tokenizer, state), or None when a checkpoint says it finished."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from instructmix.training.collate import as_messages, collate

    tc, seed = config["train"], config["seed"]
    torch.set_num_threads(tc["torch_threads"])
    torch.manual_seed(seed)
    rank, world = ctx.rank, ctx.world
    tokenizer = AutoTokenizer.from_pretrained(config["model_path"])
    model = AutoModelForCausalLM.from_pretrained(config["model_path"], dtype=torch.float32)
    B = tc["micro_batch_size"]
    steps_per_epoch = config["rows"] // (B * world)
    if steps_per_epoch == 0:
        raise ValueError(f"selection of {config['rows']} rows is smaller than one global "
                         f"batch ({B} x {world} workers)")
    total = steps_per_epoch * tc["epochs"]
    if tc["max_steps"]:
        total = min(total, tc["max_steps"])
    engine = Engine(model, tc, total, world)

    step, state = 0, {"history": [], "resumed_from": [], "batch_ids": [], "steps": total}
    ckpt = ctx.latest_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            if os.path.exists(os.path.join(d, FINAL)):
                return None
            step = engine.load(d)
            state = json.loads(Path(d, HISTORY).read_text())
            state["resumed_from"].append(step)
    history = state["history"]
    t0, tokens, losses = time.time(), 0, []
    while step < total:
        epoch, skip = divmod(step, steps_per_epoch)
        for k, batch in enumerate(ctx.global_batches(B * world)):
            if k < skip:
                continue
            if tc["log_batch_ids"] and rank == 0:
                state["batch_ids"].append([str(i) for i in batch["id"]])
            rows = batch["messages"][rank * B : (rank + 1) * B]
            inputs = collate(tokenizer, [as_messages(m) for m in rows], tc["max_seq_len"])
            losses.append(engine.step(inputs))
            tokens += int(inputs["attention_mask"].sum())
            step += 1
            if step % tc["log_every"] == 0 or step == total:
                # mean loss over the window and the workers; non-padding tokens of all workers
                loss_sum, seen = _sum_over_workers([sum(losses) / len(losses), tokens], world)
                rec = {"step": step, "epoch": epoch, "loss": loss_sum / world,
                       "lr": engine.lr(), "tokens": int(seen),
                       "tokens_per_s": seen / (time.time() - t0)}
                history.append(rec)
                losses = []
                if rank == 0 and ctx.checkpoints:
                    print(f"train: step {step}/{total} loss {rec['loss']:.4f} "
                          f"{rec['tokens_per_s']:.0f} tokens/s", flush=True)
            if ctx.checkpoints and (step % tc["checkpoint_every"] == 0 or step == total):
                with tempfile.TemporaryDirectory() as d:
                    engine.save(d, step, rank)
                    if rank == 0:
                        Path(d, HISTORY).write_text(json.dumps(state))
                    ctx.report(dict(history[-1]) if history else {"step": step}, d)
            if step == tc["fail_at_step"] and not state["resumed_from"]:
                raise RuntimeError(f"fault injection: train.fail_at_step={step}")
            if step >= total or (k + 1) == steps_per_epoch:
                break
    return engine, tokenizer, state
