"""Probe stage: short fine-tunes on Ray Tune -> Γ with intervals -> dependency DAG.

Design (a), interventions: per seed s, a base mixture D0 (`base_per_category` items of every
category) and one probe per category j (D0 + `add_per_category` more items of j).
Design (b), random mixtures: Dirichlet(1) proportions of a total drawn in [0.5, 1.5] × |D0|.
Every probe × seed is one Tune trial training the run's model (or the proxy `probes.model`,
which this stage builds) with the target run's loop;
its score for category i (`probes.score`) is minus the mean response loss, or the response
token accuracy, on `valid_per_category` pool rows of i held out from every selection (the
eval set never chooses data).

Writes (see `PROBE` in instructmix.layout): every trial (mixture, scores, seconds, or
failure), Γ from the interventions (or from the regression for design b) with CIs, the
regression estimate on all probes and sign recovery when the pool has a ground truth; the
dependency DAG and tiers; the validation ids; the RegMix fit; what the probes cost; with
`select.rounds` > 1 every round of probing and solving (`probe_rounds`, PROBE.rounds: Γ,
the DAG and the curriculum then come from the last round).

Dependencies (`probes.dependencies`): "order" (default) runs a second Tune sweep of order
probes (`instructmix.probes.order`: j's rows then i's against a neutral mix then i's, same
warm start per seed) for the pairs with γ_ij > 0 and takes the DAG from them; without the
intervention design or without such a pair it falls back to the asymmetry of Γ and says so
in the DAG's notes. Their trials are listed in the probes' record, their tokens and seconds
counted in the cost.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from instructmix.cluster.sweep import per_trial, run_trials
from instructmix.config import ProbesConfig, RunConfig
from instructmix.experiments.trial import TrialSpec, fine_tune_and_score, in_process
from instructmix.layout import MODEL, POOL, PROBE, RunLayout
from instructmix.probes.design import base_mixture, plan, split_validation
from instructmix.probes.estimate import Estimates, estimate, order_dependencies
from instructmix.probes.order import candidates, plan_order
from instructmix.runtime import fail_trial
from instructmix.training.lora import check_adapters
from instructmix.training.model_factory import make_model

log = logging.getLogger("instructmix")


def probe_train(cfg: RunConfig):
    """The target run's train settings, in one process, at the probe section's size, with
    the probes' own LoRA setting."""
    pc = cfg.probes
    return in_process(cfg.train, epochs=pc.epochs, micro_batch_size=pc.micro_batch_size,
                      lr=pc.lr or cfg.train.lr, max_steps=None, lora=pc.lora,
                      warmup_steps=min(cfg.train.warmup_steps, 10), log_every=10)


class ProbeSets:
    """Writes each trial's ordered training rows next to the validation rows."""

    def __init__(self, cfg: RunConfig, layout: RunLayout, pool: pa.Table, valid: np.ndarray):
        self.cfg, self.layout, self.pool = cfg, layout, pool
        self.dir = layout.writable(PROBE.sets)
        self.dir.mkdir(exist_ok=True)
        self.validation = self.dir / "validation.parquet"
        pq.write_table(pool.filter(pa.array(valid)), self.validation)
        self.base_model = layout.probe_model()["path"]

    def start(self, s: int) -> str:
        """Seed s's probes start from its warm model (random mixtures: seed s mod seeds)."""
        pc = self.cfg.probes
        if not pc.warm_start_epochs:
            return self.base_model
        return str(self.layout.writable(PROBE.warm) / f"s{s % pc.seeds}")

    def trial(self, name: str, seed: int, rows: np.ndarray, model: str, train,
              save_to: str | None = None, shuffle: bool = True) -> TrialSpec:
        """The trial of `rows`, shuffled (seeded), or in the given order."""
        order = (np.random.default_rng([self.cfg.seed, 99, seed]).permutation(rows)
                 if shuffle else np.asarray(rows))
        path = self.dir / f"{name}.parquet"
        pq.write_table(self.pool.take(pa.array(order)), path)
        marker = self.layout.stage_dir("probe") / f"failed-once-{name}"
        fail = str(marker) if fail_trial() == name else None
        return TrialSpec(name, seed, str(path), str(self.validation), model, train,
                         score_batch_size=self.cfg.eval.batch_size, save_to=save_to,
                         fail_once=fail)


