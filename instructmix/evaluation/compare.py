"""Compare stage: every baseline of `compare.strategies` × `compare.seeds`, trained side by
side at the select budget on Ray Tune and scored on the held-out eval set.

Each cell is one Tune trial running the target run's loop in-process (plain torch, one
process, the same global batch = train.micro_batch_size × train.num_workers, same epochs and
learning rate; augmented arms with `compare.equal_steps` scale the batch by their rows /
the selection's rows) and scoring exact match (greedy), loss and token accuracy per
category. The selection of a cell is the strategy's, drawn with the cell's seed. Writes
`results.json` (per cell, per strategy mean ± std over seeds) and `table.md`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from instructmix.config import RunConfig

log = logging.getLogger("instructmix")


def trial_train(cfg: RunConfig, rows: int | None = None, selected: int | None = None) -> dict:
    """The target run's settings in one process, at the same global batch; with `rows` of
    an augmented set made from `selected` rows and `compare.equal_steps`, the batch is scaled
    by rows / selected so the arm takes as many steps as its selection would."""
    from instructmix.training.trial import in_process_train

    tc = cfg.train
    batch = tc.micro_batch_size * tc.num_workers
    if rows is not None and cfg.compare.equal_steps:
        batch = max(1, round(batch * rows / max(1, selected)))
    return in_process_train(tc.model_dump(), micro_batch_size=batch)


# Per-category scores of every cell, in this order in the table.
SCORES = ("exact_match", "token_accuracy", "loss")
# Scores by level, when the eval set has them: (results key, metric, table label).
LEVEL_METRICS = (("by_depth", "following_rate", "following rate, depth"),
                 ("by_depth", "step_accuracy", "per-step accuracy, depth"),
                 ("by_complexity", "exact_match", "exact match, nodes"))


def _mean_std(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "n": len(v)}


def _macro(cell: dict, metric: str) -> float | None:
    values = [v for v in cell[metric].values() if v is not None]
    return float(np.mean(values)) if values else None


def _over_seeds(values: list) -> dict | None:
    kept = [v for v in values if v is not None]
    return _mean_std(kept) if kept else None


def aggregate(cells: list[dict]) -> dict:
    """Per strategy: macro and per-category exact match / token accuracy / loss, mean ± std
    over seeds (None where no seed has a value)."""
    out = {}
    for name in dict.fromkeys(c["strategy"] for c in cells):
        mine = [c for c in cells if c["strategy"] == name]
        cats = sorted({k for c in mine for k in c["token_accuracy"]})
        out[name] = {"seeds": [c["seed"] for c in mine]}
        for metric in SCORES:
            out[name][f"macro_{metric}"] = _over_seeds([_macro(c, metric) for c in mine])
            out[name][metric] = {k: _over_seeds([c[metric].get(k) for c in mine])
                                 for k in cats}
        out[name].update(counts=mine[0]["counts"],
                         train_tokens=_mean_std([c["train_tokens"] for c in mine]),
                         steps=_mean_std([c["steps"] for c in mine]))
        for key, metric, _ in LEVEL_METRICS:
            levels = sorted({lv for c in mine for lv in c.get(key) or {}}, key=int)
            if levels:
                out[name].setdefault(key, {})[metric] = {
                    lv: _mean_std([c[key][lv][metric] for c in mine if lv in (c.get(key) or {})])
                    for lv in levels}
    return out


def table_rows(agg: dict) -> list[list[str]]:
    """The comparison as rows [label, cell per arm]: exact match per category and macro,
    then token accuracy per category and macro, mean ± std over seeds; then, when the eval
    set has them, following rate and per-step accuracy by chain depth and exact match by
    tree size; then tokens and steps trained."""
    names = list(agg)
    cats = sorted({c for a in agg.values() for c in a["token_accuracy"]})

    def cell(v, digits=2) -> str:
        return f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}" if v else "n/a"

    rows = []
    for metric, prefix in (("exact_match", ""), ("token_accuracy", "token accuracy, ")):
        rows += [[f"{prefix}{c}"] + [cell(agg[n][metric].get(c)) for n in names] for c in cats]
        rows.append([f"{prefix}macro"] + [cell(agg[n][f"macro_{metric}"], 3) for n in names])
    for key, metric, label in LEVEL_METRICS:
        levels = sorted({lv for n in names for lv in agg[n].get(key, {}).get(metric, {})},
                        key=int)
        rows += [[f"{label} {lv}"] + [cell(agg[n].get(key, {}).get(metric, {}).get(lv))
                                      for n in names] for lv in levels]
    rows.append(["tokens trained"] + [f"{agg[n]['train_tokens']['mean']:,.0f}" for n in names])
    rows.append(["optimizer steps"] + [f"{agg[n]['steps']['mean']:,.0f}" for n in names])
    return rows


def markdown_table(agg: dict) -> str:
    names = list(agg)
    head = "| category | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = [[f"**{c}**" for c in r] if r[0].endswith("macro") else r for r in table_rows(agg)]
    return head + "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"


def augment_cell(cfg: RunConfig, rows: list[dict], kind: str, seed: int, out: Path,
                 tools: dict) -> dict:
    """A cell's training set becomes its selection's `kind` augmentation, token-matched to
    it (items, rejects with reasons and stats in `out`, see `augment_selection`)."""
    from instructmix.augment.augment_stage import augment_selection

    stats = augment_selection(cfg, rows, kind, seed, out, tools)
    return {"augment": {k: stats[k] for k in ("kind", "rows_in", "items", "rejected",
                                              "matched_items", "matched_tokens")},
            "counts": stats["matched_per_category"]}


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
    trials, meta, augmented = [], {}, {}
    for spec in cc.strategies:
        strategy, *extras = spec.split("+")
        aug = cc.augmentation(spec)
        curriculum = "dependency" if "curriculum" in extras else "none"
        for seed in cc.seeds:
            name = f"{spec}-s{seed}"
            choice = choose_for(cfg, pool, strategy, curriculum, seed)
            summary = write_selection(pool, choice, sets, f"{name}.parquet", None)
            meta[name] = {"strategy": spec, "seed": seed, "counts": summary["per_category"],
                          "selected_tokens": summary["tokens"]}
            train_file, train = sets / f"{name}.parquet", trial_train(cfg)
            if aug:
                meta[name].update(augment_cell(cfg, pool.take(choice.order).to_pylist(), aug,
                                               seed, sets / name, augmented))
                train_file = sets / name / "train.parquet"
                train = trial_train(cfg, meta[name]["augment"]["matched_items"],
                                    len(choice.order))
            meta[name]["global_batch"] = train["micro_batch_size"]
            trials.append({"name": name, "seed": seed, "train_file": str(train_file),
                           "eval_file": str(run_dir / "pool" / "eval.parquet"),
                           "model_path": model_path(run_dir), "train": train,
                           "generate": True, "max_new_tokens": cfg.eval.max_new_tokens})
    done, failed = run_trials("compare", trials, fine_tune_and_score, out / "tune",
                              cc.cpus_per_trial, None, cfg.train.max_failures)
    if failed:
        raise RuntimeError(f"compare: trials failed: {[f['trial'] for f in failed]} "
                           f"(logs under {out / 'tune'}; re-run the stage to retry them)")
    by_name = {d["trial"]: d for d in done}
    keys = (*SCORES, "steps", "train_tokens", "seconds", "by_depth", "by_complexity")
    cells = [dict(meta[t["name"]], **{k: by_name[t["name"]][k] for k in keys
                                      if k in by_name[t["name"]]}) for t in trials]
    agg = aggregate(cells)
    (out / "results.json").write_text(json.dumps({"cells": cells, "strategies": agg},
                                                 indent=1))
    (out / "table.md").write_text(markdown_table(agg))
    log.info("compare:\n%s", markdown_table(agg))
    return {n: {m: round(a[f"macro_{m}"]["mean"], 4) for m in ("exact_match", "token_accuracy")
                if a[f"macro_{m}"]} for n, a in agg.items()}
