"""Probe stage: short fine-tunes on Ray Tune -> Γ with intervals -> dependency DAG.

Design (a), interventions: per seed s, a base mixture D0 (`base_per_category` items of every
category) and one probe per category j (D0 + `add_per_category` more items of j).
Design (b), random mixtures: Dirichlet(1) proportions of a total drawn in [0.5, 1.5] × |D0|.
Every probe × seed is one Tune trial training the run's model with the target run's loop;
its score for category i (`probes.score`) is minus the mean response loss, or the response
token accuracy, on `valid_per_category` pool rows of i held out from every selection (the
eval set never chooses data).

Writes (see `PROBE` in instructmix.layout): every trial (mixture, scores, seconds, or
failure), Γ from the interventions (or from the regression for design b) with CIs, the
regression estimate on all probes and sign recovery when the pool has a ground truth; the
dependency DAG and tiers; the validation ids; the RegMix fit; what the probes cost.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from instructmix.cluster.sweep import run_trials
from instructmix.config import ProbesConfig, RunConfig
from instructmix.experiments.trial import TrialSpec, fine_tune_and_score, in_process
from instructmix.layout import POOL, PROBE, RunLayout
from instructmix.probes.design import base_mixture, plan, split_validation
from instructmix.probes.estimate import estimate
from instructmix.runtime import fail_trial

log = logging.getLogger("instructmix")


def probe_train(cfg: RunConfig):
    """The target run's train settings, in one process, at the probe section's size."""
    pc = cfg.probes
    return in_process(cfg.train, epochs=pc.epochs, micro_batch_size=pc.micro_batch_size,
                      lr=pc.lr or cfg.train.lr, max_steps=None,
                      warmup_steps=min(cfg.train.warmup_steps, 10), log_every=10)


class ProbeSets:
    """Writes each trial's ordered training rows next to the validation rows."""

    def __init__(self, cfg: RunConfig, layout: RunLayout, pool: pa.Table, valid: np.ndarray):
        self.cfg, self.layout, self.pool = cfg, layout, pool
        self.dir = layout.writable(PROBE.sets)
        self.dir.mkdir(exist_ok=True)
        self.validation = self.dir / "validation.parquet"
        pq.write_table(pool.filter(pa.array(valid)), self.validation)
        self.base_model = layout.model_path()

    def start(self, s: int) -> str:
        """Seed s's probes start from its warm model (random mixtures: seed s mod seeds)."""
        pc = self.cfg.probes
        if not pc.warm_start_epochs:
            return self.base_model
        return str(self.layout.writable(PROBE.warm) / f"s{s % pc.seeds}")

    def trial(self, name: str, seed: int, rows: np.ndarray, model: str, train,
              save_to: str | None = None) -> TrialSpec:
        order = np.random.default_rng([self.cfg.seed, 99, seed]).permutation(rows)
        path = self.dir / f"{name}.parquet"
        pq.write_table(self.pool.take(pa.array(order)), path)
        marker = self.layout.stage_dir("probe") / f"failed-once-{name}"
        fail = str(marker) if fail_trial() == name else None
        return TrialSpec(name, seed, str(path), str(self.validation), model, train,
                         save_to=save_to, fail_once=fail)


def _sweep(name: str, trials: list[TrialSpec], layout: RunLayout,
           pc: ProbesConfig) -> list[dict]:
    """Run trials on Tune; failures after the retries stop the stage, naming them."""
    tune_dir = layout.writable(PROBE.tune)
    done, failed = run_trials(name, trials, fine_tune_and_score, tune_dir,
                              pc.cpus_per_trial, pc.max_concurrent_trials, pc.max_failures)
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} trial(s) failed after {pc.max_failures} "
                           f"retries: {[f['trial'] for f in failed]} (logs under "
                           f"{tune_dir / name}; re-run the stage to retry only those)")
    return done


