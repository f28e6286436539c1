"""Report section of the compare stage: every arm at equal steps, mean ± std over seeds,
paired differences against the baseline, the best arm for the headline, and what the probes
cost."""

from __future__ import annotations

from instructmix.experiments.table import table_rows, verdicts
from instructmix.layout import COMPARE
from instructmix.report.blocks import bullets, figure, heading, note, problem, section, table
from instructmix.report.figures import grouped_bars
from instructmix.report.fmt import finite, integer, mean_std, num, text
from instructmix.report.inputs import RunData, not_run

# Ranking of the arms for the headline: the first of these that some arm has.
RANKED_BY = (("macro_exact_match", "macro exact match"),
             ("macro_token_accuracy", "macro token accuracy"))
LABELS = {"exact_match": "exact match", "token_accuracy": "token accuracy"}


def arms(data: RunData) -> dict:
    """{arm: aggregate over seeds} of the compare stage ({} when it did not run)."""
    agg = (data.compare or {}).get("strategies")
    return {str(k): v for k, v in agg.items() if isinstance(v, dict)} \
        if isinstance(agg, dict) else {}


def best_arm(agg: dict) -> dict | None:
    """The arm with the highest mean of the first metric of RANKED_BY some arm has:
    {arm, metric, label, mean, std, n_seeds, seeds}; None when no arm has a score."""
    for key, label in RANKED_BY:
        scored = [(finite((a.get(key) or {}).get("mean")), name) for name, a in agg.items()]
        scored = [(m, name) for m, name in scored if m is not None]
        if scored:
            mean, name = max(scored, key=lambda s: s[0])  # first arm wins a tie
            cell = agg[name][key]
            return {"arm": name, "metric": key, "label": label, "mean": mean,
                    "std": finite(cell.get("std")), "n_seeds": cell.get("n"),
                    "seeds": agg[name].get("seeds") or []}
    return None


def _categories(agg: dict, metric: str) -> list[str]:
    return sorted({str(c) for a in agg.values() for c in (a.get(metric) or {})})


def _bars(agg: dict, metric: str) -> str:
    cats = _categories(agg, metric)
    series = {name: [*((a.get(metric) or {}).get(c) for c in cats), a.get(f"macro_{metric}")]
              for name, a in agg.items()}
    return grouped_bars([*cats, "macro"], series,
                        title=f"Compare: {LABELS[metric]} per category, every arm",
                        xlabel="category", ylabel=f"{LABELS[metric]} (mean over seeds)",
                        legend_title="arm (error bar: ± std over seeds)", ylim=(0.0, 1.05))


def _cost_blocks(cost: dict | None, train_tokens) -> list[dict]:
    """What the probes spent against the final run: tokens, and compute (tokens x the
    parameters of the model each trained: the probes' proxy, or the target itself)."""
    if not cost:
        return []
    probe_tokens, target = finite(cost.get("probe_train_tokens")), finite(train_tokens)
    share = probe_tokens / target if probe_tokens is not None and target else None
    probe_params = finite(cost.get("probe_model_parameters"))
    target_params = finite(cost.get("target_parameters"))
    compute = (share * probe_params / target_params
               if share is not None and probe_params and target_params else None)
    model = "proxy" if cost.get("proxy") else "target"
    return [heading("Probe cost"),
            table(["probe trials (warm starts, later rounds, order probes)",
                   "probe tokens trained", "probe trial seconds", "probes trained",
                   "final run tokens trained", "probe tokens / final run tokens",
                   "probe compute / final run compute"],
                  [[f"{cost.get('probe_trials')} ({cost.get('warm_start_trials', 0)}, "
                    f"{cost.get('round_trials', 0)}, {cost.get('order_trials', 0)})",
                    integer(cost.get("probe_train_tokens")),
                    num(cost.get("probe_trial_seconds"), 1),
                    f"{model} ({integer(probe_params)} parameters)", integer(train_tokens),
                    num(share, 3), num(compute, 3)]],
                  caption="cost: tokens the probes trained on (warm starts and order probes "
                  "included), against the tokens of the final training run; compute = "
                  "tokens x parameters of the model trained (the probes' proxy or the "
                  "target; ~6 x that in FLOPs for both). RegMix reports ~2%.")]


