"""Fake run directories for the report tests (no Ray, no model): `fake_run` has the pool,
select, train and eval stages; `full_run` adds the probe, augment and compare stages;
`raise_run` the policy stage and a final run picked by RAISE."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq

from instructmix.config import RunConfig
from instructmix.experiments.table import aggregate, paired_differences
from instructmix.layout import (
    AUGMENT,
    COMPARE,
    EVAL,
    POLICY,
    POOL,
    PROBE,
    SELECT,
    TRAIN,
    RunLayout,
)

CATS = ["reverse", "add"]
STATS = {
    "read": 10, "accepted": 8, "rejected": 2, "counts_add_up": True,
    "rejected_by_reason": {"too_long": 1, "contaminated": 1},
    "categories_assigned_by_kmeans": 0,
    "decontamination": {
        "enabled": True, "ngram": 13, "pool_text": "prompt+response", "eval_items": 4,
        "eval_items_indexed": 3, "eval_items_too_short": 1, "pool_rows_rejected": 1,
        "per_eval_source": {"heldout": {"items": 4, "too_short": 1, "pool_rows_rejected": 1}},
        "eval_items_duplicating_pool_prompts": {"count": 1, "ids": ["eval-dup-7"]}},
    "per_category": {"reverse": {"items": 5, "tokens": 50}, "add": {"items": 3, "tokens": 30}},
    "per_source": {"testbed": 10},
    "eval": {"read": 4, "accepted": 4, "rejected": 0, "per_category": {"reverse": 2, "add": 2}},
}
SELECT_SUMMARY = {"selected": 6, "pool": 8, "tokens": 60, "per_category": {"reverse": 4, "add": 2}}
HISTORY = [{"step": s, "epoch": 0, "loss": 3.0 - 0.5 * s, "lr": 1e-3, "tokens_per_s": 100.0 + s}
           for s in range(1, 5)]
TRAIN_SUMMARY = {"steps": 4, "final_loss": 1.0, "tokens_per_s": 103.0, "model": "train/model"}
RESULTS = {"per_category": {"reverse": {"n": 2, "exact_match": 0.5, "loss": 1.2},
                            "add": {"n": 2, "exact_match": None, "loss": 0.8}},
           "macro_exact_match": 0.5, "macro_loss": 1.0}
PREDS = [{"id": f"{c}-{k}", "category": c, "loss": 1.0, "prediction": "<b>x</b> & y",
          "correct": k == 0} for c in CATS for k in range(5)]
GT = {"interactions": [{"i": "add", "j": "double", "sign": "+", "kind": "synergy"}],
      "prerequisites": [{"base": "reverse", "dependent": "rev_upper"}],
      "conflict_pairs": [["sort_asc", "sort_desc"]]}
SECONDS = {"pool": 1.5, "model": 0.2, "select": 0.7, "train": 9.0, "eval": 3.0}

PROBE_CATS = ["reverse", "add", "double", "rev_upper"]
INF = math.inf
INTERACTIONS = {
    "method": "intervention", "categories": PROBE_CATS, "n_seeds": 3, "ci": 0.9,
    "score": "loss",
    "gamma": [[1.0, 0.3, -0.2, 0.05], [0.5, 1.0, 2.5, -1.2], [math.nan] * 4,
              [0.9, 0.1, 0.0, 1.0]],
    "lo": [[1.0, 0.1, -0.5, -0.1], [-INF] * 4, [math.nan] * 4, [0.5, -0.2, -0.3, 1.0]],
    "hi": [[1.0, 0.5, 0.1, 0.2], [INF] * 4, [math.nan] * 4, [1.3, 0.4, 0.2, 1.0]],
    "unidentified": {"double": "delta_ii = -0.1 not clearly > 0: training on double did not "
                               "help it"},
    "notes": ["add: delta_ii unidentified in 40% of resamples: CI unbounded"],
    "sign_recovery": {"n": 1, "recovered": 0, "share": 0.0, "unidentified": 1, "skipped": 0,
                      "details": [{"i": "double", "j": "add", "sign": "+", "kind": "synergy",
                                   "gamma": math.nan, "lo": math.nan, "hi": math.nan,
                                   "recovered": False}]},
}
DEPENDENCIES = {
    "categories": PROBE_CATS, "threshold": 0.1,
    "edges": [{"base": "reverse", "dependent": "rev_upper", "weight": 0.85},
              {"base": "reverse", "dependent": "add", "weight": 0.2},
              {"base": "add", "dependent": "rev_upper", "weight": 0.4}],
    "removed": [{"base": "rev_upper", "dependent": "reverse", "weight": 0.01,
                 "reason": "weakest edge on a cycle among ['reverse', 'rev_upper']"}],
    "tiers": {"reverse": "base", "add": "middle", "double": "middle",
              "rev_upper": "dependent"},
    "notes": ["unidentified (NaN) rows get no edge in or out: ['double']"],
    "planted_edges": [{"base": "reverse", "dependent": "rev_upper", "found": True}],
}
COST = {"probe_trials": 15, "warm_start_trials": 3, "probe_train_tokens": 12345,
        "probe_trial_seconds": 61.5, "proxy": True, "probe_model_parameters": 1000,
        "target_parameters": 8000}
MIXTURE = {"strategy": "mix", "curriculum": "tiers", "status": "optimal", "objective": 3.5,
           "solver_seconds": 0.0123, "binding": ["budget", "available[add]"],
           "counts": {"reverse": 4, "add": 2}, "available": {"reverse": 5, "add": 3},
           "weights": {"reverse": 1.4, "add": 0.7}, "alpha": {"reverse": 0.6, "add": 0.4},
           "tiers": {"reverse": "base", "add": "middle"},
           "phases": [{"phase": 1, "n": 2, "base": 1.0, "middle": 0.0, "dependent": 0.0}]}
PROBE_ROUNDS = [
    {"round": 1, "counts": {"reverse": 4, "add": 2}, "probe_trials": 15,
     "probe_train_tokens": 12345, "objective_at_centre": 3.0, "objective": 3.25, "gain": 0.25,
     "moved_share": 0.1, "gamma": [[1.0, 0.3], [0.5, 1.0]], "lo": [[1.0, 0.1], [0.2, 1.0]],
     "hi": [[1.0, 0.5], [0.8, 1.0]]},
    {"round": 2, "counts": {"reverse": 5, "add": 1}, "probe_trials": 10,
     "probe_train_tokens": 6789, "objective_at_centre": 3.5, "objective": 3.5005,
     "gain": 0.0005, "moved_share": 0.05, "gamma": [[1.0, 0.2], [0.4, 1.0]],
     "stopped": "the move gained 0.0005, less than round_tolerance=0.01 x 3.5"},
]
AUG_STATS = {"kind": "sit", "backend": "rules", "rows_in": 6, "items": 5, "rejected": 1,
             "counts_add_up": True, "rejected_by_reason": {"no <chain> found": 1},
             "selection_tokens": 60, "produced_tokens": 90, "matched_items": 4,
             "matched_tokens": 58, "matched_per_category": {"reverse": 3, "add": 1},
             "depths": {"2": 3, "3": 1}, "modes": {"reverse>upper": 4},
             "mean_complexity": 2.25}
ARMS = ["iid", "mix", "mix+sit"]


def compare_cells() -> list[dict]:
    cells = []
    for k, arm in enumerate(ARMS):
        for seed in (0, 1, 2):
            em = {"reverse": 0.2 + 0.1 * k + 0.02 * seed, "add": 0.1 + 0.05 * k - 0.01 * seed}
            cells.append({"strategy": arm, "seed": seed, "exact_match": em,
                          "token_accuracy": {c: 0.5 + v / 2 for c, v in em.items()},
                          "loss": {c: 2.0 - v for c, v in em.items()},
                          "counts": {"reverse": 4 - k % 2, "add": 2 + k % 2},
                          "train_tokens": 1500 + 10 * k, "steps": 12})
    return cells


def _done(root, stage: str, seconds: float, summary: dict) -> None:
    RunLayout(root).write_marker(stage, "done", {"fingerprint": "f", "seconds": seconds,
                                                 "summary": summary})


def fake_run(root, with_eval_results=True):
    lay = RunLayout(root)
    lay.write_json(POOL.stats, STATS)
    lay.write_json(POOL.ground_truth, GT)
    summaries = {"select": SELECT_SUMMARY, "train": TRAIN_SUMMARY}
    for stage, secs in SECONDS.items():
        _done(root, stage, secs, summaries.get(stage, {}))
    lay.write_json(TRAIN.history, HISTORY)
    if with_eval_results:
        lay.write_json(EVAL.results, RESULTS)
    lay.write_jsonl(EVAL.predictions, PREDS)
    (root / "report").mkdir(exist_ok=True)
    return RunConfig(run_dir=str(root))


def full_run(root):
    """Every stage ran: probes (an unidentified row, unbounded intervals), a mixture, an
    augmentation and a compare of three arms over three seeds."""
    cfg = fake_run(root)
    lay = RunLayout(root)
    history = [dict(h, tokens=400 * h["step"]) for h in HISTORY * 3]
    for k, h in enumerate(history):
        h["step"] = k + 1
    lay.write_json(TRAIN.history, history)
    lay.write_json(PROBE.interactions, INTERACTIONS)
    lay.write_json(PROBE.dependencies, DEPENDENCIES)
    lay.write_json(PROBE.cost, COST)
    lay.write_json(SELECT.mixture, MIXTURE)
    lay.write_json(PROBE.rounds, {"rounds": PROBE_ROUNDS})
    lay.write_json(AUGMENT.stats, AUG_STATS)
    cells = compare_cells()
    paired = {m: paired_differences(cells, ARMS[0], m) for m in ("exact_match",
                                                                  "token_accuracy")}
    lay.write_json(COMPARE.results, {"cells": cells, "strategies": aggregate(cells),
                                     "paired": dict(paired, baseline=ARMS[0])})
    for stage in ("probe", "augment", "compare"):
        _done(root, stage, 2.0, {})
    return cfg


def _episode(r: int, e: int, ret: float) -> dict:
    return {"name": f"r{r:03d}-e{e:02d}", "return": ret, "first_valid_loss": 4.0,
            "final_valid_loss": 4.0 - ret, "steps": 10, "train_tokens": 1000 + 10 * e,
            "seconds": 5.0}


RETURNS = [[0.5, 0.7, 0.9], [1.1, 1.3]]  # per round; round 1 also has a failed episode
ROUNDS = [{"round": r, "episodes": [_episode(r, e, x) for e, x in enumerate(returns)],
           "failed": [{"trial": "r001-e02", "error": "RuntimeError('out of memory')",
                       "path": "/tmp/trial"}] if r == 1 else [],
           "ppo": {"round": r, "mean_return": sum(returns) / len(returns),
                   "policy_loss": -0.0125 * (r + 1), "value_loss": 0.25 / (r + 1),
                   "approx_kl": 0.0042, "clip_fraction": 0.125, "decisions": 30}}
          for r, returns in enumerate(RETURNS)]
POLICY_COST = {"rounds": 2, "episodes": 5, "failed_episodes": 1, "episode_steps": 50,
               "episode_train_tokens": 5030, "episode_seconds": 25.0}
# the final run: 20 steps of 4 rows; steps 1-10 pick reverse only, steps 11-20 add only
# (one id of the last batch is not in the pool)
PICKED_POOL = {f"{c}-{k}": c for c in CATS for k in range(10)}
BATCH_IDS = ([[f"reverse-{k % 10}" for k in range(4)]] * 10
             + [[f"add-{k}" for k in range(4)]] * 9 + [["add-0", "add-1", "add-2", "gone-1"]])
VALID_HISTORY = [[0, 4.0], [5, 3.5], [10, 3.1], [15, 2.9], [20, 2.8]]


def write_pool_shards(root, categories: dict) -> None:
    """The pool's shards (a folder of Parquet files) with ids and categories."""
    folder = RunLayout(root, "pool").writable(POOL.shards)
    folder.mkdir(parents=True, exist_ok=True)
    ids = sorted(categories)
    pq.write_to_dataset(pa.table({"id": ids, "category": [categories[i] for i in ids]}),
                        str(folder))


def raise_run(root, strategy: str = "raise"):
    """A run whose policy stage trained two rounds and whose final run (20 steps, 4 rows a
    step, 80 tokens a step) had its batches picked."""
    cfg = fake_run(root)
    lay = RunLayout(root)
    history = [dict(h, step=5 * k, tokens=400 * k) for k, h in enumerate(HISTORY, 1)]
    lay.write_json(TRAIN.history, history)
    lay.write_json(POLICY.rounds, ROUNDS)
    lay.write_json(POLICY.cost, POLICY_COST)
    _done(root, "policy", 30.0, POLICY_COST)
    lay.write_json(TRAIN.batch_ids, BATCH_IDS)
    lay.write_json(TRAIN.picker, {"valid_history": VALID_HISTORY})
    write_pool_shards(root, PICKED_POOL)
    return cfg.model_copy(update={"select": cfg.select.model_copy(
        update={"strategy": strategy})})
