"""Report sections of the Beyond-IID stages: the interaction matrix Γ with its intervals,
the dependency DAG and the mixture the select stage solved for."""

from __future__ import annotations

from instructmix.layout import PROBE, SELECT
from instructmix.report.blocks import bullets, details, figure, heading, note, section, table
from instructmix.report.dag import dag_figure
from instructmix.report.figures import bar_chart
from instructmix.report.fmt import as_float, interval, num, prose, text
from instructmix.report.inputs import RunData, not_run
from instructmix.report.probe_figures import gamma_heatmap

SCORE_CHANGE = {"loss": "decrease of the validation loss",
                "token_accuracy": "increase of the validation token accuracy"}


def _entry(m, i: int, j: int) -> float:
    try:
        return as_float(m[i][j])
    except (TypeError, IndexError):
        return float("nan")


def _recovery_blocks(inter: dict) -> list[dict]:
    out = []
    for key, label in (("sign_recovery", "any sign"),
                       ("sign_recovery_strict", "interval excludes 0")):
        rec = inter.get(key)
        if not isinstance(rec, dict):
            continue
        out.append(note(f"planted signs recovered ({label}): {num(rec.get('recovered'))} of "
                        f"{num(rec.get('n'))} (share {num(rec.get('share'), 2)}); "
                        f"{num(rec.get('unidentified'))} in unidentified rows"))
        if key == "sign_recovery":
            out.append(table(["i", "j", "kind", "planted sign", "γ", "interval", "recovered"],
                             [[d.get("i"), d.get("j"), d.get("kind"), d.get("sign"),
                               num(as_float(d.get("gamma")), 2),
                               interval(d.get("lo"), d.get("hi")), d.get("recovered")]
                              for d in rec.get("details") or []]))
    return out


def gamma_section(data: RunData) -> dict:
    title = "Interaction matrix Γ"
    inter = data.interactions
    if inter is None or not inter.get("categories"):
        return section(title, [not_run(data, "probe", PROBE.interactions)])
    cats = [str(c) for c in inter["categories"]]
    n = len(cats)
    ci = as_float(inter.get("ci"))
    blocks = [
        note(f"γ[i, j] (row i = ability scored, column j = category added) = Δ_ij / Δ_ii, "
             f"Δ = {SCORE_CHANGE.get(inter.get('score', 'loss'), 'change of the score')} of "
             f"category i when the probe adds items of j ({text(inter.get('method'))} "
             f"estimate over {num(inter.get('n_seeds'))} seeds; in brackets the "
             f"{num(ci * 100 if ci == ci else None, 0)}% bootstrap interval, (−∞, ∞) when "
             "the interval is unbounded). Blue helps, red hurts; the colour scale is "
             "logarithmic beyond ±0.1. Grey rows are unidentified."),
        figure(gamma_heatmap(cats, inter, "Interaction matrix Γ (γ and its interval)")),
    ]
    unidentified = inter.get("unidentified") or {}
    if unidentified:
        blocks += [heading("Unidentified rows"),
                   table(["category (row)", "why γ is not estimated"],
                         sorted([k, prose(v)] for k, v in unidentified.items()))]
    if inter.get("notes"):
        blocks.append(bullets([prose(x) for x in inter["notes"]], caption="notes of the estimate"))
    blocks += _recovery_blocks(inter)
    g, lo, hi = (inter.get(k) for k in ("gamma", "lo", "hi"))
    rows = [[cats[i], cats[j], num(_entry(g, i, j), 2), interval(_entry(lo, i, j),
                                                                 _entry(hi, i, j))]
            for i in range(n) for j in range(n) if i != j]
    blocks.append(details("all entries with intervals",
                          [table(["i (ability)", "j (category added)", "γ", "interval"],
                                 rows)]))
    return section(title, blocks)


def _order_blocks(deps: dict) -> list[dict]:
    probes = [p for p in deps.get("order_probes") or [] if isinstance(p, dict)]
    if not probes:
        return []
    return [heading("Order probes"),
            table(["first", "then", "effect on 'then'", "interval", "per seed", "γ units",
                   "edge", "why"],
                  [[p.get("base"), p.get("dependent"), num(as_float(p.get("effect")), 3),
                    f"[{num(as_float(p.get('lo')), 3)}, {num(as_float(p.get('hi')), 3)}]",
                    ", ".join(num(as_float(v), 3) for v in p.get("per_seed") or []),
                    num(as_float(p.get("effect_gamma_units")), 2), p.get("edge"),
                    prose(p.get("reason"))] for p in probes],
                  caption="effect = score on the second category after the first category's "
                  "items minus after a neutral mix of the same size (same rows of the "
                  "second category, same steps); one row per directed pair order-probed.")]


