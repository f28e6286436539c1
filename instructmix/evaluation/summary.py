"""Scored rows -> per-category and macro scores (what eval results and trials report)."""

from __future__ import annotations

from collections import defaultdict

from instructmix.evaluation.depth import chain_scores


def summarise(scored: list[dict], rows: list[dict] | None = None) -> dict:
    """Per-category n / exact match (and what it compared with: `reference` = answer,
    response or both) / mean loss / token accuracy, and their macro means. With the eval
    `rows` (carrying `meta`), also `by_depth` / `by_complexity` (see `depth.chain_scores`)
    when the eval set has sequential or complexity rows."""
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in scored:
        by_cat[r["category"]].append(r)
    per_category = {}
    for cat, cat_rows in sorted(by_cat.items()):
        judged = [r for r in cat_rows if r["correct"] is not None]
        refs = sorted({r.get("reference") or "answer" for r in judged})
        per_category[cat] = {
            "n": len(cat_rows),
            "exact_match": sum(r["correct"] for r in judged) / len(judged) if judged else None,
            "reference": "+".join(refs) or None,
            "loss": sum(r["loss"] for r in cat_rows) / len(cat_rows),
            "token_accuracy": sum(r["token_accuracy"] for r in cat_rows) / len(cat_rows),
        }
    out = {"per_category": per_category}
    for metric in ("exact_match", "loss", "token_accuracy"):
        values = [v[metric] for v in per_category.values() if v[metric] is not None]
        out[f"macro_{metric}"] = sum(values) / len(values) if values else None
    if rows is not None:
        out.update({k: v for k, v in chain_scores(rows, scored).items() if v})
    return out
