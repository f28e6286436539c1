"""Report sections of the Beyond-IID stages: Γ heat map with intervals, the dependency DAG,
the mixture, the baselines' comparison table and the probe cost."""

from __future__ import annotations

import math

from instructmix.evaluation.report import cap, esc, fmt, svg_bars, table


def _color(v) -> str:
    """Blue for help (γ > 0), red for harm (γ < 0), saturating at |γ| = 1; grey: unknown."""
    if v is None or not math.isfinite(v):
        return "#ddd"
    t = min(1.0, abs(v))
    r, g, b = (int(255 - 180 * t), int(255 - 130 * t), 255) if v > 0 else (
        255, int(255 - 170 * t), int(255 - 170 * t))
    return f"rgb({r},{g},{b})"


_SCORE_CHANGE = {"loss": "decrease of the validation loss",
                 "token_accuracy": "increase of the validation token accuracy"}


def gamma_html(inter: dict) -> str:
    cats, g = inter["categories"], inter["gamma"]
    lo, hi = inter.get("lo"), inter.get("hi")
    n, size, left, top = len(cats), 46, 90, 90
    w, h = left + n * size + 10, top + n * size + 10
    parts = [f'<svg width="{w}" height="{h}" role="img" aria-label="gamma heat map">']
    for j, c in enumerate(cats):
        x = left + j * size + size / 2
        parts.append(f'<text x="{x}" y="{top - 6}" font-size="10" text-anchor="start" '
                     f'transform="rotate(-45 {x} {top - 6})">{esc(c)}</text>')
    for i, ci in enumerate(cats):
        parts.append(f'<text x="{left - 4}" y="{top + i * size + size / 2 + 4}" '
                     f'font-size="10" text-anchor="end">{esc(ci)}</text>')
        for j in range(n):
            v = g[i][j]
            parts.append(f'<rect x="{left + j * size}" y="{top + i * size}" width="{size - 1}" '
                         f'height="{size - 1}" fill="{_color(v)}"><title>γ[{esc(ci)},'
                         f'{esc(cats[j])}] = {fmt(v, 2)} [{fmt(lo[i][j] if lo else None, 2)}, '
                         f'{fmt(hi[i][j] if hi else None, 2)}]</title></rect>')
            parts.append(f'<text x="{left + j * size + size / 2}" y="{top + i * size + 27}" '
                         f'font-size="10" text-anchor="middle">{esc(fmt(v, 2))}</text>')
    parts.append("</svg>")
    rows = [[cats[i], cats[j], fmt(g[i][j], 2),
             f"[{fmt(lo[i][j] if lo else None, 2)}, {fmt(hi[i][j] if hi else None, 2)}]"]
            for i in range(n) for j in range(n) if i != j]
    text = [cap(f"γ[i, j] (row i = ability scored, column j = category added) = Δ_ij / Δ_ii, "
                f"Δ = {_SCORE_CHANGE.get(inter.get('score', 'loss'))} of category i when "
                "the probe adds items of j "
                f"({esc(inter.get('method'))} estimate, {inter.get('n_seeds')} seeds, "
                f"{inter.get('ci', 0.9):.0%} bootstrap intervals; hover a cell). Blue helps, "
                "red hurts."), "".join(parts)]
    if inter.get("unidentified"):
        text.append(cap("unidentified rows: " + esc(inter["unidentified"])))
    for key, label in (("sign_recovery", "any sign"), ("sign_recovery_strict",
                                                       "interval excludes 0")):
        rec = inter.get(key)
        if rec:
            text.append(cap(f"planted signs recovered ({label}): {rec['recovered']} of "
                            f"{rec['n']} ({fmt(rec['share'], 2)}); "
                            f"{rec['unidentified']} in unidentified rows"))
            if key == "sign_recovery":
                text.append(table(["i", "j", "kind", "planted", "γ", "interval", "recovered"],
                                  [[d["i"], d["j"], d["kind"], d["sign"], fmt(d["gamma"], 2),
                                    f"[{fmt(d['lo'], 2)}, {fmt(d['hi'], 2)}]", d["recovered"]]
                                   for d in rec["details"]]))
    text.append("<details><summary>all entries with intervals</summary>"
                + table(["i", "j", "γ", "interval"], rows) + "</details>")
    return "".join(text)


