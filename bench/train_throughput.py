"""Training tokens/s: Ray Train + DeepSpeed (2 workers) against a plain single-process
torch loop, same model, same rows, same global batch, side by side.

Tokens are non-padding tokens of the batches. Figures: steady-state (the loop's own
tokens/s over its steps) and end-to-end (tokens / wall time of `fit()` including Ray
Train start-up, DeepSpeed init and checkpoints).

    python bench/train_throughput.py [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instructmix.config import load_config  # noqa: E402
from instructmix.layout import RunLayout  # noqa: E402
from instructmix.pipeline import run_all  # noqa: E402
from instructmix.runtime import prepare  # noqa: E402
from instructmix.training.collate import as_messages, collate  # noqa: E402
from instructmix.training.loop import HISTORY  # noqa: E402
from instructmix.training.train_stage import fit_and_release, trainer_for  # noqa: E402

prepare()

REPO = Path(__file__).resolve().parents[1]


def plain_loop(model_dir: str, rows: list, steps: int, global_batch: int, cfg) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(os.cpu_count())
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    tokens, t0 = 0, time.perf_counter()
    per_epoch = len(rows) // global_batch
    for step in range(steps):
        k = step % per_epoch
        batch = collate(tok, [as_messages(m) for m in rows[k * global_batch:(k + 1) *
                                                            global_batch]],
                        cfg.train.max_seq_len)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    return {"tokens_per_s": tokens / (time.perf_counter() - t0), "final_loss": float(loss)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--config", default=str(REPO / "configs/demo.yaml"))
    args = ap.parse_args()
    cfg = load_config(args.config, ["run_dir=runs/bench", f"train.max_steps={args.steps}",
                                    f"train.checkpoint_every={args.steps}",
                                    "select.strategy=iid", "select.curriculum=none",
                                    "compare.strategies=[]"])  # throughput needs no probes
    run_all(cfg, stop_after="select")  # pool, model and selection (skipped when present)
    run = RunLayout(cfg.run_dir)
    model_dir, train_file = run.model_path(), run.train_rows("plain")
    global_batch = cfg.train.micro_batch_size * cfg.train.num_workers

    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_for(cfg, model_dir, train_file, Path(tmp), "bench")
        t0 = time.perf_counter()
        result = fit_and_release(trainer)
        wall = time.perf_counter() - t0
        with result.checkpoint.as_directory() as d:
            history = json.loads(Path(d, HISTORY).read_text())["history"]
    steady = history[-1]["tokens_per_s"]
    rows = pq.read_table(train_file, columns=["messages"]).column("messages").to_pylist()
    plain = plain_loop(model_dir, rows, args.steps, global_batch, cfg)
    print(json.dumps({
        "bench": "train_throughput", "steps": args.steps, "global_batch": global_batch,
        "workers": cfg.train.num_workers, "zero_stage": cfg.train.zero_stage,
        "ray_deepspeed_tokens_per_s_steady": round(steady, 1),
        "ray_deepspeed_fit_wall_s": round(wall, 1),
        "ray_deepspeed_tokens_per_s_end_to_end": round(history[-1]["tokens"] / wall, 1),
        "plain_torch_tokens_per_s": round(plain["tokens_per_s"], 1),
        "ratio_steady_ray_over_plain": round(steady / plain["tokens_per_s"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
