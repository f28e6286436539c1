"""Compare stage: every baseline of `compare.strategies` × `compare.seeds`, trained side by
side at the select budget on Ray Tune and scored on the held-out eval set.

Each cell is one Tune trial running the target run's loop in-process (plain torch, one
process, the same global batch = train.micro_batch_size × train.num_workers, same epochs and
learning rate; augmented arms with `compare.equal_steps` scale the batch by their rows /
the selection's rows) and scoring exact match (greedy), loss and token accuracy per
category. The selection of a cell is the strategy's, drawn with the cell's seed. Writes
`COMPARE.results` (per cell, per strategy mean ± std over seeds) and `COMPARE.table`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from instructmix.augment.augment_stage import augment_selection, augment_tools
from instructmix.cluster.sweep import run_trials
from instructmix.config import RunConfig, TrainConfig
from instructmix.experiments.table import SCORES, aggregate, markdown_table
from instructmix.experiments.trial import TrialSpec, fine_tune_and_score, in_process
from instructmix.layout import AUGMENT, COMPARE, POOL, RunLayout
from instructmix.selectors.select_stage import choose_for, write_train_rows

log = logging.getLogger("instructmix")


def trial_train(cfg: RunConfig, rows: int | None = None,
                selected: int | None = None) -> TrainConfig:
    """The target run's settings in one process, at the same global batch; with `rows` of
    an augmented set made from `selected` rows and `compare.equal_steps`, the batch is scaled
    by rows / selected so the arm takes as many steps as its selection would."""
    tc = cfg.train
    batch = tc.micro_batch_size * tc.num_workers
    if rows is not None and cfg.compare.equal_steps:
        batch = max(1, round(batch * rows / max(1, selected)))
    return in_process(tc, micro_batch_size=batch)


class Arms:
    """Builds every cell's training set (selection, then augmentation for augmented arms)
    and its trial."""

    def __init__(self, cfg: RunConfig, layout: RunLayout):
        self.cfg, self.layout = cfg, layout
        self.pool = layout.read_pool()
        self.sets = layout.writable(COMPARE.sets)
        self.tools: dict = {}

    def cell(self, spec: str, seed: int) -> tuple[TrialSpec, dict]:
        cfg, name = self.cfg, f"{spec}-s{seed}"
        strategy, *extras = spec.split("+")
        curriculum = "dependency" if "curriculum" in extras else "none"
        choice = choose_for(cfg, self.layout, self.pool, strategy, curriculum, seed)
        train_file = self.sets / f"{name}.parquet"
        summary = write_train_rows(self.pool, choice, train_file)
        meta = {"strategy": spec, "seed": seed, "counts": summary["per_category"],
                "selected_tokens": summary["tokens"]}
        train = trial_train(cfg)
        aug = cfg.compare.augmentation(spec)
        if aug:
            meta.update(self._augment(self.pool.take(pa.array(choice.order)).to_pylist(), aug,
                                      seed, self.sets / name))
            train_file = RunLayout(self.sets / name).path(AUGMENT.train)
            train = trial_train(cfg, meta["augment"]["matched_items"], len(choice.order))
        meta["global_batch"] = train.micro_batch_size
        trial = TrialSpec(name, seed, str(train_file), str(self.layout.path(POOL.eval)),
                          self.layout.model_path(), train, generate=True,
                          max_new_tokens=cfg.eval.max_new_tokens)
        return trial, meta

    def _augment(self, rows: list[dict], kind: str, seed: int, root: Path) -> dict:
        """A cell's training set becomes its selection's `kind` augmentation, token-matched
        to it (items, rejects with reasons and stats under `root`)."""
        if not self.tools:
            self.tools.update(augment_tools(self.cfg, self.layout))
        stats = augment_selection(self.cfg, rows, kind, seed, RunLayout(root, "augment"),
                                  self.tools)
        return {"augment": {k: stats[k] for k in ("kind", "rows_in", "items", "rejected",
                                                  "matched_items", "matched_tokens")},
                "counts": stats["matched_per_category"]}


def run_compare(cfg: RunConfig, layout: RunLayout) -> dict:
    cc = cfg.compare
    if not cc.strategies:
        layout.write_json(COMPARE.skipped, {"reason": "compare.strategies is empty"})
        return {"skipped": "compare.strategies is empty"}
    arms = Arms(cfg, layout)
    cells = [arms.cell(spec, seed) for spec in cc.strategies for seed in cc.seeds]
    trials, meta = [t for t, _ in cells], {t.name: m for t, m in cells}
    tune_dir = layout.writable(COMPARE.tune)
    done, failed = run_trials("compare", trials, fine_tune_and_score, tune_dir,
                              cc.cpus_per_trial, None, cfg.train.max_failures)
    if failed:
        raise RuntimeError(f"compare: trials failed: {[f['trial'] for f in failed]} "
                           f"(logs under {tune_dir}; re-run the stage to retry them)")
    by_name = {d["trial"]: d for d in done}
    keys = (*SCORES, "steps", "train_tokens", "seconds", "by_depth", "by_complexity")
    results = [dict(meta[t.name], **{k: by_name[t.name][k] for k in keys
                                     if k in by_name[t.name]}) for t in trials]
    agg = aggregate(results)
    layout.write_json(COMPARE.results, {"cells": results, "strategies": agg})
    layout.write_text(COMPARE.table, markdown_table(agg))
    log.info("compare:\n%s", markdown_table(agg))
    return {n: {m: round(a[f"macro_{m}"]["mean"], 4) for m in ("exact_match", "token_accuracy")
                if a[f"macro_{m}"]} for n, a in agg.items()}