def _warm_start(cfg: RunConfig, sets: ProbeSets, cats, usable, train) -> list[dict]:
    """One warm-start trial per probe seed (D0 for `warm_start_epochs`), saved as that
    seed's starting model."""
    pc = cfg.probes
    if not pc.warm_start_epochs:
        return []
    warm = [sets.trial(f"warm-s{s}", s, base_mixture(cats, usable, pc, cfg.seed, s),
                       sets.base_model, in_process(train, epochs=pc.warm_start_epochs),
                       save_to=sets.start(s)) for s in range(pc.seeds)]
    log.info("probes: %d warm-start trials (D0, %d epochs)", len(warm), pc.warm_start_epochs)
    return _sweep("warm", warm, sets.layout, pc)


def _records(probes: list[dict], done: list[dict], cats: np.ndarray) -> list[dict]:
    by_name = {d["trial"]: d for d in done}
    records = []
    for p in probes:
        counts = {c: int(n) for c, n in zip(*np.unique(cats[p["rows"]], return_counts=True),
                                            strict=True)}
        d = by_name.get(p["name"], {})
        records.append({"name": p["name"], "probe": p["probe"], "seed": p["seed"],
                        "counts": counts, "loss": d.get("loss"),
                        "token_accuracy": d.get("token_accuracy"), "steps": d.get("steps"),
                        "train_tokens": d.get("train_tokens"), "seconds": d.get("seconds")})
    return records


def run_probes(cfg: RunConfig, layout: RunLayout) -> dict:
    if not cfg.needs_probes:
        layout.write_json(PROBE.skipped, {"reason": "no strategy needs probes"})
        return {"skipped": "no strategy in select/compare needs probes"}
    pc, pool = cfg.probes, layout.read_pool()
    cats = np.asarray(pool.column("category").to_pylist(), dtype=object)
    valid = split_validation(cats, pc.valid_per_category, cfg.seed)
    names = sorted(set(cats[~valid]))
    if len(names) < 2:
        raise ValueError(f"probes need at least 2 categories in the pool, found {names}")
    layout.write_json(PROBE.validation_ids, [i for i, v in zip(pool.column("id").to_pylist(),
                                                                valid, strict=True) if v])
    sets, train = ProbeSets(cfg, layout, pool, valid), probe_train(cfg)
    probes, notes = plan(cats, ~valid, pc, cfg.seed)
    warm_done = _warm_start(cfg, sets, cats, ~valid, train)
    trials = [sets.trial(p["name"], p["seed"], p["rows"], sets.start(p["seed"]), train)
              for p in probes]
    log.info("probes: %d trials (%s design, %d seeds) on %d categories", len(trials),
             pc.design, pc.seeds, len(names))
    done, failed = run_trials("probes", trials, fine_tune_and_score,
                              layout.writable(PROBE.tune), pc.cpus_per_trial,
                              pc.max_concurrent_trials, pc.max_failures)
    records = _records(probes, done, cats)
    layout.write_json(PROBE.probes, {"trials": records, "failed": failed, "notes": notes,
                                     "categories": names, "train": train.model_dump()})
    if failed:
        raise RuntimeError(f"probes: {len(failed)} trial(s) failed after {pc.max_failures} "
                           f"retries: {[f['trial'] for f in failed]}; see "
                           f"{layout.path(PROBE.probes)} (re-run the stage to retry only those)")
    est = estimate(records, names, pc, layout.read_json(POOL.ground_truth, None))
    layout.write_json(PROBE.regression, est.regression_shares)
    layout.write_json(PROBE.interactions, est.interactions)
    layout.write_json(PROBE.dependencies, est.dependencies)
    spent = records + warm_done
    cost = {"probe_trials": len(records), "warm_start_trials": pc.seeds if warm_done else 0,
            "probe_train_tokens": int(sum(r["train_tokens"] or 0 for r in spent)),
            "probe_trial_seconds": round(sum(r["seconds"] or 0 for r in spent), 1)}
    layout.write_json(PROBE.cost, cost)
    return dict(est.summary, **cost)
