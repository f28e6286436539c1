"""Training tokens/s: Ray Train + DeepSpeed (2 workers) against a plain single-process
torch loop, same model, same rows, same global batch, side by side; `--repeats` pairs, the
order alternated (odd repeats run the plain loop first).

Tokens are non-padding tokens of the batches. Figures: steady-state (the loop's own
tokens/s over its steps) and end-to-end (tokens / wall time of `fit()` including Ray
Train start-up, DeepSpeed init and checkpoints; for the plain loop including loading the
model). `--model` trains a pretrained HF model (e.g. models/smollm2-135m-instruct from
`make instruct-model`) instead of the demo's tiny from-scratch one.

    python bench/train_throughput.py [--steps 200] [--repeats 2] [--model PATH]
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
from instructmix.training.collate import as_messages, collate, load_tokenizer  # noqa: E402
from instructmix.training.loop import HISTORY  # noqa: E402
from instructmix.training.train_stage import fit_and_release, trainer_for  # noqa: E402

prepare()

REPO = Path(__file__).resolve().parents[1]


def plain_loop(model_dir: str, rows: list, steps: int, global_batch: int, cfg) -> dict:
    from transformers import AutoModelForCausalLM

    start = time.perf_counter()
    torch.set_num_threads(os.cpu_count())
    tok = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
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
    end = time.perf_counter()
    return {"tokens_per_s": tokens / (end - t0), "end_to_end": tokens / (end - start)}


def ray_deepspeed(cfg, model_dir: str, train_file) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_for(cfg, model_dir, train_file, Path(tmp), "bench")
        t0 = time.perf_counter()
        result = fit_and_release(trainer)
        wall = time.perf_counter() - t0
        with result.checkpoint.as_directory() as d:
            last = json.loads(Path(d, HISTORY).read_text())["history"][-1]
    return {"tokens_per_s": last["tokens_per_s"], "end_to_end": last["tokens"] / wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", default=None, help="a pretrained HF model folder")
    ap.add_argument("--config", default=str(REPO / "configs/demo.yaml"))
    args = ap.parse_args()
    sets = [f"train.max_steps={args.steps}", f"train.checkpoint_every={args.steps}",
            "select.strategy=iid", "select.curriculum=none",
            "compare.strategies=[]"]  # throughput needs no probes
    if args.model:  # a real model: its own tokenizer, real sequence lengths
        sets += ["run_dir=runs/bench_pretrained", f"model.path={Path(args.model).resolve()}",
                 "train.micro_batch_size=4", "train.max_seq_len=256", "train.lr=2e-5"]
    else:
        sets += ["run_dir=runs/bench"]
    cfg = load_config(args.config, sets)
    run_all(cfg, stop_after="select")  # pool, model and selection (skipped when present)
    run = RunLayout(cfg.run_dir)
    model_dir, (train_file, _) = run.model_path(), run.train_rows("plain")
    global_batch = cfg.train.micro_batch_size * cfg.train.num_workers
    rows = pq.read_table(train_file, columns=["messages"]).column("messages").to_pylist()
    repeats = []
    for k in range(args.repeats):
        order = ["ray", "plain"] if k % 2 == 0 else ["plain", "ray"]
        got = {}
        for side in order:
            got[side] = (ray_deepspeed(cfg, model_dir, train_file) if side == "ray" else
                         plain_loop(model_dir, rows, args.steps, global_batch, cfg))
        repeats.append({"order": order, **{f"{s}_{m}": round(got[s][m], 1)
                                           for s in ("ray", "plain")
                                           for m in ("tokens_per_s", "end_to_end")},
                        "ratio_steady": round(got["ray"]["tokens_per_s"] /
                                              got["plain"]["tokens_per_s"], 2),
                        "ratio_end_to_end": round(got["ray"]["end_to_end"] /
                                                  got["plain"]["end_to_end"], 2)})
        print(json.dumps(repeats[-1]), flush=True)
    steady = [r["ratio_steady"] for r in repeats]
    print(json.dumps({
        "bench": "train_throughput", "model": model_dir, "steps": args.steps,
        "global_batch": global_batch, "workers": cfg.train.num_workers,
        "zero_stage": cfg.train.zero_stage, "max_seq_len": cfg.train.max_seq_len,
        "repeats": repeats, "ratio_steady_ray_over_plain": {
            "mean": round(sum(steady) / len(steady), 2), "min": min(steady),
            "max": max(steady)},
    }, indent=2))


if __name__ == "__main__":
    main()
