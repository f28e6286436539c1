"""IID baseline: a uniform random sample of the pool at a budget in items or tokens.

Writes `selection.parquet` (every pool id: selected or not, why, and its training
position) and `train.parquet` (the selected rows in training order).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from instructmix.config import RunConfig

log = logging.getLogger("instructmix")


def iid_order(n_tokens: np.ndarray, budget: int, unit: str, seed: int) -> np.ndarray:
    """Indices of a uniform random sample that fits the budget, in training order."""
    perm = np.random.default_rng(seed).permutation(len(n_tokens))
    if unit == "items":
        return perm[:budget]
    fits = np.cumsum(n_tokens[perm]) <= budget
    return perm[fits]


def write_selection(pool: pa.Table, order: np.ndarray, reason_selected: str,
                    reason_not: str, out: Path) -> dict:
    position = np.full(pool.num_rows, -1, dtype=np.int64)
    position[order] = np.arange(len(order))
    selected = position >= 0
    reasons = np.where(selected, reason_selected, reason_not)
    pq.write_table(pa.table({"id": pool.column("id"), "category": pool.column("category"),
                             "n_tokens": pool.column("n_tokens"), "selected": selected,
                             "position": position, "reason": reasons}),
                   out / "selection.parquet")
    pq.write_table(pool.take(pa.array(order)), out / "train.parquet")
    cats = pool.column("category").to_numpy(zero_copy_only=False)[order]
    names, counts = np.unique(cats, return_counts=True)
    tokens = int(np.asarray(pool.column("n_tokens"))[order].sum())
    return {"selected": int(len(order)), "pool": pool.num_rows, "tokens": tokens,
            "per_category": {str(k): int(v) for k, v in zip(names, counts, strict=True)}}


def run_select(cfg: RunConfig, out: Path) -> dict:
    sc = cfg.select
    pool = pq.read_table(Path(cfg.run_dir) / "pool" / "shards",
                         columns=["id", "category", "messages", "answer", "n_tokens"])
    pool = pool.sort_by("id")  # the sample depends on the seed, not on the shards' order
    order = iid_order(np.asarray(pool.column("n_tokens")), sc.budget, sc.budget_unit, cfg.seed)
    if len(order) == 0:
        raise ValueError(f"select.budget={sc.budget} {sc.budget_unit} selects no row")
    summary = write_selection(
        pool, order, "iid: uniform random sample",
        f"iid: outside the budget of {sc.budget} {sc.budget_unit}", out)
    log.info("select: %d of %d rows, %d tokens", summary["selected"], summary["pool"],
             summary["tokens"])
    return summary
