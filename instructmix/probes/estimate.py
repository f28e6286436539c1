"""From probe scores to the probe stage's results: Γ with intervals (interventions, or the
regression for random mixtures), the RegMix fit on shares, the dependency DAG and, on the
testbed, recovery of the planted relations. Pure: the probe stage writes what it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from instructmix.config import ProbesConfig
from instructmix.probes.dependencies import infer_dag
from instructmix.probes.interactions import (
    estimate_gamma,
    estimate_regression,
    gamma_from_beta,
    sign_recovery,
)

log = logging.getLogger("instructmix")


@dataclass
class Estimates:
    interactions: dict  # Γ with intervals, the regression estimate, sign recovery
    regression_shares: dict  # RegMix: scores regressed on mixture shares
    dependencies: dict  # DAG, tiers, planted edges found
    summary: dict


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
    deps = dag.to_json()
    if gt:
        edges = {(e["base"], e["dependent"]) for e in deps["edges"]}
        deps["planted_edges"] = [dict(e, found=(e["base"], e["dependent"]) in edges)
                                 for e in gt["prerequisites"]]
    summary = {"categories": len(names), "method": est.method, "edges": len(deps["edges"]),
               "unidentified": sorted(est.unidentified)}
    if gt:
        summary["sign_recovery"] = interactions["sign_recovery"]["share"]
        summary["planted_edges_found"] = sum(e["found"] for e in deps["planted_edges"])
    log.info("probes: %s", summary)
    return Estimates(interactions, share_fit.to_json(), deps, summary)
