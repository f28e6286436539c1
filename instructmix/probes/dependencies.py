"""Dependency DAG over categories from the asymmetry of Γ (Beyond IID).

Rule: edge j → i ("j is a prerequisite of i") when
  (1) γ_ij > threshold (training on j clearly helps i),
  (2) if `lo` is given, lo_ij > 0 (the CI excludes "no help"; NaN lo = no CI, e.g. a single
      seed: the condition is skipped for that entry and a note says so), and
  (3) γ_ij − γ_ji > threshold (j helps i clearly more than i helps j).
The edge weight is the asymmetry γ_ij − γ_ji. NaN entries (unidentified rows) never make an
edge. With threshold ≥ 0, (3) keeps at most one direction per pair, but longer cycles can
remain: while any exist, the weakest edge lying on a cycle (smallest weight, ties broken by
(base, dependent) names) is removed and recorded in `removed`. The result does not depend
on the order of `categories`. `dag_from_edges` (cycle removal and tiers) also serves the
order-probe estimator (`instructmix.probes.order`).

Tiers: no incoming but some outgoing edges → "base"; incoming and outgoing → "middle";
only incoming → "dependent"; isolated categories → "middle", so a curriculum leaves them in
its uniform phase rather than pushing them early or late.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TIERS = ("base", "middle", "dependent")


@dataclass
class Dag:
    categories: list[str]
    edges: list[tuple[str, str, float]]  # (base, dependent, weight = γ_ij − γ_ji)
    removed: list[dict] = field(default_factory=list)
    tiers: dict[str, str] = field(default_factory=dict)
    threshold: float = 0.1
    notes: list[str] = field(default_factory=list)

    def parents(self, category: str) -> list[str]:
        return sorted(b for b, d, _ in self.edges if d == category)

    def to_json(self) -> dict:
        return {"categories": list(self.categories), "threshold": self.threshold,
                "edges": [{"base": b, "dependent": d, "weight": w} for b, d, w in self.edges],
                "removed": [dict(r) for r in self.removed], "tiers": dict(self.tiers),
                "notes": list(self.notes)}


def _reach(cats: list[str], edges: list[tuple[str, str, float]]) -> np.ndarray:
    """reach[u, v]: a directed path of length >= 1 leads from u to v."""
    pos = {c: k for k, c in enumerate(cats)}
    r = np.zeros((len(cats), len(cats)), dtype=bool)
    for b, d, _ in edges:
        r[pos[b], pos[d]] = True
    for k in range(len(cats)):  # Warshall's transitive closure
        r |= r[:, [k]] & r[[k], :]
    return r


def _tier(has_in: bool, has_out: bool) -> str:
    if has_in and has_out:
        return "middle"
    if has_out:
        return "base"
    return "dependent" if has_in else "middle"


def infer_dag(gamma, categories: list[str], lo=None, threshold: float = 0.1) -> Dag:
    """Prerequisite DAG from γ (row i = ability scored, column j = category trained)."""
    g = np.asarray(gamma, dtype=float)
    cats = list(categories)
    c = len(cats)
    if g.shape != (c, c) or (lo is not None and np.shape(lo) != (c, c)):
        raise ValueError(f"gamma and lo must be {c}×{c}")
    if threshold < 0:
        raise ValueError("threshold must be >= 0 (otherwise both directions could qualify)")
    low = np.full((c, c), np.inf) if lo is None else np.asarray(lo, dtype=float).copy()
    edges, notes = [], []
    if lo is not None and np.isnan(low[~np.eye(c, dtype=bool)]).any():
        notes.append("lo has NaN entries (no CI): the lo > 0 condition is skipped for them")
        low[np.isnan(low)] = np.inf
    with np.errstate(invalid="ignore"):
        for i in range(c):
            for j in range(c):
                asym = g[i, j] - g[j, i]
                if i != j and g[i, j] > threshold and low[i, j] > 0 and asym > threshold:
                    edges.append((cats[j], cats[i], float(asym)))
    nan_rows = [cats[i] for i in range(c) if np.isnan(g[i]).all()]
    if nan_rows:
        notes.append(f"unidentified (NaN) rows get no edge in or out: {nan_rows}")
    return dag_from_edges(cats, edges, threshold, notes)


def dag_from_edges(categories: list[str], edges: list[tuple[str, str, float]],
                   threshold: float, notes: list[str] | None = None) -> Dag:
    """The DAG of candidate edges (base, dependent, weight) of any estimator: while cycles
    remain, the weakest edge on one is removed (recorded in `removed`); then the tiers."""
    cats = list(categories)
    edges = sorted(edges, key=lambda e: (e[0], e[1]))
    removed = []
    while True:
        r = _reach(cats, edges)
        pos = {x: k for k, x in enumerate(cats)}
        on_cycle = [e for e in edges if r[pos[e[1]], pos[e[0]]]]
        if not on_cycle:
            break
        weakest = min(on_cycle, key=lambda e: (e[2], e[0], e[1]))
        cycle = sorted(x for x in cats if r[pos[weakest[0]], pos[x]] and r[pos[x], pos[weakest[0]]])
        edges.remove(weakest)
        removed.append({"base": weakest[0], "dependent": weakest[1], "weight": weakest[2],
                        "reason": f"weakest edge on a cycle among {cycle}"})
    has_in = {d for _, d, _ in edges}
    has_out = {b for b, _, _ in edges}
    tiers = {x: _tier(x in has_in, x in has_out) for x in cats}
    return Dag(cats, edges, removed, tiers, threshold, list(notes or []))
