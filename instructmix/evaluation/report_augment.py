"""Report section of the augment stage: what the backend produced, rejected (and why) and
kept after token matching."""

from __future__ import annotations

from instructmix.evaluation.report import cap, esc, fmt, svg_bars, table


def augment_html(stats: dict) -> str:
    parts = [table(
        ["kind", "backend", "selected rows", "items made", "rejected", "items kept",
         "tokens kept", "selection tokens", "mean complexity"],
        [[stats.get("kind"), stats.get("backend"), stats.get("rows_in"), stats.get("items"),
          stats.get("rejected"), stats.get("matched_items"), stats.get("matched_tokens"),
          stats.get("selection_tokens"), fmt(stats.get("mean_complexity"), 2)]]),
        cap("Every selected row ends as an item or a reject (augment/rejected.jsonl, with the "
            "reason and the raw generator output). Items kept = a seeded subset whose tokens "
            "add up to at most the selection's tokens (pool token units): augmented items are "
            "longer, so fewer of them are trained on. complexity = operation nodes on the "
            "testbed, a content-word count on real text.")]
    depths = stats.get("depths") or {}
    if depths:
        parts.append(svg_bars(list(depths), list(depths.values()),
                              "Kept items by chain depth (sub-tasks)", digits=0))
    if modes := stats.get("modes"):
        parts.append(table(["modes (in order)", "kept items"], [[m, n] for m, n in modes.items()]))
    if reasons := stats.get("rejected_by_reason"):
        parts.append(table(["reject reason", "rows"], [[esc(r), n] for r, n in reasons.items()]))
    return "".join(parts)
