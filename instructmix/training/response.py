"""Per-row response scores of a causal LM under teacher forcing: mean response loss and
response token accuracy (share of response tokens, eos included, that are the argmax).

`response_scores` scores rows in one process; `worker_losses` spreads rows over the workers
of a training run (every worker runs the same number of forward passes, as ZeRO-3 needs)
and returns every row's loss on every worker.
"""

from __future__ import annotations

import torch

from instructmix.training.collate import IGNORE, collate


@torch.inference_mode()
def response_scores(model, tok, messages: list[list[dict]], max_len: int
                    ) -> tuple[list[float], list[float]]:
    """(mean response loss, response token accuracy) per row."""
    batch = {k: v.to(model.device) for k, v in collate(tok, messages, max_len).items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits.float()[:, :-1]
    labels = batch["labels"][:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels,
                                            ignore_index=IGNORE, reduction="none")
    mask = labels != IGNORE
    counts = mask.sum(1).clamp(min=1)
    hits = ((logits.argmax(-1) == labels) & mask).sum(1)
    return (nll.sum(1) / counts).tolist(), (hits / counts).tolist()


def worker_losses(model, tok, messages: list[list[dict]], max_len: int, rank: int,
                  world: int, batch_size: int = 32) -> list[float]:
    """Mean response loss of every row, computed by `world` workers together (each scores a
    contiguous share, padded to equal size) and summed across them."""
    n = len(messages)
    share = -(-n // world)
    mine = list(range(rank * share, (rank + 1) * share))
    values = torch.zeros(share * world, dtype=torch.float64)
    was_training = model.training
    model.eval()
    for start in range(0, share, batch_size):
        idx = mine[start: start + batch_size]
        rows = [messages[min(i, n - 1)] for i in idx]  # padding rows repeat the last one
        losses, _ = response_scores(model, tok, rows, max_len)
        values[idx] = torch.tensor(losses, dtype=torch.float64)
    model.train(was_training)
    if world > 1:
        values = summed_over_workers(values)
    return values[:n].tolist()


def summed_over_workers(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over a training run's workers. The sum runs on this worker's device:
    NCCL (`train.use_gpu`) sums CUDA tensors only."""
    import ray.train.torch
    import torch.distributed as dist

    out = values.to(ray.train.torch.get_device())
    dist.all_reduce(out)
    return out.cpu()
