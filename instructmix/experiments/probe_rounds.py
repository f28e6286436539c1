"""Rounds of probing and solving (`select.rounds` > 1), as Beyond IID iterates.

Round 1 is the probe stage's first sweep: Γ around D0, then the MILP mixture within the
trust region around the proportional mixture. Each further round takes the last mixture as
the centre: its shares at D0's size become the probes' base (`design.centre_counts`), one
intervention probe per category adds to it (same seeds and warm starts), Γ is estimated
again, and the MILP moves within the trust region around the centre. The rounds stop after
`select.rounds`, or when a move gains less than `select.round_tolerance` of the objective
(α-weighted Γ gain, under the new Γ) at the centre. Every round's centre, Γ, mixture,
objective and probe cost is recorded (PROBE.rounds); the select stage solves around the last
round's centre, so it reproduces the last round's mixture.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from instructmix.config import RunConfig
from instructmix.probes.design import centre_counts, largest_remainder, plan
from instructmix.probes.estimate import Estimates, estimate
from instructmix.selectors.strategies import milp_solve

log = logging.getLogger("instructmix")

# (probes of a round, Tune experiment name) -> their records (`probe_stage._records`)
RunProbes = Callable[[list[dict], str], list[dict]]


def _record(r: int, names: list[str], centre: np.ndarray, counts: np.ndarray, info: dict,
            est: Estimates, records: list[dict], unit: np.ndarray, budget: float) -> dict:
    """A round: `centre` in items; the objective at the centre and the share of the budget
    moved are in the solver's terms (the centre it used: rescaled to a token budget)."""
    weights = np.array([info["weights"][c] for c in names])
    used = np.asarray(info["current"], dtype=float)
    at_centre = float(weights @ used)
    moved = float(unit @ np.abs(counts - used) / 2 / budget)
    return {"round": r, "centre": dict(zip(names, centre.tolist(), strict=True)),
            "counts": dict(zip(names, counts.tolist(), strict=True)),
            "objective": info["objective"], "objective_at_centre": at_centre,
            "gain": info["objective"] - at_centre, "moved_share": moved,
            "status": info["status"], "gamma": est.interactions["gamma"],
            "lo": est.interactions["lo"], "hi": est.interactions["hi"],
            "unidentified": est.summary.get("unidentified", []),
            "probe_trials": len(records),
            "probe_train_tokens": int(sum(x.get("train_tokens") or 0 for x in records)),
            "probe_trial_seconds": round(sum(x.get("seconds") or 0 for x in records), 1)}


def run_rounds(cfg: RunConfig, est: Estimates, records: list[dict], facts: tuple,
               cats: np.ndarray, usable: np.ndarray, run_probes: RunProbes,
               ground_truth: dict | None) -> tuple[Estimates, list[dict], list[dict]]:
    """Rounds 2.. of probes around the current mixture. `facts`: the select stage's view of
    the pool (`strategies.pool_facts`); `records`: round 1's probe records. Returns (the
    last round's estimate, every round's record, the later rounds' probe records)."""
    sc, pc = cfg.select, cfg.probes
    names, available, tokens, budget_items = facts
    unit = tokens if sc.budget_unit == "tokens" else np.ones(len(names))
    centre = largest_remainder(available, budget_items, available)
    counts, info = milp_solve(sc, names, available, tokens, budget_items, est.interactions)
    rounds = [_record(1, names, centre, counts, info, est, records, unit, sc.budget)]
    regression = est.interactions.get("regression")  # round 1 has every probe design
    spent: list[dict] = []
    for r in range(2, sc.rounds + 1):
        centre = counts
        base = centre_counts(names, centre, available, pc)
        probes, _ = plan(cats, usable, pc, cfg.seed, base, prefix=f"r{r}-")
        log.info("probes: round %d of %d, %d trials around the mixture %s", r, sc.rounds,
                 len(probes), base)
        recs = run_probes(probes, f"round{r}")
        spent += recs
        est = estimate(recs, names, pc, ground_truth)
        if regression is not None:
            est.interactions["regression"] = regression
        counts, info = milp_solve(sc, names, available, tokens, budget_items,
                                  est.interactions, centre.astype(float))
        rounds.append(dict(_record(r, names, centre, counts, info, est, recs, unit, sc.budget),
                           base=base))
        last = rounds[-1]
        if last["gain"] < sc.round_tolerance * abs(last["objective_at_centre"]):
            last["stopped"] = (f"the move gained {last['gain']:.4g}, less than "
                               f"round_tolerance={sc.round_tolerance:g} x the objective at "
                               f"the centre ({last['objective_at_centre']:.4g})")
            log.info("probes: rounds stop after round %d: %s", r, last["stopped"])
            break
    return est, rounds, spent
