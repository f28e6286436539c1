"""The comparison's numbers: cells aggregated over seeds, and the table rows shown in
`compare/table.md` and in the report."""

from __future__ import annotations

import numpy as np

# Per-category scores of every cell, in this order in the table.
SCORES = ("exact_match", "token_accuracy", "loss")
# Scores by level, when the eval set has them: (results key, metric, table label).
LEVEL_METRICS = (("by_depth", "following_rate", "following rate, depth"),
                 ("by_depth", "step_accuracy", "per-step accuracy, depth"),
                 ("by_complexity", "exact_match", "exact match, nodes"))


def _mean_std(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "n": len(v)}


def _macro(cell: dict, metric: str) -> float | None:
    values = [v for v in cell[metric].values() if v is not None]
    return float(np.mean(values)) if values else None


def _over_seeds(values: list) -> dict | None:
    kept = [v for v in values if v is not None]
    return _mean_std(kept) if kept else None


def aggregate(cells: list[dict]) -> dict:
    """Per strategy: macro and per-category exact match / token accuracy / loss, mean ± std
    over seeds (None where no seed has a value)."""
    out = {}
    for name in dict.fromkeys(c["strategy"] for c in cells):
        mine = [c for c in cells if c["strategy"] == name]
        cats = sorted({k for c in mine for k in c["token_accuracy"]})
        out[name] = {"seeds": [c["seed"] for c in mine]}
        for metric in SCORES:
            out[name][f"macro_{metric}"] = _over_seeds([_macro(c, metric) for c in mine])
            out[name][metric] = {k: _over_seeds([c[metric].get(k) for c in mine])
                                 for k in cats}
        out[name].update(counts=mine[0]["counts"],
                         train_tokens=_mean_std([c["train_tokens"] for c in mine]),
                         steps=_mean_std([c["steps"] for c in mine]))
        for key, metric, _ in LEVEL_METRICS:
            levels = sorted({lv for c in mine for lv in c.get(key) or {}}, key=int)
            if levels:
                out[name].setdefault(key, {})[metric] = {
                    lv: _mean_std([c[key][lv][metric] for c in mine if lv in (c.get(key) or {})])
                    for lv in levels}
    return out


def table_rows(agg: dict) -> list[list[str]]:
    """The comparison as rows [label, cell per arm]: exact match per category and macro,
    then token accuracy per category and macro, mean ± std over seeds; then, when the eval
    set has them, following rate and per-step accuracy by chain depth and exact match by
    tree size; then tokens and steps trained."""
    names = list(agg)
    cats = sorted({c for a in agg.values() for c in a["token_accuracy"]})

    def cell(v, digits=2) -> str:
        return f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}" if v else "n/a"

    rows = []
    for metric, prefix in (("exact_match", ""), ("token_accuracy", "token accuracy, ")):
        rows += [[f"{prefix}{c}"] + [cell(agg[n][metric].get(c)) for n in names] for c in cats]
        rows.append([f"{prefix}macro"] + [cell(agg[n][f"macro_{metric}"], 3) for n in names])
    for key, metric, label in LEVEL_METRICS:
        levels = sorted({lv for n in names for lv in agg[n].get(key, {}).get(metric, {})},
                        key=int)
        rows += [[f"{label} {lv}"] + [cell(agg[n].get(key, {}).get(metric, {}).get(lv))
                                      for n in names] for lv in levels]
    rows.append(["tokens trained"] + [f"{agg[n]['train_tokens']['mean']:,.0f}" for n in names])
    rows.append(["optimizer steps"] + [f"{agg[n]['steps']['mean']:,.0f}" for n in names])
    return rows


def markdown_table(agg: dict) -> str:
    names = list(agg)
    head = "| category | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = [[f"**{c}**" for c in r] if r[0].endswith("macro") else r for r in table_rows(agg)]
    return head + "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"
