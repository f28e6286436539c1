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


def paired_differences(cells: list[dict], baseline: str, metric: str = "exact_match",
                       level: float = 0.95) -> dict:
    """Per arm: its macro `metric` minus the baseline's, paired by seed, with the mean and a
    Student-t interval over the seeds both ran (`beats`/`loses`: the interval excludes 0)."""
    from scipy.stats import t

    macro = {(c["strategy"], c["seed"]): _macro(c, metric) for c in cells}
    out = {}
    for name in dict.fromkeys(c["strategy"] for c in cells):
        if name == baseline:
            continue
        seeds = sorted(s for (a, s), v in macro.items() if a == name and v is not None
                       and macro.get((baseline, s)) is not None)
        diffs = [macro[(name, s)] - macro[(baseline, s)] for s in seeds]
        if not diffs:
            continue
        mean = float(np.mean(diffs))
        half = (float(t.ppf((1 + level) / 2, len(diffs) - 1) * np.std(diffs, ddof=1)
                      / np.sqrt(len(diffs))) if len(diffs) > 1 else float("inf"))
        out[name] = {"seeds": seeds, "differences": diffs, "mean": mean, "lo": mean - half,
                     "hi": mean + half, "level": level, "beats": mean - half > 0,
                     "loses": mean + half < 0}
    return out


def paired_table(paired: dict, baseline: str, metric: str = "exact_match") -> str:
    """The paired differences as markdown, with what they mean."""
    if not paired:
        return ""
    level = next(iter(paired.values()))["level"]
    lines = [f"Paired differences of macro {metric.replace('_', ' ')} against {baseline}, per "
             f"seed, with the mean and a {level:.0%} t-interval over the seeds:", "",
             f"| arm − {baseline} | per seed | mean | {level:.0%} interval | verdict |",
             "|---|---|---|---|---|"]
    for name, p in paired.items():
        verdict = ("beats" if p["beats"] else "loses to" if p["loses"] else
                   "not distinguishable from")
        per_seed = ", ".join(f"{d:+.3f}" for d in p["differences"])
        lines.append(f"| {name} | {per_seed} | {p['mean']:+.3f} | [{p['lo']:+.3f}, "
                     f"{p['hi']:+.3f}] | {verdict} {baseline} |")
    return "\n".join(lines) + "\n"


def verdicts(paired: dict, baseline: str, metric: str = "exact_match") -> str:
    """One sentence per arm: does it beat the baseline, and if not, why the data cannot say
    so (the interval's half-width against the mean difference, the number of seeds)."""
    lines = []
    for name, p in paired.items():
        n, half = len(p["differences"]), (p["hi"] - p["lo"]) / 2
        head = (f"{name} − {baseline}, macro {metric.replace('_', ' ')}: {p['mean']:+.3f} "
                f"[{p['lo']:+.3f}, {p['hi']:+.3f}] over {n} seeds: ")
        if p["beats"] or p["loses"]:
            lines.append(head + ("beats " if p["beats"] else "loses to ") + baseline + ".")
        elif n < 2:
            lines.append(head + "one seed gives no interval: not shown either way.")
        else:
            lines.append(head + f"not shown to beat {baseline}: the interval contains 0 (its "
                         f"half-width {half:.3f} exceeds the mean difference "
                         f"{abs(p['mean']):.3f}); more seeds or a larger difference would be "
                         "needed to tell them apart.")
    return "\n".join(lines) + "\n" if lines else ""


def markdown_table(agg: dict) -> str:
    names = list(agg)
    head = "| category | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    rows = [[f"**{c}**" for c in r] if r[0].endswith("macro") else r for r in table_rows(agg)]
    return head + "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"
