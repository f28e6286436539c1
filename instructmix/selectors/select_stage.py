"""Select stage: the configured strategy's rows in training order.

Writes `SELECT.selection` (every pool id: selected or not, why, and its training position),
`SELECT.train` (the selected rows in training order) and `SELECT.mixture` (counts per
category, solver facts, curriculum phase shares).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from instructmix.config import RunConfig
from instructmix.layout import SELECT, RunLayout
from instructmix.selectors.curriculum import phase_shares
from instructmix.selectors.strategies import Choice, choose

log = logging.getLogger("instructmix")


def usable_rows(pool: pa.Table, run: RunLayout) -> np.ndarray:
    """Rows a strategy may select: all but those the probe stage held out for scoring."""
    held = run.validation_ids()
    return np.array([i not in held for i in pool.column("id").to_pylist()], dtype=bool)


def choose_for(cfg: RunConfig, run: RunLayout, pool: pa.Table, strategy: str, curriculum: str,
               seed: int) -> Choice:
    cats = np.asarray(pool.column("category").to_pylist(), dtype=object)
    return choose(strategy, curriculum, cats, np.asarray(pool.column("n_tokens")),
                  usable_rows(pool, run), cfg.select, run, seed, cfg.train.max_seq_len,
                  cfg.train.epochs)


def selection_table(pool: pa.Table, choice: Choice) -> pa.Table:
    """Every pool id: selected or not, its training position and why."""
    position = np.full(pool.num_rows, -1, dtype=np.int64)
    position[choice.order] = np.arange(len(choice.order))
    return pa.table({"id": pool.column("id"), "category": pool.column("category"),
                     "n_tokens": pool.column("n_tokens"), "selected": position >= 0,
                     "position": position, "reason": choice.reasons})


def write_train_rows(pool: pa.Table, choice: Choice, path: Path, stream: bool = False
                     ) -> dict:
    """The selected rows in training order (one pass; with `stream`, every pass of the run
    as the curriculum laid them out), to `path`; returns counts of the selection."""
    order = choice.order
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pool.take(pa.array(choice.stream if stream else order)), path)
    tokens = int(np.asarray(pool.column("n_tokens"))[order].sum())
    held = sum(r.startswith("held out") for r in choice.reasons)
    return {"selected": int(len(order)), "pool": pool.num_rows, "held_out": held,
            "tokens": tokens, "per_category": choice.mixture["counts"]}


def run_select(cfg: RunConfig, layout: RunLayout) -> dict:
    sc = cfg.select
    pool = layout.read_pool()
    choice = choose_for(cfg, layout, pool, sc.strategy, sc.curriculum, cfg.seed)
    if len(choice.order) == 0:
        raise ValueError(f"select.budget={sc.budget} {sc.budget_unit} selects no row")
    layout.write_table(SELECT.selection, selection_table(pool, choice))
    summary = write_train_rows(pool, choice, layout.writable(SELECT.train))
    if choice.stream is not None:
        write_train_rows(pool, choice, layout.writable(SELECT.stream), stream=True)
    mixture = dict(choice.mixture, selected=summary["selected"], tokens=summary["tokens"])
    if "tiers" in mixture:
        cats = pool.column("category").to_pylist()
        run = choice.order if choice.stream is None else choice.stream
        mixture["phases"] = phase_shares(list(range(len(run))), [cats[i] for i in run],
                                         mixture["tiers"])
    layout.write_json(SELECT.mixture, mixture)
    log.info("select (%s, curriculum %s): %d of %d rows, %d tokens", sc.strategy,
             sc.curriculum, summary["selected"], summary["pool"], summary["tokens"])
    return summary
