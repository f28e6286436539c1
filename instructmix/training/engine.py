"""One optimizer step, checkpoint and HF export, for DeepSpeed ZeRO or plain torch.

`Engine` hides which one runs: the Ray Train target run uses DeepSpeed (`train.deepspeed`),
in-process trials use plain torch. `train.precision: bf16` is DeepSpeed's bf16 mode in the
first, bf16 autocast over fp32 weights in the second (on CPU and GPU alike). The learning rate
warms up linearly for `train.warmup_steps`, then follows a cosine down to 10% of `train.lr`.
"""

from __future__ import annotations

import contextlib
import math
import os

from instructmix.config import TrainConfig


def lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def deepspeed_config(tc: TrainConfig) -> dict:
    return {
        "train_micro_batch_size_per_gpu": tc.micro_batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 1.0,
        "optimizer": {"type": "AdamW", "params": {"lr": tc.lr, "torch_adam": True,
                                                  "weight_decay": tc.weight_decay}},
        "zero_optimization": {"stage": tc.zero_stage},
        "bf16": {"enabled": tc.precision == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


class Engine:
    """forward/backward/step, checkpoint and export for DeepSpeed or plain torch, with the
    model on `device` (DeepSpeed: its accelerator's); `step` moves each batch there."""

    def __init__(self, model, tc: TrainConfig, total_steps: int, world: int,
                 device="cpu"):
        import torch

        self.tc, self.deepspeed = tc, tc.deepspeed
        schedule = lr_lambda(tc.warmup_steps, total_steps)
        if not self.deepspeed:  # DeepSpeed places the model on its accelerator itself
            self.device = torch.device(device)
            model = model.to(self.device)
        self.trainable = [p for p in model.parameters() if p.requires_grad]  # LoRA: adapters
        if self.deepspeed:
            import deepspeed

            self.model, _, _, self.sched = deepspeed.initialize(
                model=model, model_parameters=self.trainable, config=deepspeed_config(tc),
                lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule))
            self.device = self.model.device
        else:
            import ray.train.torch

            self.model = ray.train.torch.prepare_model(model) if world > 1 else model
            self.opt = torch.optim.AdamW(self.trainable, lr=tc.lr,
                                         weight_decay=tc.weight_decay)
            self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, schedule)
        self.torch = torch

    def step(self, batch) -> float:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if self.deepspeed:
            loss = self.model(**batch).loss
            self.model.backward(loss)
            self.model.step()
        else:
            with self.torch.autocast(self.device.type, dtype=self.torch.bfloat16,
                                     enabled=self.tc.precision == "bf16"):
                loss = self.model(**batch).loss
            loss.backward()
            self.torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
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
        state = self.torch.load(os.path.join(path, "plain.pt"), map_location="cpu",
                                weights_only=False)
        self._module().load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        return int(state["step"])

    def _module(self):
        return getattr(self.model, "module", self.model)

    def export(self, path: str, rank: int, tokenizer) -> None:
        """HF safetensors in fp32, copied to CPU, on rank 0; ZeRO-3 first gathers the
        partitioned weights, LoRA adapters are merged into the base weights."""
        from instructmix.training.lora import is_adapted, merged_state

        module = self._module()
        gather = contextlib.nullcontext()
        if self.deepspeed and self.tc.zero_stage == 3:
            import deepspeed

            gather = deepspeed.zero.GatheredParameters(list(module.parameters()),
                                                       modifier_rank=None)
        with gather:
            state = {k: v.detach().to("cpu", self.torch.float32, copy=True)
                     for k, v in module.state_dict().items()}
        if rank != 0:
            return
        if is_adapted(module):
            state = merged_state(module, state)
            module = plain_copy(module.get_base_model().config, state)
        module.config.torch_dtype = "float32"
        module.save_pretrained(path, state_dict=state)
        tokenizer.save_pretrained(path)


def plain_copy(config, state: dict):
    """A fresh model of `config` holding `state` exactly (every key, no extra)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(state, strict=True)
    return model
