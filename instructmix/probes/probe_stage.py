"""Probe stage: short fine-tunes on Ray Tune -> Γ with intervals -> dependency DAG.

Design (a), interventions: per seed s, a base mixture D0 (`base_per_category` items of every
category) and one probe per category j (D0 + `add_per_category` more items of j).
Design (b), random mixtures: Dirichlet(1) proportions of a total drawn in [0.5, 1.5] × |D0|.
Every probe × seed is one Tune trial training the run's model with the target run's loop;
its score for category i (`probes.score`) is minus the mean response loss, or the response
token accuracy, on `valid_per_category` pool rows of i held out from every selection (the
eval set never chooses data).

Writes: `probes.json` (every trial: mixture, scores, seconds, or failure),
`interactions.json` (Γ from the interventions, or from the regression for design b, with CIs;
the regression estimate on all probes; sign recovery when the pool has a ground truth),
`dependencies.json` (DAG, tiers), `validation_ids.json`, `regression_shares.json` (RegMix fit).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from instructmix.config import RunConfig
from instructmix.probes.dependencies import infer_dag
from instructmix.probes.interactions import (
    estimate_gamma,
    estimate_regression,
    gamma_from_beta,
    sign_recovery,
)
from instructmix.selectors.select_stage import read_pool

log = logging.getLogger("instructmix")


def split_validation(cats: np.ndarray, per_category: int, seed: int) -> np.ndarray:
    """Boolean mask of rows held out to score probes: `per_category` random rows per category
    (at most half of a category)."""
    rng = np.random.default_rng([seed, 7])
    mask = np.zeros(len(cats), dtype=bool)
    for c in sorted(set(cats)):
        rows = np.flatnonzero(cats == c)
        mask[rng.permutation(rows)[: min(per_category, len(rows) // 2)]] = True
    return mask


def _permutations(cats, usable, seed: int, s: int) -> dict:
    rng = np.random.default_rng([seed, s])
    return {c: rng.permutation(np.flatnonzero((cats == c) & usable))
            for c in sorted(set(cats[usable]))}


def base_mixture(cats: np.ndarray, usable: np.ndarray, pc, seed: int, s: int) -> np.ndarray:
    """D0 of probe seed `s`: the first `base_per_category` rows of every category."""
    perm = _permutations(cats, usable, seed, s)
    return np.concatenate([perm[c][: pc.base_per_category] for c in sorted(perm)])


def plan(cats: np.ndarray, usable: np.ndarray, pc, seed: int) -> tuple[list[dict], list[str]]:
    """Probe mixtures as row indices. Returns (probes, notes)."""
    names = sorted(set(cats[usable]))
    notes, probes = [], []
    for s in range(pc.seeds if pc.design != "random" else 0):
        perm = _permutations(cats, usable, seed, s)
        d0 = base_mixture(cats, usable, pc, seed, s)
        probes.append({"name": f"base-s{s}", "probe": "base", "seed": s, "rows": d0})
        for c in names:
            extra = perm[c][pc.base_per_category: pc.base_per_category + pc.add_per_category]
            if len(extra) < pc.add_per_category and s == 0:
                notes.append(f"category {c!r} has {len(perm[c])} usable rows: its probe adds "
                             f"{len(extra)} instead of {pc.add_per_category}")
            probes.append({"name": f"{c}-s{s}", "probe": c, "seed": s,
                           "rows": np.concatenate([d0, extra])})
    if pc.design != "intervention":
        size = pc.base_per_category * len(names)
        for k in range(pc.random_mixtures):
            rng = np.random.default_rng([seed, 1000 + k])
            total = int(rng.uniform(0.5, 1.5) * size)
            share = rng.dirichlet(np.ones(len(names)))
            rows = []
            for c, n in zip(names, rng.multinomial(total, share), strict=True):
                rows.append(rng.permutation(np.flatnonzero((cats == c) & usable))[:n])
            probes.append({"name": f"random-{k}", "probe": f"random-{k}", "seed": k,
                           "rows": np.concatenate(rows)})
    return probes, notes


def _trial_train(cfg: RunConfig) -> dict:
    from instructmix.training.trial import in_process_train

    pc = cfg.probes
    return in_process_train(cfg.train.model_dump(), epochs=pc.epochs,
                            micro_batch_size=pc.micro_batch_size, lr=pc.lr or cfg.train.lr,
                            max_steps=None, warmup_steps=min(cfg.train.warmup_steps, 10),
                            log_every=10)


def run_probes(cfg: RunConfig, out: Path) -> dict:
    if not cfg.needs_probes:
        (out / "skipped.json").write_text(json.dumps({"reason": "no strategy needs probes"}))
        return {"skipped": "no strategy in select/compare needs probes"}
    from instructmix.cluster.sweep import run_trials
    from instructmix.training.model_factory import model_path
    from instructmix.training.trial import fine_tune_and_score

    pc, run_dir = cfg.probes, Path(cfg.run_dir)
    pool = read_pool(run_dir)
    cats = np.asarray(pool.column("category").to_pylist(), dtype=object)
    valid = split_validation(cats, pc.valid_per_category, cfg.seed)
    names = sorted(set(cats[~valid]))
    if len(names) < 2:
        raise ValueError(f"probes need at least 2 categories in the pool, found {names}")
    ids = pool.column("id").to_pylist()
    (out / "validation_ids.json").write_text(json.dumps(
        [i for i, v in zip(ids, valid, strict=True) if v]))
    sets = out / "sets"
    sets.mkdir(exist_ok=True)
    pq.write_table(pool.filter(pa.array(valid)), sets / "validation.parquet")
    probes, notes = plan(cats, ~valid, pc, cfg.seed)
    train = _trial_train(cfg)

    def trial(name: str, seed: int, rows: np.ndarray, model: str, settings: dict,
              save_to: str | None = None) -> dict:
        order = np.random.default_rng([cfg.seed, 99, seed]).permutation(rows)
        f = sets / f"{name}.parquet"
        pq.write_table(pool.take(pa.array(order)), f)
        fail = str(out / f"failed-once-{name}") if pc.fail_trial == name else None
        return {"name": name, "seed": seed, "train_file": str(f),
                "eval_file": str(sets / "validation.parquet"), "model_path": model,
                "train": settings, "generate": False, "fail_once": fail, "save_to": save_to}

    def start(s: int) -> str:
        """Seed s's probes start from its warm model (random mixtures: seed s mod seeds)."""
        return str(out / "warm" / f"s{s % pc.seeds}") if pc.warm_start_epochs else base

    base = model_path(run_dir)
    warm, warm_done = [], []
    if pc.warm_start_epochs:
        warm = [trial(f"warm-s{s}", s, base_mixture(cats, ~valid, pc, cfg.seed, s), base,
                      dict(train, epochs=pc.warm_start_epochs), save_to=start(s))
                for s in range(pc.seeds)]
        log.info("probes: %d warm-start trials (D0, %d epochs)", len(warm),
                 pc.warm_start_epochs)
        warm_done = _sweep("warm", warm, out, pc)
    trials = [trial(p["name"], p["seed"], p["rows"], start(p["seed"]), train) for p in probes]
    log.info("probes: %d trials (%s design, %d seeds) on %d categories", len(trials),
             pc.design, pc.seeds, len(names))
    done, failed = run_trials("probes", trials, fine_tune_and_score, out / "tune",
                              pc.cpus_per_trial, pc.max_concurrent_trials, pc.max_failures)
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
    result = {"trials": records, "failed": failed, "notes": notes, "categories": names,
              "train": train}
    (out / "probes.json").write_text(json.dumps(result, indent=1))
    if failed:
        raise RuntimeError(f"probes: {len(failed)} trial(s) failed after {pc.max_failures} "
                           f"retries: {[f['trial'] for f in failed]}; see {out / 'probes.json'}"
                           " (re-run the stage to retry only those)")
    summary = estimate(records, names, pc, run_dir, out)
    spent = records + warm_done
    cost = {"probe_trials": len(records), "warm_start_trials": len(warm),
            "probe_train_tokens": int(sum(r["train_tokens"] or 0 for r in spent)),
            "probe_trial_seconds": round(sum(r["seconds"] or 0 for r in spent), 1)}
    (out / "cost.json").write_text(json.dumps(cost, indent=1))
    return dict(summary, **cost)


