"""Eval stage: per-category exact match (greedy) and response loss on the held-out sets,
scored by Ray tasks in parallel chunks. Writes `eval/results.json` and
`eval/predictions.jsonl`."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from instructmix.cluster import cluster_cpus
from instructmix.config import RunConfig

log = logging.getLogger("instructmix")


def summarise(scored: list[dict]) -> dict:
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in scored:
        by_cat[r["category"]].append(r)
    per_category = {}
    for cat, rows in sorted(by_cat.items()):
        judged = [r["correct"] for r in rows if r["correct"] is not None]
        per_category[cat] = {
            "n": len(rows),
            "exact_match": sum(judged) / len(judged) if judged else None,
            "loss": sum(r["loss"] for r in rows) / len(rows),
        }
    ems = [v["exact_match"] for v in per_category.values() if v["exact_match"] is not None]
    return {
        "per_category": per_category,
        "macro_exact_match": sum(ems) / len(ems) if ems else None,
        "macro_loss": sum(v["loss"] for v in per_category.values()) / max(1, len(per_category)),
    }


def evaluate(model_dir: str, rows: list[dict], cfg: RunConfig) -> list[dict]:
    """Score rows with Ray tasks: one chunk per CPU (1 torch thread each) or per GPU."""
    import ray

    from instructmix.evaluation.scoring import score_rows

    if cfg.eval.use_gpu:
        task, slots = ray.remote(num_gpus=1)(score_rows), int(
            ray.cluster_resources().get("GPU", 0))
        if slots == 0:
            raise RuntimeError("eval.use_gpu is set but the Ray cluster has no GPU")
    else:
        task, slots = ray.remote(num_cpus=1)(score_rows), cluster_cpus()
    n = max(1, min(slots, len(rows)))
    chunks = [rows[k::n] for k in range(n)]
    device = "cuda" if cfg.eval.use_gpu else "cpu"
    refs = [task.remote(model_dir, c, cfg.eval.batch_size, cfg.eval.max_new_tokens,
                        cfg.train.max_seq_len, device) for c in chunks if c]
    return [r for part in ray.get(refs) for r in part]


def run_eval(cfg: RunConfig, out: Path) -> dict:
    run_dir = Path(cfg.run_dir)
    table = pq.read_table(run_dir / "pool" / "eval.parquet")
    if table.num_rows == 0:
        raise ValueError("eval: no held-out rows (pool.eval_sources is empty or all rejected)")
    rows = table.select(["id", "category", "messages", "answer"]).to_pylist()
    log.info("eval: scoring %d held-out rows", len(rows))
    scored = evaluate(str(run_dir / "train" / "model"), rows, cfg)
    with open(out / "predictions.jsonl", "w") as f:
        for r in scored:
            f.write(json.dumps(r) + "\n")
    results = summarise(scored)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    log.info("eval: macro exact match %s, macro loss %.3f", results["macro_exact_match"],
             results["macro_loss"])
    return {"macro_exact_match": results["macro_exact_match"],
            "macro_loss": results["macro_loss"]}
