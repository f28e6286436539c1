"""Report sections of the eval stage: scores per category of the final run, example
predictions, and scores by sequential depth / Tree-Instruct complexity / SeqEval."""

from __future__ import annotations

from instructmix.evaluation.depth import level_keys
from instructmix.layout import EVAL
from instructmix.report.blocks import figure, heading, note, section, table
from instructmix.report.figures import bar_chart, grouped_bars
from instructmix.report.fmt import num
from instructmix.report.inputs import RunData, absent

EXAMPLES_PER_CATEGORY = 3
PREDICTION_CHARS = 200
METRICS = {"exact_match": "exact match", "token_accuracy": "token accuracy",
           "loss": "eval loss"}


def score_table(results: dict, strategy: str, metric: str) -> dict:
    """One row per category (and macro), one column per strategy (here: the final run's);
    exact match also names each category's scorer (its accuracy is what the column holds)."""
    pc = results.get("per_category") or {}
    scorer = metric == "exact_match"
    rows = [[c, *([(pc[c] or {}).get("scorer") or "exact"] if scorer else []),
             (pc[c] or {}).get("n"), num((pc[c] or {}).get(metric))] for c in sorted(pc)]
    rows.append(["macro", *([""] if scorer else []), "", num(results.get(f"macro_{metric}"))])
    return table(["category", *(["scorer"] if scorer else []), "n", strategy], rows)


def _examples(preds: list[dict]) -> dict:
    seen: dict[str, int] = {}
    rows = []
    for p in preds:
        c = str(p.get("category"))
        if seen.get(c, 0) < EXAMPLES_PER_CATEGORY:
            seen[c] = seen.get(c, 0) + 1
            pred = str(p.get("prediction", ""))
            cut = pred[:PREDICTION_CHARS] + ("…" if len(pred) > PREDICTION_CHARS else "")
            rows.append([c, str(p.get("id")), cut, p.get("scorer") or "exact", p.get("correct"),
                         p.get("loss")])
    return table(["category", "id", "prediction", "scorer", "right", "loss"], rows,
                 caption=f"At most {EXAMPLES_PER_CATEGORY} rows per category; loss = mean "
                 "per-token cross-entropy of the reference response.")


def eval_section(data: RunData, strategy: str, seed: int) -> dict:
    res = data.results
    if res is None:
        return section("Evaluation of the final run", [absent(data, EVAL.results)])
    pc = res.get("per_category") or {}
    cats = sorted(pc)
    blocks = [
        note(f"The final run: strategy {strategy}, one training run (seed {seed}), scored on "
             "the held-out eval set. exact match = share of held-out items whose greedy "
             "generation equals the reference after whitespace normalisation: the row's "
             "answer, or its reference response when it has none. For a category of another "
             "scorer (the scorer column) it is that scorer's accuracy: number = the final "
             "number of the generation equals the reference's; choice = the option of "
             "highest log-likelihood is the gold one; ifeval = IFEval prompt-level strict "
             "accuracy (every covered instruction followed). token accuracy = share "
             "of the reference response's tokens (and eos) that are the model's argmax, "
             "teacher-forced. loss = mean per-token cross-entropy of the reference response "
             "(lower is better); none for rows without one (IFEval). macro = unweighted mean "
             "over categories."),
        figure(grouped_bars(
            [*cats, "macro"],
            {METRICS[m]: [*((pc[c] or {}).get(m) for c in cats), res.get(f"macro_{m}")]
             for m in ("exact_match", "token_accuracy")},
            title=f"Final run ({strategy}, one seed): scores per category",
            xlabel="category", ylabel="share of items / tokens", legend_title="score",
            ylim=(0.0, 1.05), error_bars=False)),
        figure(bar_chart([*cats, "macro"],
                         [*((pc[c] or {}).get("loss") for c in cats), res.get("macro_loss")],
                         title=f"Final run ({strategy}, one seed): eval loss per category",
                         xlabel="mean per-token cross-entropy (lower is better)")),
    ]
    for metric, label in METRICS.items():
        blocks += [heading(f"{label.capitalize()} per category"),
                   score_table(res, strategy, metric)]
    blocks.append(heading("Example predictions"))
    blocks.append(absent(data, EVAL.predictions) if data.predictions is None
                  else _examples(data.predictions))
    blocks += _ifeval_blocks(pc)
    if isinstance(res.get("lm_eval"), dict):
        blocks += _lm_eval_blocks(res["lm_eval"])
    return section("Evaluation of the final run", blocks)


