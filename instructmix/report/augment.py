"""Report section of the augment stage: what the backend produced, rejected (and why) and
kept after token matching."""

from __future__ import annotations

from instructmix.layout import AUGMENT
from instructmix.report.blocks import figure, note, section, table
from instructmix.report.figures import bar_chart
from instructmix.report.fmt import integer, num
from instructmix.report.inputs import RunData, not_run


def augment_section(data: RunData) -> dict:
    title = "Augmentation"
    stats = data.augment
    if stats is None:
        return section(title, [not_run(data, "augment", AUGMENT.stats)])
    blocks = [
        table(["kind", "backend", "selected rows", "items made", "rejected", "items kept",
               "tokens kept", "selection tokens", "mean complexity"],
              [[stats.get("kind"), stats.get("backend"), stats.get("rows_in"),
                stats.get("items"), stats.get("rejected"), stats.get("matched_items"),
                integer(stats.get("matched_tokens")), integer(stats.get("selection_tokens")),
                num(stats.get("mean_complexity"), 2)]]),
        note("Every selected row ends as an item or a reject (the augment stage's rejected-"
             "rows file keeps the reason and the raw generator output). Items kept = a "
             "seeded subset whose tokens add up to at most the selection's tokens (pool "
             "token units): augmented items are longer, so fewer of them are trained on. "
             "complexity = operation nodes on the testbed, a content-word count on real "
             "text."),
    ]
    depths = stats.get("depths") or {}
    if depths:
        blocks.append(figure(bar_chart(list(depths), list(depths.values()),
                                       title="Kept items by chain depth",
                                       xlabel="kept items", ylabel="depth (sub-tasks)",
                                       integer=True)))
    if modes := stats.get("modes"):
        blocks.append(table(["modes (in order)", "kept items"],
                            [[m, n] for m, n in modes.items()]))
    if reasons := stats.get("rejected_by_reason"):
        blocks.append(table(["reject reason", "rows"], [[r, n] for r, n in reasons.items()]))
    if judge := stats.get("judge_vs_rule"):
        blocks += _judge_blocks(judge)
    return section(title, blocks)


def _judge_blocks(judge: dict) -> list:
    """augment.judge: the generator's yes/no on its own rewrites against the rule checks."""
    rows = [[cell, n] for cell, n in (judge.get("table") or {}).items()]
    rows += [["judge yes-rate", num(judge.get("judge_yes_rate"), 2)],
             ["rule yes-rate", num(judge.get("rule_yes_rate"), 2)],
             ["agreement", num(judge.get("agreement"), 2)],
             ["unusable judge replies", judge.get("judge_unusable")]]
    return [table(["judge vs rule (rewrites)", "count"], rows),
            note("Measured only: the rule checks (content words kept, Tree-Instruct's "
                 "length and word filters) decide what is kept; the judge is the same "
                 "generator asked YES/NO whether each rewrite is still the task.")]
