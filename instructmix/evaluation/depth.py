"""Evaluation by sequential depth (SIT) and by Tree-Instruct complexity.

Two sources:
- testbed eval rows, scored exactly: a `sequential` row's meta holds `depth` and `steps`
  (the reference result of every sub-task, the answer being the steps joined by " | "); a
  `complexN` row's meta holds `complexity` (number of operation nodes);
- SeqEval (seqEval.json: {instruction, iteration}), scored by a judge that decides whether a
  response followed every sub-task. A judge output that cannot be used is a `Reject`: it is
  counted with its reason, never dropped and never counted as followed or not followed.

Depth and complexity keys are strings ("1", "2", ...) so that results read back from JSON
are equal to the ones computed here.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from instructmix.data.schema import meta_dict
from instructmix.generation.base import Reject

MAX_DEPTH = 8


def step_results(prediction: str, steps: list[str]) -> tuple[int, bool]:
    """(steps right, followed) of one chain prediction.

    The prediction is split on "|" and every part stripped; part k is right when it equals
    steps[k]. Missing parts are wrong. followed = every step right and no extra part."""
    parts = [p.strip() for p in prediction.split("|")]
    right = sum(p == str(s).strip() for p, s in zip(parts, steps, strict=False))
    return right, right == len(steps) and len(parts) == len(steps)


def level_keys(d) -> list[str]:
    """The keys of a by-level dict ("1", "2", ..., "10") in numeric order; keys that are not
    integers come last, by text; [] when `d` is not a dict (e.g. a results file lacks it)."""
    if not isinstance(d, dict):
        return []

    def order(k) -> tuple:
        try:
            return (0, int(k), "")
        except (TypeError, ValueError):
            return (1, 0, str(k))

    return sorted(d, key=order)


def _sorted_levels(d: dict) -> dict:
    return {k: d[k] for k in level_keys(d)}


def chain_scores(rows: list[dict], scored: list[dict]) -> dict:
    """Per-depth and per-complexity scores of eval rows (with `meta`) and their scored
    predictions ({id, prediction, correct}), joined by id.

    Returns {"by_depth": {depth: {n, followed, following_rate, step_accuracy}},
             "by_complexity": {nodes: {n, exact_match}}}, each empty when no row has it.
    - n: rows of that level with a prediction;
    - following_rate: share of chains with every step right and no extra or missing step;
    - step_accuracy: steps right / steps asked, over all chains of that depth (extra
      steps do not lower it, missing steps count as wrong);
    - exact_match: share of complexity rows whose final answer is exactly right.
    """
    by_id = {s["id"]: s for s in scored}
    depth_acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # n, followed, right, asked
    nodes_acc: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # n, correct
    for row in rows:
        pred = by_id.get(row["id"])
        if pred is None or pred.get("prediction") is None:
            continue
        meta = meta_dict(row.get("meta"))
        if "depth" in meta and isinstance(meta.get("steps"), list):
            right, followed = step_results(pred["prediction"], meta["steps"])
            acc = depth_acc[str(meta["depth"])]
            acc[0] += 1
            acc[1] += followed
            acc[2] += right
            acc[3] += len(meta["steps"])
        elif "complexity" in meta and pred.get("correct") is not None:
            acc = nodes_acc[str(meta["complexity"])]
            acc[0] += 1
            acc[1] += bool(pred["correct"])
    by_depth = {d: {"n": n, "followed": f, "following_rate": f / n,
                    "step_accuracy": right / asked if asked else None}
                for d, (n, f, right, asked) in depth_acc.items()}
    by_complexity = {c: {"n": n, "exact_match": ok / n} for c, (n, ok) in nodes_acc.items()}
    return {"by_depth": _sorted_levels(by_depth), "by_complexity": _sorted_levels(by_complexity)}


def load_seqeval(path: str | Path, limit: int | None = None) -> list[dict]:
    """Read a SeqEval file (JSON array of {instruction, iteration}) -> [{id, instruction,
    depth}], ids `seqeval-<k>` with k the 0-based position in the file; at most `limit`
    items (the first ones). Every item is checked; a bad one raises ValueError naming the
    file and the item. An empty instruction (the published file has one) is kept, to be
    counted as rejected rather than dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"eval.seqeval: {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"eval.seqeval: {path} is not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise ValueError(f"eval.seqeval: {path} must hold a JSON array of "
                         f"{{instruction, iteration}}, found {type(data).__name__}")
    items = []
    for k, item in enumerate(data):
        where = f"eval.seqeval: {path} item {k}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object, found {type(item).__name__}")
        text, depth = item.get("instruction"), item.get("iteration")
        if not isinstance(text, str):
            raise ValueError(f"{where}: 'instruction' must be a string, found {text!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"{where}: 'iteration' must be an integer 1..{MAX_DEPTH}, "
                             f"found {depth!r}")
        items.append({"id": f"seqeval-{k}", "instruction": text, "depth": depth})
    return items[:limit] if limit else items


def judge_seqeval(items: list[dict], responses: list[str | Reject], judge) -> dict:
    """Judge every response with `judge.judge_following(instructions, responses)` (one
    `bool | Reject` per item, e.g. `LLMRewriter`) and summarise by depth. A response that is
    a `Reject` (the model could not answer) is not sent to the judge and counts as rejected
    with reason "no response: <reason>".

    Returns {"n", "judged", "followed", "following_rate", "rejected", "reject_reasons",
    "by_depth": {depth: same keys}, "records": [{id, prompt, depth, response, verdict,
    reject_reason}]}.
    - n: items; judged: items with a verdict; rejected: items without one (no response or an
      unusable judge output), so n = judged + rejected; reject_reasons: {reason: count};
    - following_rate = followed / judged: share of judged responses that did every
      sub-task (None when nothing was judged).
    """
    if len(responses) != len(items):
        raise ValueError(f"judge_seqeval: {len(items)} items but {len(responses)} responses")
    todo = [k for k, r in enumerate(responses) if isinstance(r, str)]
    verdicts: list = [Reject(f"no response: {r.reason}", r.raw) if isinstance(r, Reject)
                      else None for r in responses]
    if todo:
        got = list(judge.judge_following([items[k]["instruction"] for k in todo],
                                         [responses[k] for k in todo]))
        if len(got) != len(todo):
            raise ValueError(f"judge_seqeval: the judge returned {len(got)} verdicts for "
                             f"{len(todo)} responses")
        for k, v in zip(todo, got, strict=True):
            ok = isinstance(v, (bool, Reject))
            verdicts[k] = v if ok else Reject(f"judge returned {type(v).__name__}, not a "
                                              "verdict", str(v))
    records = []
    for item, response, v in zip(items, responses, verdicts, strict=True):
        records.append({"id": item["id"], "prompt": item["instruction"], "depth": item["depth"],
                        "response": response if isinstance(response, str) else None,
                        "verdict": v if isinstance(v, bool) else None,
                        "reject_reason": v.reason if isinstance(v, Reject) else None})
    by_depth: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_depth[str(r["depth"])].append(r)
    return {**_judged_summary(records),
            "by_depth": _sorted_levels({d: _judged_summary(rs) for d, rs in by_depth.items()}),
            "records": records}


def _judged_summary(records: list[dict]) -> dict:
    judged = [r["verdict"] for r in records if r["verdict"] is not None]
    reasons = Counter(r["reject_reason"] for r in records if r["verdict"] is None)
    return {"n": len(records), "judged": len(judged), "followed": sum(judged),
            "following_rate": sum(judged) / len(judged) if judged else None,
            "rejected": sum(reasons.values()), "reject_reasons": dict(sorted(reasons.items()))}
