"""Select stage: the configured strategy's rows in training order.

Writes `selection.parquet` (every pool id: selected or not, why, and its training position),
`train.parquet` (the selected rows in training order) and `mixture.json` (counts per
category, solver facts, curriculum phase shares).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from instructmix.config import RunConfig
from instructmix.selectors.curriculum import phase_shares
from instructmix.selectors.strategies import Choice, choose

log = logging.getLogger("instructmix")


def read_pool(run_dir: Path) -> pa.Table:
    pool = pq.read_table(run_dir / "pool" / "shards",
                         columns=["id", "category", "messages", "answer", "n_tokens",
                                  "source", "meta"])
    return pool.sort_by("id")  # the sample depends on the seed, not on the shards' order


def usable_rows(pool: pa.Table, run_dir: Path) -> np.ndarray:
    """Rows a strategy may select: all but those the probe stage held out for scoring."""
    path = run_dir / "probe" / "validation_ids.json"
    held = set(json.loads(path.read_text())) if path.is_file() else set()
    return np.array([i not in held for i in pool.column("id").to_pylist()], dtype=bool)


def choose_for(cfg: RunConfig, pool: pa.Table, strategy: str, curriculum: str,
               seed: int) -> Choice:
    run_dir = Path(cfg.run_dir)
    cats = np.asarray(pool.column("category").to_pylist(), dtype=object)
    return choose(strategy, curriculum, cats, np.asarray(pool.column("n_tokens")),
                  usable_rows(pool, run_dir), cfg.select, run_dir / "probe", seed)


def write_selection(pool: pa.Table, choice: Choice, out: Path, train_name="train.parquet",
                    selection_name: str | None = "selection.parquet") -> dict:
    order = choice.order
    position = np.full(pool.num_rows, -1, dtype=np.int64)
    position[order] = np.arange(len(order))
    if selection_name:
        pq.write_table(pa.table({"id": pool.column("id"), "category": pool.column("category"),
                                 "n_tokens": pool.column("n_tokens"),
                                 "selected": position >= 0, "position": position,
                                 "reason": choice.reasons}), out / selection_name)
    pq.write_table(pool.take(pa.array(order)), out / train_name)
    tokens = int(np.asarray(pool.column("n_tokens"))[order].sum())
    held = sum(r.startswith("held out") for r in choice.reasons)
    return {"selected": int(len(order)), "pool": pool.num_rows, "held_out": held,
            "tokens": tokens, "per_category": choice.mixture["counts"]}


def run_select(cfg: RunConfig, out: Path) -> dict:
    sc, run_dir = cfg.select, Path(cfg.run_dir)
    pool = read_pool(run_dir)
    choice = choose_for(cfg, pool, sc.strategy, sc.curriculum, cfg.seed)
    if len(choice.order) == 0:
        raise ValueError(f"select.budget={sc.budget} {sc.budget_unit} selects no row")
    summary = write_selection(pool, choice, out)
    mixture = dict(choice.mixture, selected=summary["selected"], tokens=summary["tokens"])
    if "tiers" in mixture:
        cats = pool.column("category").to_pylist()
        mixture["phases"] = phase_shares(list(range(len(choice.order))),
                                         [cats[i] for i in choice.order], mixture["tiers"])
    (out / "mixture.json").write_text(json.dumps(mixture, indent=1))
    log.info("select (%s, curriculum %s): %d of %d rows, %d tokens", sc.strategy,
             sc.curriculum, summary["selected"], summary["pool"], summary["tokens"])
    return summary
