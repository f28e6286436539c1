"""Scored rows -> per-category and macro scores (what eval results and trials report)."""

from __future__ import annotations

from collections import Counter, defaultdict

from instructmix.evaluation.depth import chain_scores


def _mean(values: list) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _ifeval(cat_rows: list[dict]) -> dict:
    """Instruction-level accuracy over the covered instructions of the answered rows, and
    how often each uncovered instruction id occurred (not scored)."""
    results = [i for r in cat_rows for i in r.get("instructions") or []]
    checked = [i["followed"] for i in results if i["followed"] is not None]
    return {"instruction_accuracy": _mean(checked), "instructions_checked": len(checked),
            "uncovered": dict(Counter(i["id"] for i in results if i["followed"] is None))}


def _category(cat_rows: list[dict]) -> dict:
    judged = [r for r in cat_rows if r["correct"] is not None]
    scorers = sorted({r.get("scorer") or "exact" for r in cat_rows})
    out = {
        "n": len(cat_rows),
        "scorer": "+".join(scorers),
        "judged": len(judged),
        "exact_match": _mean([r["correct"] for r in judged]),
        "reference": "+".join(sorted({r.get("reference") or "answer" for r in judged})) or None,
        "loss": _mean([r["loss"] for r in cat_rows]),
        "token_accuracy": _mean([r["token_accuracy"] for r in cat_rows]),
    }
    if "ifeval" in scorers:
        out.update(_ifeval(cat_rows))
    return out


def summarise(scored: list[dict], rows: list[dict] | None = None) -> dict:
    """Per category: n, `scorer`, `judged` (rows with a verdict), `exact_match` = share of
    judged rows that are correct under the category's scorer (exact match, final-number match,
    multiple-choice accuracy or IFEval prompt-level strict accuracy), `reference` (what it
    compared with: answer, response, rules), mean loss / token accuracy (over rows that have
    them; None for none), and for ifeval `instruction_accuracy`, `instructions_checked` and
    `uncovered` ({id: count}); their macro means. With the eval `rows` (carrying `meta`),
    also `by_depth` / `by_complexity` (see `depth.chain_scores`) when the eval set has
    sequential or complexity rows."""
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in scored:
        by_cat[r["category"]].append(r)
    per_category = {cat: _category(cat_rows) for cat, cat_rows in sorted(by_cat.items())}
    out = {"per_category": per_category}
    for metric in ("exact_match", "loss", "token_accuracy"):
        out[f"macro_{metric}"] = _mean([v[metric] for v in per_category.values()])
    if rows is not None:
        out.update({k: v for k, v in chain_scores(rows, scored).items() if v})
    return out