def dag_html(deps: dict) -> str:
    """Tiers as columns (base, middle, dependent), edges as arrows base -> dependent."""
    tiers = deps.get("tiers", {})
    cols = {t: sorted(c for c, x in tiers.items() if x == t) for t in
            ("base", "middle", "dependent")}
    pos, colw, rowh = {}, 220, 28
    for k, (_, cats) in enumerate(cols.items()):
        for r, c in enumerate(cats):
            pos[c] = (20 + k * colw, 40 + r * rowh)
    h = 60 + rowh * max([len(v) for v in cols.values()] + [1])
    parts = [f'<svg width="{3 * colw + 40}" height="{h}" role="img" aria-label="DAG">',
             '<defs><marker id="arr" markerWidth="8" markerHeight="8" refX="8" refY="4" '
             'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>']
    for k, t in enumerate(cols):
        parts.append(f'<text x="{20 + k * colw}" y="18" font-size="12" '
                     f'font-weight="bold">{t}</text>')
    for e in deps.get("edges", []):
        (x1, y1), (x2, y2) = pos[e["base"]], pos[e["dependent"]]
        parts.append(f'<line x1="{x1 + 110}" y1="{y1 - 4}" x2="{x2 - 4}" y2="{y2 - 4}" '
                     f'stroke="#555" marker-end="url(#arr)"/>')
    for c, (x, y) in pos.items():
        parts.append(f'<text x="{x}" y="{y}" font-size="11">{esc(c)}</text>')
    parts.append("</svg>")
    rows = [[e["base"], e["dependent"], fmt(e["weight"], 2)] for e in deps.get("edges", [])]
    out = [cap(f"edge j → i when γ_ij > {deps.get('threshold')}, its interval excludes 0 and "
               "γ_ij − γ_ji > threshold (weight = the asymmetry); cycles broken at their "
               "weakest edge."), "".join(parts), table(["base", "dependent", "weight"], rows)]
    if deps.get("removed"):
        out.append(cap("removed to break cycles: " + esc(deps["removed"])))
    if deps.get("planted_edges"):
        out.append(table(["planted base", "dependent", "found"],
                         [[e["base"], e["dependent"], e["found"]]
                          for e in deps["planted_edges"]]))
    return "".join(out)


def mixture_html(mixture: dict) -> str:
    counts, avail = mixture.get("counts", {}), mixture.get("available", {})
    cats = sorted(counts)
    rows = [[c, counts[c], avail.get(c), fmt((mixture.get("weights") or {}).get(c), 3),
             fmt((mixture.get("alpha") or {}).get(c), 3)] for c in cats]
    out = [table(["strategy", "curriculum", "status", "objective", "solver s", "binding"],
                 [[mixture.get("strategy"), mixture.get("curriculum"), mixture.get("status"),
                   fmt(mixture.get("objective")), mixture.get("solver_seconds"),
                   ", ".join(mixture.get("binding", []))]]),
           svg_bars(cats, [counts[c] for c in cats], "Items per category in the mixture",
                    digits=0),
           table(["category", "items", "available", "weight w_j = Σ_i α_i γ_ij", "α"], rows),
           cap("weight = predicted gain per item of the category (the MILP's objective "
               "coefficient); α = importance of each ability.")]
    if mixture.get("phases"):
        out.append(table(["phase", "items", "base share", "middle share", "dependent share"],
                         [[p["phase"], p["n"], fmt(p["base"], 2), fmt(p["middle"], 2),
                           fmt(p["dependent"], 2)] for p in mixture["phases"]]))
        out.append(cap("curriculum: three phases in training order; base tiers first, "
                       "dependent tiers last."))
    return "".join(out)


def compare_html(compare: dict, cost: dict | None, train_tokens) -> str:
    from instructmix.evaluation.compare import table_rows

    agg = compare["strategies"]
    names = list(agg)
    cats = sorted({c for a in agg.values() for c in a["counts"]})
    rows = table_rows(agg)
    counts = [[c] + [agg[n]["counts"].get(c, 0) for n in names] for c in cats]
    seeds = next(iter(agg.values()))["seeds"] if agg else []
    out = [cap(f"exact match, then token accuracy, per category, mean ± std over seeds {seeds}; "
               "every arm selects "
               "the same budget from the same pool and trains the same model with the same "
               "loop and settings (augmented arms: the selection rewritten, token-matched to "
               "it, with the batch scaled to the same steps); following rate = chains with "
               "every step right."),
           table(["category", *names], rows),
           "<h4>Items per category (seed of the first cell)</h4>",
           table(["category", *names], counts)]
    if cost:
        share = cost["probe_train_tokens"] / train_tokens if train_tokens else None
        out.append(table(["probe trials", "probe tokens trained", "probe trial seconds",
                          "target run tokens trained", "probe / target tokens"],
                         [[cost["probe_trials"], cost["probe_train_tokens"],
                           cost["probe_trial_seconds"], train_tokens, fmt(share, 3)]]))
        out.append(cap("cost: tokens the probes trained on, against the tokens of the final "
                       "training run (RegMix reports ~2%)."))
    return "".join(out)