def _lm_eval_blocks(lm: dict) -> list[dict]:
    """One row per lm-evaluation-harness task and metric (eval.lm_eval)."""
    rows = [[task, metric, num(m.get("value")), num(m.get("stderr")), r.get("n")]
            for task, r in (lm.get("results") or {}).items()
            for metric, m in (r.get("metrics") or {}).items()]
    return [heading("lm-evaluation-harness"),
            table(["task", "metric", "value", "stderr", "n"], rows),
            note(f"lm-eval {lm.get('lm_eval_version')} on the trained model: tasks "
                 f"{lm.get('tasks')}, few-shot {lm.get('num_fewshot')} (None: each task's "
                 f"own), limit {lm.get('limit')} docs per task; n = docs scored.")]


def _ifeval_blocks(pc: dict) -> list[dict]:
    """Instruction-level accuracy of the ifeval-scored categories, and uncovered ids."""
    cats = [c for c in sorted(pc) if "instruction_accuracy" in (pc[c] or {})]
    if not cats:
        return []
    rows = [[c, pc[c].get("n"), num(pc[c].get("exact_match")),
             pc[c].get("instructions_checked"), num(pc[c].get("instruction_accuracy")),
             "; ".join(f"{i} ({n})" for i, n in (pc[c].get("uncovered") or {}).items())]
            for c in cats]
    return [heading("IFEval"),
            table(["category", "n", "prompt-level strict", "instructions checked",
                   "instruction-level", "not covered (not scored)"], rows),
            note("prompt-level = share of prompts whose covered instructions were all "
                 "followed; instruction-level = share of covered instructions followed. "
                 "Instruction ids the rule checks do not cover are counted, never passed.")]


def _depth_blocks(depth: dict) -> list[dict]:
    ds = level_keys(depth)
    return [table(["depth (sub-tasks)", "n", "following rate", "per-step accuracy"],
                  [[d, depth[d].get("n"), num(depth[d].get("following_rate")),
                    num(depth[d].get("step_accuracy"))] for d in ds]),
            figure(bar_chart(ds, [depth[d].get("following_rate") for d in ds],
                             title="Following rate by depth (testbed)",
                             xlabel="share of chains with every step right",
                             ylabel="depth (sub-tasks)", vmax=1.0)),
            note("Testbed chains of `depth` sub-tasks, scored exactly: the prediction is "
                 "split on '|'. following rate = share of chains with every step right and "
                 "no extra or missing step; per-step accuracy = steps right / steps asked.")]


def _seqeval_blocks(seq: dict) -> list[dict]:
    by = seq.get("by_depth") or {}
    rows = [[d, by[d].get("n"), by[d].get("judged"), by[d].get("followed"),
             num(by[d].get("following_rate")), by[d].get("rejected"),
             "; ".join(f"{r} ({n})" for r, n in (by[d].get("reject_reasons") or {}).items())]
            for d in level_keys(by)]
    rows.append(["all", seq.get("n"), seq.get("judged"), seq.get("followed"),
                 num(seq.get("following_rate")), seq.get("rejected"), ""])
    return [heading("SeqEval (judged)"),
            table(["depth", "n", "judged", "followed", "following rate", "rejected",
                   "reject reasons"], rows),
            note("The trained model answers every SeqEval prompt; the judge decides whether "
                 "the response did every sub-task. following rate = followed / judged; "
                 "rejected = no response or an unusable judge output (not counted in the "
                 "rate). Every response and verdict is kept in the eval stage's SeqEval "
                 "file.")]


def depth_section(data: RunData) -> dict | None:
    """Testbed chains by depth, Tree-Instruct rows by complexity and judged SeqEval by depth;
    None when the results have none of them."""
    res = data.results or {}
    depth, cx, seq = res.get("by_depth"), res.get("by_complexity"), res.get("seqeval")
    blocks = []
    if isinstance(depth, dict) and depth:
        blocks += _depth_blocks(depth)
    if isinstance(cx, dict) and cx:
        blocks += [table(["complexity (nodes)", "n", "exact match"],
                         [[c, cx[c].get("n"), num(cx[c].get("exact_match"))]
                          for c in level_keys(cx)]),
                   note("Tree-Instruct rows composing that many operations; exact match = "
                        "share whose final answer is right.")]
    if isinstance(seq, dict):
        blocks += _seqeval_blocks(seq)
    return section("By sequential depth", blocks) if blocks else None
