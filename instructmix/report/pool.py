"""Report sections of the pool stage: counts that add up, per category and source, the
held-out eval set, and the relations planted in the synthetic testbed."""

from __future__ import annotations

from instructmix.layout import POOL
from instructmix.report.blocks import figure, heading, note, section, table
from instructmix.report.figures import bar_chart
from instructmix.report.fmt import text
from instructmix.report.inputs import RunData, absent


def _counts(d) -> list[list]:
    """{key: count} as sorted [key, count] rows (nothing when not a dict)."""
    return sorted([str(k), v] for k, v in d.items()) if isinstance(d, dict) else []


def _decontamination(dc) -> list[dict]:
    """Overlap of the pool with the eval set (nothing for runs made before the check)."""
    if not isinstance(dc, dict):
        return []
    if not dc.get("enabled"):
        return [heading("Decontamination"),
                note("Off (pool.decontamination.enabled=false): no pool row was checked.")]
    dup = dc.get("eval_items_duplicating_pool_prompts") or {}
    per = {s: v for s, v in (dc.get("per_eval_source") or {}).items() if isinstance(v, dict)}
    ids = [str(i) for i in dup.get("ids") or []]
    return [
        heading("Decontamination against the eval set"),
        table(["n-gram", "pool text", "eval items", "checked", "too short",
               "pool rows rejected", "eval prompts equal to a pool prompt"],
              [[dc.get("ngram"), dc.get("pool_text"), dc.get("eval_items"),
                dc.get("eval_items_indexed"), dc.get("eval_items_too_short"),
                dc.get("pool_rows_rejected"), dup.get("count")]],
              caption="A pool row sharing a word n-gram (lowercased words) with an eval "
              "item's prompt is rejected as 'contaminated'; eval prompts of fewer than n "
              "words are too short to check. Eval prompts equal to a pool row's prompt "
              "are reported, not removed."),
        table(["eval source", "items", "too short", "pool rows rejected"],
              [[s, v.get("items"), v.get("too_short"), v.get("pool_rows_rejected")]
               for s, v in sorted(per.items())]),
        *([note("Eval items equal to a pool prompt: " + ", ".join(ids))] if ids else []),
    ]


def pool_section(data: RunData) -> dict:
    stats = data.stats
    if stats is None:
        return section("Data pool", [absent(data, POOL.stats)])
    per_cat = stats.get("per_category") or {}
    cats = sorted(per_cat)
    ev = stats.get("eval") or {}
    blocks = [
        table(["rows read", "accepted", "rejected", "blank lines", "counts add up",
               "categories by k-means"],
              [[stats.get("read"), stats.get("accepted"), stats.get("rejected"),
                stats.get("blank_lines"), stats.get("counts_add_up"),
                stats.get("categories_assigned_by_kmeans")]],
              caption="rows read = rows read from the sources; accepted = rows kept in the "
              "training pool; rejected = rows dropped (reasons below, every row in the pool's "
              "rejected-rows file); blank lines = empty lines of JSONL files (not rows); "
              "counts add up = rows read == accepted + rejected; categories by k-means = "
              "rows without a category that got a k-means cluster label."),
        figure(bar_chart(cats, [(per_cat[c] or {}).get("items") for c in cats],
                         title="Pool items per category", xlabel="items in the pool",
                         integer=True)),
        table(["category", "items", "tokens"],
              [[c, (per_cat[c] or {}).get("items"), (per_cat[c] or {}).get("tokens")]
               for c in cats]),
        heading("Rejected by reason"),
        table(["reason", "rows"], _counts(stats.get("rejected_by_reason"))),
        *_decontamination(stats.get("decontamination")),
        heading("Rows per source"),
        table(["source", "rows"], _counts(stats.get("per_source"))),
        heading("Held-out eval set"),
        table(["rows read", "accepted", "rejected"],
              [[ev.get("read"), ev.get("accepted"), ev.get("rejected")]]),
        table(["category", "eval items"], _counts(ev.get("per_category"))),
    ]
    return section("Data pool", blocks)


def ground_truth_section(data: RunData) -> dict | None:
    """Relations planted in the testbed; None when the pool is not the testbed."""
    gt = data.ground_truth
    if gt is None:
        return None
    inter = [r for r in gt.get("interactions") or [] if isinstance(r, dict)]
    pre = [r for r in gt.get("prerequisites") or [] if isinstance(r, dict)]
    blocks = [
        note("Relationships planted in the synthetic testbed: sign of the effect of training "
             "on category j on category i (+ helps, − hurts, 0 none)."),
        table(["i (ability)", "j (category trained)", "sign", "kind"],
              [[r.get("i"), r.get("j"), r.get("sign"), r.get("kind")] for r in inter]),
        heading("Prerequisites"),
        table(["base", "dependent"], [[r.get("base"), r.get("dependent")] for r in pre]),
    ]
    extra = {k: v for k, v in gt.items() if k not in ("interactions", "prerequisites")}
    if extra:
        blocks += [heading("Other planted facts"),
                   table(["fact", "categories"],
                         [[k.replace("_", " "), text(v)] for k, v in extra.items()])]
    return section("Planted ground truth (testbed)", blocks)