def _per_trial(pc: ProbesConfig) -> dict:
    return per_trial(pc.cpus_per_trial, pc.gpus_per_trial)


def _sweep(name: str, trials: list[TrialSpec], layout: RunLayout,
           pc: ProbesConfig) -> list[dict]:
    """Run trials on Tune; failures after the retries stop the stage, naming them."""
    tune_dir = layout.writable(PROBE.tune)
    done, failed = run_trials(name, trials, fine_tune_and_score, tune_dir, _per_trial(pc),
                              pc.max_concurrent_trials, pc.max_failures)
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


def _write_validation(layout: RunLayout, pool, valid: np.ndarray) -> None:
    layout.write_json(PROBE.validation_ids, [i for i, v in zip(pool.column("id").to_pylist(),
                                                                valid, strict=True) if v])


def _fallback(est: Estimates, why: str) -> list[dict]:
    note = f"estimator: asymmetry of Γ instead of the order probes ({why})"
    est.dependencies["notes"].append(note)
    est.dependencies["estimator_requested"] = "order"
    log.info("probes: %s", note)
    return []


def _order_probes(cfg: RunConfig, sets: ProbeSets, est: Estimates, names: list[str],
                  cats: np.ndarray, usable: np.ndarray, train) -> list[dict]:
    """Order probes, both directions, of the pairs with γ_ij > 0 or γ_ji > 0 (one Tune
    sweep, each seed's probes from that seed's warm start); replaces `est`'s DAG with
    theirs. Returns their records."""
    pc = cfg.probes
    if pc.dependencies != "order":
        return []
    if pc.design == "random" or est.gamma is None or est.gamma.method != "intervention":
        return _fallback(est, "order probes need the intervention design: probes.design "
                         f"is {pc.design!r}")
    pairs, notes = candidates(est.gamma.gamma, est.gamma.delta, names, pc.max_order_pairs)
    probes, plan_notes = plan_order(cats, usable, pc, cfg.seed, pairs)
    if not probes:
        return _fallback(est, "no pair with γ_ij > 0 to order-probe")
    one_pass = in_process(train, epochs=1)  # the plan lays out the passes in order
    trials = [sets.trial(p["name"], p["seed"], p["rows"], sets.start(p["seed"]), one_pass,
                         shuffle=False) for p in probes]
    log.info("probes: %d order-probe trials for %d directed pairs (%d seeds)", len(trials),
             len(pairs), pc.seeds)
    by_name = {d["trial"]: d for d in _sweep("order", trials, sets.layout, pc)}
    records = [dict({k: v for k, v in p.items() if k != "rows"}, rows=len(p["rows"]),
                    **{k: by_name.get(p["name"], {}).get(k) for k in _KEPT}) for p in probes]
    new = order_dependencies(est, pairs, records, names, pc,
                             sets.layout.read_json(POOL.ground_truth, None),
                             [*notes, *plan_notes])
    est.dependencies, est.summary = new.dependencies, new.summary
    return records


_KEPT = ("loss", "token_accuracy", "steps", "train_tokens", "seconds")


