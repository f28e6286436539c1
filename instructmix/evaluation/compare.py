"""Compare stage: every baseline of `compare.strategies` × `compare.seeds`, trained side by
side at the select budget on Ray Tune and scored on the held-out eval set.

Each cell is one Tune trial running the target run's loop in-process (plain torch, one
process, the same global batch = train.micro_batch_size × train.num_workers, same epochs and
learning rate) and scoring exact match (greedy) and loss per category. The selection of a
cell is the strategy's, drawn with the cell's seed. Writes `results.json` (per cell, per
strategy mean ± std over seeds) and `table.md`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from instructmix.config import RunConfig

log = logging.getLogger("instructmix")


def trial_train(cfg: RunConfig) -> dict:
    """The target run's settings in one process, at the same global batch."""
    from instructmix.training.trial import in_process_train

    tc = cfg.train
    return in_process_train(tc.model_dump(),
                            micro_batch_size=tc.micro_batch_size * tc.num_workers)


def _mean_std(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "n": len(v)}


def aggregate(cells: list[dict]) -> dict:
    """Per strategy: macro and per-category exact match / loss, mean ± std over seeds."""
    out = {}
    for name in dict.fromkeys(c["strategy"] for c in cells):
        mine = [c for c in cells if c["strategy"] == name]
        cats = sorted(mine[0]["exact_match"])
        out[name] = {
            "seeds": [c["seed"] for c in mine],
            "macro_exact_match": _mean_std([np.mean(list(c["exact_match"].values()))
                                            for c in mine]),
            "macro_loss": _mean_std([np.mean(list(c["loss"].values())) for c in mine]),
            "exact_match": {k: _mean_std([c["exact_match"][k] for c in mine]) for k in cats},
            "counts": mine[0]["counts"],
            "train_tokens": _mean_std([c["train_tokens"] for c in mine]),
        }
    return out


def markdown_table(agg: dict) -> str:
    names = list(agg)
    cats = sorted(next(iter(agg.values()))["exact_match"]) if agg else []
    head = "| category | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = []
    for c in cats:
        cells = [f"{agg[n]['exact_match'][c]['mean']:.2f} ± {agg[n]['exact_match'][c]['std']:.2f}"
                 for n in names]
        rows.append(f"| {c} | " + " | ".join(cells) + " |")
    macro = [f"**{agg[n]['macro_exact_match']['mean']:.3f} ± "
             f"{agg[n]['macro_exact_match']['std']:.3f}**" for n in names]
    rows.append("| **macro** | " + " | ".join(macro) + " |")
    tokens = [f"{agg[n]['train_tokens']['mean']:,.0f}" for n in names]
    rows.append("| tokens trained | " + " | ".join(tokens) + " |")
    return head + "\n".join(rows) + "\n"


def run_compare(cfg: RunConfig, out: Path) -> dict:
    cc = cfg.compare
    if not cc.strategies:
        (out / "skipped.json").write_text(json.dumps({"reason": "compare.strategies is empty"}))
        return {"skipped": "compare.strategies is empty"}
    from instructmix.cluster.sweep import run_trials
    from instructmix.selectors.select_stage import choose_for, read_pool, write_selection
    from instructmix.training.model_factory import model_path
    from instructmix.training.trial import fine_tune_and_score

    run_dir = Path(cfg.run_dir)
    pool = read_pool(run_dir)
    sets = out / "sets"
    sets.mkdir(exist_ok=True)
    trials, meta = [], {}
    for spec in cc.strategies:
        strategy, _, extra = spec.partition("+")
        for seed in cc.seeds:
            name = f"{spec}-s{seed}"
            choice = choose_for(cfg, pool, strategy, "dependency" if extra else "none", seed)
            summary = write_selection(pool, choice, sets, f"{name}.parquet", None)
            meta[name] = {"strategy": spec, "seed": seed, "counts": summary["per_category"],
                          "selected_tokens": summary["tokens"]}
            trials.append({"name": name, "seed": seed, "train_file": str(sets / f"{name}.parquet"),
                           "eval_file": str(run_dir / "pool" / "eval.parquet"),
                           "model_path": model_path(run_dir), "train": trial_train(cfg),
                           "generate": True, "max_new_tokens": cfg.eval.max_new_tokens})
    done, failed = run_trials("compare", trials, fine_tune_and_score, out / "tune",
                              cc.cpus_per_trial, None, cfg.train.max_failures)
    if failed:
        raise RuntimeError(f"compare: trials failed: {[f['trial'] for f in failed]} "
                           f"(logs under {out / 'tune'}; re-run the stage to retry them)")
    by_name = {d["trial"]: d for d in done}
    cells = [dict(meta[t["name"]], exact_match=by_name[t["name"]]["exact_match"],
                  loss=by_name[t["name"]]["loss"], steps=by_name[t["name"]]["steps"],
                  train_tokens=by_name[t["name"]]["train_tokens"],
                  seconds=by_name[t["name"]]["seconds"]) for t in trials]
    agg = aggregate(cells)
    (out / "results.json").write_text(json.dumps({"cells": cells, "strategies": agg},
                                                 indent=1))
    (out / "table.md").write_text(markdown_table(agg))
    log.info("compare:\n%s", markdown_table(agg))
    return {n: round(a["macro_exact_match"]["mean"], 4) for n, a in agg.items()}
