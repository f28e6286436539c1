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

import json
import logging
import pickle
from pathlib import Path

import pyarrow as pa

from instructmix.augment.augment_stage import augment_selection, augment_tools
from instructmix.cluster.sweep import per_trial, run_trials
from instructmix.config import PICKED, RunConfig, TrainConfig
from instructmix.experiments.table import (
    SCORES,
    aggregate,
    markdown_table,
    paired_differences,
    paired_table,
    verdicts,
)
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
        self.candidates = None  # built for the first picked arm

    def cell(self, spec: str, seed: int) -> tuple[TrialSpec, dict]:
        cfg, name = self.cfg, f"{spec}-s{seed}"
        strategy, *extras = spec.split("+")
        curriculum = "dependency" if "curriculum" in extras else "none"
        choice = choose_for(cfg, self.layout, self.pool, strategy, curriculum, seed)
        train_file = self.sets / f"{name}.parquet"
        aug = cfg.compare.augmentation(spec)
        whole_run = choice.stream is not None and not aug  # every pass laid out: train once
        summary = write_train_rows(self.pool, choice, train_file, stream=whole_run)
        meta = {"strategy": spec, "seed": seed, "counts": summary["per_category"],
                "selected_tokens": summary["tokens"], "whole_run_curriculum": whole_run}
        train, picker_file = trial_train(cfg), None
        if whole_run:
            train = in_process(train, epochs=1)
        if strategy in PICKED:
            picker_file, train = self._picked(strategy, seed, self.sets / f"{name}.picker.pkl")
            meta["picked_steps"] = train.max_steps
        if aug:
            meta.update(self._augment(self.pool.take(pa.array(choice.order)).to_pylist(), aug,
                                      seed, self.sets / name))
            train_file = RunLayout(self.sets / name).path(AUGMENT.train)
            train = trial_train(cfg, meta["augment"]["matched_items"], len(choice.order))
        meta["global_batch"] = train.micro_batch_size
        trial = TrialSpec(name, seed, str(train_file), str(self.layout.path(POOL.eval)),
                          self.layout.model_path(), train, generate=True,
                          max_new_tokens=cfg.eval.max_new_tokens,
                          score_batch_size=cfg.eval.batch_size, picker_file=picker_file)
        return trial, meta

    def _picked(self, strategy: str, seed: int, path: Path) -> tuple[str, TrainConfig]:
        """A picked arm's pickled picker (over every usable row) and its train settings:
        the steps the budget buys a static arm."""
        from instructmix.experiments.target import picker_for
        from instructmix.selectors.rl.candidates import Candidates

        if self.candidates is None:
            self.candidates = Candidates.from_run(self.cfg, self.layout)
        picker, steps = picker_for(self.cfg, self.layout, strategy, seed, self.candidates)
        with open(path, "wb") as f:
            pickle.dump(picker, f)
        train = trial_train(self.cfg)
        return str(path), in_process(train, max_steps=steps, epochs=max(train.epochs, steps))

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


def _cell(meta: dict, done: dict, keys: tuple) -> dict:
    """A cell's record; a picked arm's counts are the rows it trained on, by category."""
    cell = dict(meta, **{k: done[k] for k in keys if done.get(k) is not None})
    if cell.get("picked"):
        cell["picked"] = json.loads(cell["picked"])
        cell["counts"] = {}
        for window in cell["picked"]:
            for c, n in window["counts"].items():
                cell["counts"][c] = cell["counts"].get(c, 0) + n
    return cell


def run_compare(cfg: RunConfig, layout: RunLayout) -> dict:
    cc = cfg.compare
    if not cc.strategies:
        layout.write_json(COMPARE.skipped, {"reason": "compare.strategies is empty"})
        return {"skipped": "compare.strategies is empty"}
    arms = Arms(cfg, layout)
    cells = [arms.cell(spec, seed) for spec in cc.strategies for seed in cc.seeds]
    trials, meta = [t for t, _ in cells], {t.name: m for t, m in cells}
    tune_dir = layout.writable(COMPARE.tune)
    resources = per_trial(cc.cpus_per_trial, cc.gpus_per_trial)
    done, failed = run_trials("compare", trials, fine_tune_and_score, tune_dir, resources,
                              None, cfg.train.max_failures)
    if failed:
        raise RuntimeError(f"compare: trials failed: {[f['trial'] for f in failed]} "
                           f"(logs under {tune_dir}; re-run the stage to retry them)")
    by_name = {d["trial"]: d for d in done}
    keys = (*SCORES, "steps", "train_tokens", "seconds", "by_depth", "by_complexity", "picked")
    results = [_cell(meta[t.name], by_name[t.name], keys) for t in trials]
    agg = aggregate(results)
    baseline = "iid" if "iid" in agg else next(iter(agg))
    paired = {m: paired_differences(results, baseline, m) for m in ("exact_match",
                                                                    "token_accuracy")}
    layout.write_json(COMPARE.results, {"cells": results, "strategies": agg,
                                        "paired": dict(paired, baseline=baseline)})
    text = markdown_table(agg) + "".join("\n" + paired_table(p, baseline, m)
                                         for m, p in paired.items() if p)
    text += "\n" + verdicts(paired["exact_match"], baseline)
    layout.write_text(COMPARE.table, text)
    log.info("compare:\n%s", text)
    return {n: {m: round(a[f"macro_{m}"]["mean"], 4) for m in ("exact_match", "token_accuracy")
                if a[f"macro_{m}"]} for n, a in agg.items()}