def run_probes(cfg: RunConfig, layout: RunLayout) -> dict:
    if not cfg.held_out:
        layout.write_json(PROBE.skipped, {"reason": "no strategy needs probes"})
        return {"skipped": "no strategy in select/compare needs probes"}
    pc, pool = cfg.probes, layout.read_pool()
    cats = np.asarray(pool.column("category").to_pylist(), dtype=object)
    valid = split_validation(cats, pc.valid_per_category, cfg.seed)
    if not cfg.needs_probes:  # only the held-out rows (RAISE's rewards)
        _write_validation(layout, pool, valid)
        layout.write_json(PROBE.skipped, {"reason": "no strategy needs probes; only the "
                                          "held-out validation rows are written"})
        return {"skipped": "no strategy needs probes", "held_out": int(valid.sum())}
    names = sorted(set(cats[~valid]))
    if len(names) < 2:
        raise ValueError(f"probes need at least 2 categories in the pool, found {names}")
    _write_validation(layout, pool, valid)
    if pc.model is not None:  # the proxy the probes train instead of the target
        make_model(pc.model, layout, PROBE.proxy_info, PROBE.proxy_hf, cfg.seed, "probes.model")
    sets, train = ProbeSets(cfg, layout, pool, valid), probe_train(cfg)
    check_adapters(sets.base_model, pc.lora, "probes.lora")
    probes, notes = plan(cats, ~valid, pc, cfg.seed)
    warm_done = _warm_start(cfg, sets, cats, ~valid, train)
    trials = [sets.trial(p["name"], p["seed"], p["rows"], sets.start(p["seed"]), train)
              for p in probes]
    log.info("probes: %d trials (%s design, %d seeds) on %d categories", len(trials),
             pc.design, pc.seeds, len(names))
    done, failed = run_trials("probes", trials, fine_tune_and_score,
                              layout.writable(PROBE.tune), _per_trial(pc),
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
    est, rounds = _rounds(cfg, sets, est, records, pool, cats, ~valid, train)
    layout.write_json(PROBE.interactions, est.interactions)
    ordered = _order_probes(cfg, sets, est, names, cats, ~valid, train)
    if ordered or rounds:
        layout.write_json(PROBE.probes, {"trials": records, "round_trials": rounds,
                                         "order_trials": ordered, "failed": failed,
                                         "notes": notes, "categories": names,
                                         "train": train.model_dump()})
    layout.write_json(PROBE.dependencies, est.dependencies)
    cost = probe_cost(layout, records, warm_done, ordered, rounds, pc.seeds)
    layout.write_json(PROBE.cost, cost)
    return dict(est.summary, **cost)


def _rounds(cfg: RunConfig, sets: ProbeSets, est: Estimates, records: list[dict], pool,
            cats: np.ndarray, usable: np.ndarray, train) -> tuple[Estimates, list[dict]]:
    """With `select.rounds` > 1 (milp), the later rounds of probes around the mixture
    (`probe_rounds`); writes every round's record. Returns (the last Γ, their trials)."""
    if cfg.select.rounds == 1:  # rounds > 1 needs milp (checked with the config)
        return est, []
    from instructmix.experiments.probe_rounds import run_rounds
    from instructmix.selectors.strategies import pool_facts

    def run_probes(probes: list[dict], name: str) -> list[dict]:
        trials = [sets.trial(p["name"], p["seed"], p["rows"], sets.start(p["seed"]), train)
                  for p in probes]
        return _records(probes, _sweep(name, trials, sets.layout, cfg.probes), cats)

    facts = pool_facts(cats, np.asarray(pool.column("n_tokens")), usable, cfg.select)
    est, rounds, spent = run_rounds(cfg, est, records, facts, cats, usable, run_probes,
                                    sets.layout.read_json(POOL.ground_truth, None))
    sets.layout.write_json(PROBE.rounds, {"rounds": rounds})
    return est, spent


def probe_cost(layout: RunLayout, records: list[dict], warm: list[dict], ordered: list[dict],
               rounds: list[dict], seeds: int) -> dict:
    """Trials, tokens and seconds the probes spent (round 1, warm starts, later rounds, order
    probes), and the model they trained (the proxy or the target) with both parameter
    counts: compute ~ tokens x parameters."""
    spent = records + warm + rounds + ordered
    probe_model, target = layout.probe_model(), layout.read_json(MODEL.info)
    return {"probe_trials": len(records), "warm_start_trials": seeds if warm else 0,
            "round_trials": len(rounds), "order_trials": len(ordered),
            "order_train_tokens": int(sum(r["train_tokens"] or 0 for r in ordered)),
            "probe_train_tokens": int(sum(r["train_tokens"] or 0 for r in spent)),
            "probe_trial_seconds": round(sum(r["seconds"] or 0 for r in spent), 1),
            "probe_model": probe_model["path"], "proxy": layout.exists(PROBE.proxy_info),
            "probe_model_parameters": probe_model.get("parameters"),
            "target_parameters": target.get("parameters")}