def dag_section(data: RunData) -> dict:
    title = "Dependency DAG"
    deps = data.dependencies
    if deps is None:
        return section(title, [not_run(data, "probe", PROBE.dependencies)])
    edges = [e for e in deps.get("edges") or [] if isinstance(e, dict)]
    order = deps.get("estimator") == "order"
    threshold = num(as_float(deps.get("threshold")), 2)
    rule = (f"edge j → i (j is a prerequisite of i) when an order probe trained on j's items "
            f"then i's beats one trained on other items then i's: the t-interval over seeds "
            f"of the difference on i excludes 0 and the effect is ≥ {threshold} × the typical "
            "own effect (weight = that scaled effect)" if order else
            f"edge j → i (j is a prerequisite of i) when γ_ij > {threshold}, its interval "
            "excludes 0 and γ_ij − γ_ji > threshold (weight = the asymmetry)")
    blocks = [
        note(f"estimator: {deps.get('estimator', 'asymmetry')}. {rule}; cycles broken at "
             "their weakest edge. Columns: base tier (only outgoing edges), middle (both, or "
             "none), dependent (only incoming)."),
        figure(dag_figure(deps, "Dependency DAG by tier")),
        table(["base", "dependent", "weight"],
              [[e.get("base"), e.get("dependent"), num(as_float(e.get("weight")), 2)]
               for e in edges]),
        *_order_blocks(deps),
    ]
    removed = [e for e in deps.get("removed") or [] if isinstance(e, dict)]
    if removed:
        blocks += [heading("Edges removed to break cycles"),
                   table(["base", "dependent", "weight", "reason"],
                         [[e.get("base"), e.get("dependent"), num(as_float(e.get("weight")), 2),
                           prose(e.get("reason"))] for e in removed])]
    if deps.get("notes"):
        blocks.append(bullets([prose(x) for x in deps["notes"]], caption="notes of the DAG"))
    if deps.get("planted_edges"):
        blocks.append(table(["planted base", "dependent", "found"],
                            [[e.get("base"), e.get("dependent"), e.get("found")]
                             for e in deps["planted_edges"] if isinstance(e, dict)]))
    return section(title, blocks)


def mixture_section(data: RunData) -> dict:
    title = "Mixture"
    mixture = data.mixture
    if mixture is None:
        return section(title, [not_run(data, "select", SELECT.mixture)])
    counts, avail = mixture.get("counts") or {}, mixture.get("available") or {}
    weights, alpha = mixture.get("weights") or {}, mixture.get("alpha") or {}
    cats = sorted(counts)
    blocks = [
        table(["strategy", "curriculum", "solver status", "objective", "solver seconds",
               "binding constraints"],
              [[mixture.get("strategy"), mixture.get("curriculum"), mixture.get("status"),
                num(mixture.get("objective")), num(mixture.get("solver_seconds")),
                text(mixture.get("binding") or "none")]]),
        figure(bar_chart(cats, [counts[c] for c in cats],
                         title="Items per category in the mixture", xlabel="items",
                         integer=True)),
        table(["category", "items", "available", "weight w_j = Σ_i α_i γ_ij", "α"],
              [[c, counts[c], avail.get(c), num(weights.get(c)), num(alpha.get(c))]
               for c in cats],
              caption="weight = predicted gain per item of the category (the MILP's "
              "objective coefficient); α = importance of each ability."),
    ]
    blocks += _round_blocks(data.probe_rounds)
    phases = [p for p in mixture.get("phases") or [] if isinstance(p, dict)]
    if phases:
        blocks.append(table(["phase", "items", "base share", "middle share",
                             "dependent share"],
                            [[p.get("phase"), p.get("n"), num(p.get("base"), 2),
                              num(p.get("middle"), 2), num(p.get("dependent"), 2)]
                             for p in phases],
                            caption="curriculum: three phases in training order; base tiers "
                            "first, dependent tiers last."))
    return section(title, blocks)


def _round_blocks(rounds: list | None) -> list[dict]:
    """Rounds of probing and solving (select.rounds > 1): each round's mixture, objective,
    cost and Γ."""
    rounds = [r for r in rounds or [] if isinstance(r, dict)]
    if not rounds:
        return []
    cats = sorted(rounds[0].get("counts") or {})
    rows = [[r.get("round"), r.get("probe_trials"), num(r.get("probe_train_tokens"), 0),
             num(r.get("objective_at_centre")), num(r.get("objective")), num(r.get("gain")),
             num(r.get("moved_share"), 3),
             ", ".join(f"{c} {(r.get('counts') or {}).get(c)}" for c in cats),
             prose(r.get("stopped") or "")] for r in rounds]
    figures = [figure(gamma_heatmap(cats, r, f"Γ of round {r.get('round')}"))
               for r in rounds if r.get("gamma") is not None]
    return [heading("Rounds of probing and solving"),
            table(["round", "probe trials", "probe tokens", "objective at the centre",
                   "objective after the move", "gain", "share of the budget moved",
                   "mixture (items)", "stopped"], rows,
                  caption="each round probes around the last round's mixture (round 1: D0 "
                  "and the proportional mixture), estimates Γ, and moves within the trust "
                  "region; objective = Σ_j w_j x_j under that round's Γ."),
            details("Γ of every round", figures)]