def _sweep(name: str, trials: list[dict], out: Path, pc) -> list[dict]:
    """Run trials on Tune; failures after the retries stop the stage, naming them."""
    from instructmix.cluster.sweep import run_trials
    from instructmix.training.trial import fine_tune_and_score

    done, failed = run_trials(name, trials, fine_tune_and_score, out / "tune",
                              pc.cpus_per_trial, pc.max_concurrent_trials, pc.max_failures)
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} trial(s) failed after {pc.max_failures} "
                           f"retries: {[f['trial'] for f in failed]} (logs under "
                           f"{out / 'tune' / name}; re-run the stage to retry only those)")
    return done


def _scores(r: dict, names: list[str], score: str) -> dict:
    """Probe score per category, higher is better: negative loss or token accuracy."""
    if score == "loss":
        return {c: -float(r["loss"][c]) for c in names}
    return {c: float(r["token_accuracy"][c]) for c in names}


def estimate(records: list[dict], names: list[str], pc, run_dir: Path, out: Path) -> dict:
    """Γ, regression, DAG and (testbed) checks against the planted ground truth."""
    x = np.array([[r["counts"].get(c, 0) for c in names] for r in records], dtype=float)
    y = np.array([list(_scores(r, names, pc.score).values()) for r in records])
    inter = [{"probe": r["probe"], "seed": r["seed"], "scores": _scores(r, names, pc.score)}
             for r in records if not r["probe"].startswith("random-")]
    reg = estimate_regression(x, y, names, ci=pc.ci) if len(records) >= 2 else None
    if pc.design == "random":
        est = gamma_from_beta(reg, min_self=pc.min_self_effect)
    else:
        est = estimate_gamma(inter, names, ci=pc.ci, min_self=pc.min_self_effect)
    shares = x / x.sum(axis=1, keepdims=True)
    share_fit = estimate_regression(shares, y, names, ci=pc.ci)
    (out / "regression_shares.json").write_text(json.dumps(share_fit.to_json(), indent=1))
    interactions = dict(est.to_json(), score=pc.score)
    if reg is not None:
        interactions["regression"] = gamma_from_beta(reg, min_self=pc.min_self_effect).to_json()
    gt_path = run_dir / "pool" / "ground_truth.json"
    gt = json.loads(gt_path.read_text()) if gt_path.is_file() else None
    if gt:
        interactions["sign_recovery"] = sign_recovery(est, gt["interactions"])
        interactions["sign_recovery_strict"] = sign_recovery(est, gt["interactions"],
                                                             strict=True)
    (out / "interactions.json").write_text(json.dumps(interactions, indent=1))
    dag = infer_dag(est.gamma, names, lo=est.lo, threshold=pc.dag_threshold)
    deps = dag.to_json()
    if gt:
        edges = {(e["base"], e["dependent"]) for e in deps["edges"]}
        deps["planted_edges"] = [dict(e, found=(e["base"], e["dependent"]) in edges)
                                 for e in gt["prerequisites"]]
    (out / "dependencies.json").write_text(json.dumps(deps, indent=1))
    summary = {"categories": len(names), "method": est.method, "edges": len(deps["edges"]),
               "unidentified": sorted(est.unidentified)}
    if gt:
        summary["sign_recovery"] = interactions["sign_recovery"]["share"]
        summary["planted_edges_found"] = sum(e["found"] for e in deps["planted_edges"])
    log.info("probes: %s", summary)
    return summary
