"""From probe scores to the probe stage's results: Γ with intervals (interventions, or the
regression for random mixtures), the RegMix fit on shares, the dependency DAG (asymmetry of
Γ here; from order probes in `order_dependencies`) and, on the testbed, recovery of the
planted relations. Pure: the probe stage writes what it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from instructmix.config import ProbesConfig
from instructmix.probes.dependencies import dag_from_edges, infer_dag
from instructmix.probes.interactions import (
    GammaEstimate,
    estimate_gamma,
    estimate_regression,
    gamma_from_beta,
    sign_recovery,
)
from instructmix.probes.order import order_edges, per_seed_effects, typical_own_effect

log = logging.getLogger("instructmix")


@dataclass
class Estimates:
    interactions: dict  # Γ with intervals, the regression estimate, sign recovery
    regression_shares: dict  # RegMix: scores regressed on mixture shares
    dependencies: dict  # DAG, tiers, planted edges found
    summary: dict
    gamma: GammaEstimate | None = field(default=None, repr=False)


def _scores(r: dict, names: list[str], score: str) -> dict:
    """Probe score per category, higher is better: negative loss or token accuracy."""
    if score == "loss":
        return {c: -float(r["loss"][c]) for c in names}
    return {c: float(r["token_accuracy"][c]) for c in names}


def _gamma(records: list[dict], names: list[str], pc: ProbesConfig):
    """(Γ estimate, regression on counts or None, RegMix fit on shares)."""
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
    return est, reg, estimate_regression(shares, y, names, ci=pc.ci)


def estimate(records: list[dict], names: list[str], pc: ProbesConfig,
             ground_truth: dict | None) -> Estimates:
    """Γ, regression, DAG and (testbed) checks against the planted ground truth."""
    est, reg, share_fit = _gamma(records, names, pc)
    interactions = dict(est.to_json(), score=pc.score)
    if reg is not None:
        interactions["regression"] = gamma_from_beta(reg, min_self=pc.min_self_effect).to_json()
    gt = ground_truth
    if gt:
        interactions["sign_recovery"] = sign_recovery(est, gt["interactions"])
        interactions["sign_recovery_strict"] = sign_recovery(est, gt["interactions"],
                                                             strict=True)
    dag = infer_dag(est.gamma, names, lo=est.lo, threshold=pc.dag_threshold)
    deps = dict(dag.to_json(), estimator="asymmetry")
    summary = {"categories": len(names), "method": est.method,
               "unidentified": sorted(est.unidentified)}
    if gt:
        summary["sign_recovery"] = interactions["sign_recovery"]["share"]
    summary.update(_recovery(deps, gt))
    log.info("probes: %s", summary)
    return Estimates(interactions, share_fit.to_json(), deps, summary, est)


def _recovery(deps: dict, gt: dict | None) -> dict:
    """Marks each planted prerequisite found or not (in `deps`); the summary's counts."""
    out = {"dependencies": deps["estimator"], "edges": len(deps["edges"])}
    if gt:
        edges = {(e["base"], e["dependent"]) for e in deps["edges"]}
        planted = {(e["base"], e["dependent"]) for e in gt["prerequisites"]}
        deps["planted_edges"] = [dict(e, found=(e["base"], e["dependent"]) in edges)
                                 for e in gt["prerequisites"]]
        out["planted_edges_found"] = sum(e["found"] for e in deps["planted_edges"])
        out["unplanted_edges"] = len(edges - planted)
    return out


def order_dependencies(est: Estimates, pairs: list[dict], records: list[dict],
                       names: list[str], pc: ProbesConfig, ground_truth: dict | None,
                       notes: list[str]) -> Estimates:
    """`est` with its DAG from the order probes (`records`: the probes of
    `order.plan_order` with their scores; `pairs`: the candidates probed). The asymmetry
    DAG's edges stay under `asymmetry_edges` for comparison."""
    scale = typical_own_effect(est.gamma.delta) if est.gamma is not None else float("nan")
    rows, rule_notes = order_edges(per_seed_effects(records, pc.score), scale, pc.ci,
                                   pc.dag_threshold)
    by_pair = {(p["base"], p["dependent"]): p for p in pairs}
    for r in rows:
        p = by_pair.get((r["base"], r["dependent"]), {})
        r["gamma"], r["delta"] = p.get("gamma"), p.get("delta")
    edges = [(r["base"], r["dependent"], float(r["effect_gamma_units"])) for r in rows
             if r["edge"]]
    dag = dag_from_edges(names, edges, pc.dag_threshold, [*notes, *rule_notes])
    deps = dict(dag.to_json(), estimator="order", score=pc.score, ci=pc.ci,
                typical_own_effect=scale, order_probes=rows,
                asymmetry_edges=est.dependencies["edges"])
    if ground_truth:
        deps["asymmetry_planted_edges_found"] = est.summary.get("planted_edges_found")
    summary = dict(est.summary, order_pairs=len(rows))
    summary.update(_recovery(deps, ground_truth))
    log.info("probes (order): %s", summary)
    return Estimates(est.interactions, est.regression_shares, deps, summary, est.gamma)
