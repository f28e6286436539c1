"""`augment.judge`: the generator asked, yes/no, whether each of its own rewrites is still
the task it was given with one more step (SIT) or more detail (Tree-Instruct), next to the
rule checks that decide (`llm_rewriter.rewrite_flaw`: not empty, not a copy, keeps half of
the input's content words; Tree-Instruct also `tree_filter`: words added, length, leaked
procedure words). Measure only: the rules keep or reject, the judge's verdicts are counted.

Small models tend to say yes to everything: the yes-rate and the table of judge vs rule
verdicts show how much a judge-only filter would let through.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from instructmix.augment.llm_rewriter import rewrite_flaw
from instructmix.augment.tree_instruct import tree_filter
from instructmix.config import TreeConfig
from instructmix.evaluation.judge import VERDICTS
from instructmix.generation.base import Reject, ask, first_word, short

_CHANGE = {"sit": "the same task split into steps or with one more step added",
           "tree": "the same task with more detail or constraints added"}
JUDGE_PROMPT = (
    "Below are a task, between <task> tags, and a rewrite of it, between <rewrite> tags. "
    "Do not carry out either.\n\n<task>\n{before}\n</task>\n\n<rewrite>\n{after}\n"
    "</rewrite>\n\nIs the rewrite {change}, keeping the task's details (and not an answer, "
    "a copy or a different task)? Answer YES or NO only."
)
CELLS = ("judge yes / rule yes", "judge yes / rule no", "judge no / rule yes",
         "judge no / rule no")


def rule_reason(before: str, after: str, kind: str, tree_cfg: TreeConfig) -> str | None:
    """The rule checks' reason to reject the rewrite (None: kept), as the stage decides."""
    why = rewrite_flaw(before, after)
    return why if why or kind != "tree" else tree_filter(before, after, tree_cfg)


def ask_judge(generator, params, pairs: list[tuple[str, str]], kind: str
              ) -> list[bool | Reject]:
    """One batched short call: True (YES), False (NO) or a Reject per (before, after)."""
    texts = [JUDGE_PROMPT.format(before=b, after=a, change=_CHANGE[kind]) for b, a in pairs]
    out: list[bool | Reject] = []
    for raw in ask(generator, texts, short(replace(params, reject_truncated=True))):
        if isinstance(raw, Reject):
            out.append(raw)
        elif (verdict := VERDICTS.get(first_word(raw))) is None:
            out.append(Reject("llm: judge answer is not YES or NO", raw))
        else:
            out.append(verdict)
    return out


def agreement(records: list[dict]) -> dict:
    """Counts of judge vs rule verdicts over the judged rewrites, the two yes-rates and the
    share where they agree (rates None when nothing was judged)."""
    judged = [r for r in records if r["judge"] is not None]
    cells = Counter(f"judge {'yes' if r['judge'] else 'no'} / rule "
                    f"{'yes' if r['rule'] else 'no'}" for r in judged)
    n = len(judged)
    rate = (lambda k: k / n) if n else (lambda k: None)
    return {"rewrites": len(records), "judged": n, "judge_unusable": len(records) - n,
            "table": {c: cells[c] for c in CELLS},
            "judge_yes_rate": rate(sum(r["judge"] for r in judged)),
            "rule_yes_rate": rate(sum(r["rule"] for r in judged)),
            "agreement": rate(sum(r["judge"] == r["rule"] for r in judged))}


def judge_vs_rule(rewriter, kind: str, tree_cfg: TreeConfig) -> tuple[list[dict], dict]:
    """(one record per rewrite the rewriter made since its last `take_rewrites`, the
    `agreement` summary). Records: before, after, rule, rule_reason, judge, judge_reject."""
    pairs = rewriter.take_rewrites()
    verdicts = ask_judge(rewriter.generator, rewriter.params, pairs, kind) if pairs else []
    records = []
    for (before, after), v in zip(pairs, verdicts, strict=True):
        why = rule_reason(before, after, kind, tree_cfg)
        records.append({"before": before, "after": after, "rule": why is None,
                        "rule_reason": why, "judge": v if isinstance(v, bool) else None,
                        "judge_reject": v.reason if isinstance(v, Reject) else None})
    return records, agreement(records)