def _paired_blocks(data: RunData) -> list[dict]:
    """Each arm minus the baseline, paired by seed, with its t-interval."""
    paired = (data.compare or {}).get("paired")
    if not isinstance(paired, dict):
        return []
    base, rows = paired.get("baseline"), []
    for metric, label in LABELS.items():
        for arm, p in (paired.get(metric) or {}).items():
            if not isinstance(p, dict):
                continue
            verdict = ("beats" if p.get("beats") else "loses to" if p.get("loses") else
                       "not distinguishable from")
            rows.append([f"{arm} − {base}", label,
                         ", ".join(f"{d:+.3f}" for d in p.get("differences") or []),
                         num(p.get("mean")), f"[{num(p.get('lo'))}, {num(p.get('hi'))}]",
                         f"{verdict} {base}"])
    if not rows:
        return []
    return [heading(f"Paired differences against {base}"),
            table(["arm − baseline", "macro score", "per seed", "mean", "95% interval",
                   "verdict"], rows,
                  caption="the arm's macro score minus the baseline's on the same seed; the "
                  "interval is a Student-t interval over the seeds; 'beats' only when it "
                  "excludes 0."),
            *_verdict_blocks(paired.get("exact_match"), base)]


def _bound(v, sign: int) -> float:
    """An interval end as written (an unbounded one, ±inf, is stored as null)."""
    return float(v) if isinstance(v, (int, float)) else sign * float("inf")


def _verdict_blocks(paired, base) -> list[dict]:
    """The compare stage's sentence per arm (exact match): beats, loses, or why not shown."""
    keys = {"differences": list, "mean": float, "beats": bool, "loses": bool}
    ok = {a: dict(p, lo=_bound(p.get("lo"), -1), hi=_bound(p.get("hi"), 1))
          for a, p in (paired or {}).items() if isinstance(p, dict) and all(
              isinstance(p.get(k), kind) for k, kind in keys.items())}
    lines = verdicts(ok, str(base)).splitlines() if ok else []
    return [bullets(lines, caption="what the paired differences show")] if lines else []


def compare_section(data: RunData, train_tokens) -> dict:
    title = "Baselines at equal steps (compare)"
    agg = arms(data)
    if not agg:
        block = (problem(f"{data.path(COMPARE.results)} has no arms ('strategies')")
                 if data.compare is not None else not_run(data, "compare", COMPARE.results))
        return section(title, [block, *_cost_blocks(data.cost, train_tokens)])
    names = list(agg)
    seeds = next(iter(agg.values())).get("seeds") or []
    best = best_arm(agg)
    blocks = [note(f"Every arm selects the same budget from the same pool and trains the same "
                   f"model with the same loop and settings, once per seed ({text(seeds)}); "
                   "augmented arms: the selection rewritten, token-matched to it, with the "
                   "batch scaled to the same steps; picked arms (selfpaced, raise): the steps "
                   "the budget buys; full: every usable row for all its steps. Scores are "
                   "mean ± std over seeds; following rate = chains with every step right.")]
    if best:
        blocks.append(note(f"Best arm by {best['label']}: {best['arm']}, "
                           f"{mean_std(agg[best['arm']][best['metric']])} (mean ± std over "
                           f"{num(best['n_seeds'])} seeds)."))
    blocks += [figure(_bars(agg, m)) for m in LABELS if _categories(agg, m)]
    counts = sorted({str(c) for a in agg.values() for c in (a.get("counts") or {})})
    blocks += [
        table(["score, category", *names], table_rows(agg),
              caption="exact match, then token accuracy, per category and macro (mean ± "
              "std over seeds); then scores by level when the eval set has them; then "
              "tokens and optimizer steps trained (mean over seeds)."),
        heading("Items per category (selection of the first seed)"),
        table(["category", *names],
              [[c, *((a.get("counts") or {}).get(c, 0) for a in agg.values())]
               for c in counts]),
        *_paired_blocks(data),
        *_cost_blocks(data.cost, train_tokens),
    ]
    return section(title, blocks)
