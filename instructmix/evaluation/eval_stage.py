"""Eval stage: per-category exact match (greedy) and response loss on the held-out sets,
scored by Ray tasks in parallel chunks. Writes `eval/results.json` and
`eval/predictions.jsonl`; with testbed chains, scores by sequential depth and complexity
(`depth.chain_scores`); with `eval.seqeval`, answers the SeqEval prompts with the trained
model, has `eval.judge` judge them and writes `eval/seqeval.jsonl`."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from instructmix.augment.base import Reject
from instructmix.cluster import cluster_cpus
from instructmix.config import RunConfig
from instructmix.evaluation.depth import chain_scores, judge_seqeval, load_seqeval

log = logging.getLogger("instructmix")


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


def evaluate(model_dir: str, rows: list[dict], cfg: RunConfig) -> list[dict]:
    """Score rows with Ray tasks: one chunk per CPU (1 torch thread each) or per GPU."""
    import ray

    from instructmix.evaluation.scoring import score_rows

    if cfg.eval.use_gpu:
        task, slots = ray.remote(num_gpus=1)(score_rows), int(
            ray.cluster_resources().get("GPU", 0))
        if slots == 0:
            raise RuntimeError("eval.use_gpu is set but the Ray cluster has no GPU")
    else:
        task, slots = ray.remote(num_cpus=1)(score_rows), cluster_cpus()
    n = max(1, min(slots, len(rows)))
    chunks = [rows[k::n] for k in range(n)]
    device = "cuda" if cfg.eval.use_gpu else "cpu"
    refs = [task.remote(model_dir, c, cfg.eval.batch_size, cfg.eval.max_new_tokens,
                        cfg.train.max_seq_len, device) for c in chunks if c]
    return [r for part in ray.get(refs) for r in part]


def make_judge(cfg: RunConfig):
    """The SeqEval judge: an `LLMRewriter` over the generator `eval.judge` names."""
    from instructmix.augment.base import GenParams
    from instructmix.augment.generators import make_generator
    from instructmix.augment.llm_rewriter import LLMRewriter
    from instructmix.training.model_factory import model_path

    jc = cfg.eval.judge
    gen = make_generator(jc, model_path(cfg.run_dir), Path(cfg.run_dir) / "cache",
                         section="eval.judge")  # outside eval/: kept when eval re-runs
    return LLMRewriter(gen, GenParams(max_new_tokens=jc.max_new_tokens,
                                      temperature=jc.temperature))


def context_rejects(model_dir: str, rows: list[dict], max_new_tokens: int) -> dict:
    """{id: Reject} for rows whose prompt plus `max_new_tokens` does not fit the model's
    context (greedy generation would fail on them)."""
    from transformers import AutoConfig, AutoTokenizer

    from instructmix.training.model_factory import context_length

    context = context_length(AutoConfig.from_pretrained(model_dir))
    if not context:
        return {}
    tok = AutoTokenizer.from_pretrained(model_dir)
    out = {}
    for r in rows:
        prompt = tok.apply_chat_template(r["messages"][:-1], tokenize=False,
                                         add_generation_prompt=True)
        n = len(tok(prompt, add_special_tokens=False)["input_ids"])
        if n + max_new_tokens > context:
            out[r["id"]] = Reject(f"prompt of {n} tokens + {max_new_tokens} new tokens does "
                                  f"not fit the model's context of {context}")
    return out


def run_seqeval(cfg: RunConfig, model_dir: str, out: Path, judge) -> dict:
    """Answer the SeqEval prompts with the trained model (the same Ray scoring tasks as the
    held-out set: greedy, eval.max_new_tokens), judge the responses, write `seqeval.jsonl`
    (id, prompt, depth, response, verdict, reject_reason) and return the summary of
    `depth.judge_seqeval` (without records) plus `file`. A prompt too long for the model's
    context, or empty, is not answered: it counts as rejected with that reason."""
    items = load_seqeval(cfg.eval.seqeval, cfg.eval.seqeval_limit)
    rows = [{"id": i["id"], "category": f"seqeval-depth{i['depth']}", "answer": "",
             "messages": [{"role": "user", "content": i["instruction"]},
                          {"role": "assistant", "content": ""}]} for i in items]
    answers: dict[str, str | Reject] = {i["id"]: Reject("empty instruction in the SeqEval file")
                                        for i in items if not i["instruction"].strip()}
    answers.update(context_rejects(model_dir, [r for r in rows if r["id"] not in answers],
                                   cfg.eval.max_new_tokens))
    todo = [r for r in rows if r["id"] not in answers]
    log.info("eval: answering %d SeqEval prompts (%d empty or too long for the model)",
             len(todo), len(answers))
    if todo:
        answers.update((r["id"], r["prediction"]) for r in evaluate(model_dir, todo, cfg))
    res = judge_seqeval(items, [answers[i["id"]] for i in items], judge)
    with open(out / "seqeval.jsonl", "w") as f:
        for r in res.pop("records"):
            f.write(json.dumps(r) + "\n")
    res["file"] = str(cfg.eval.seqeval)
    return res


def run_eval(cfg: RunConfig, out: Path) -> dict:
    run_dir = Path(cfg.run_dir)
    judge = None
    if cfg.eval.seqeval:
        if cfg.eval.judge is None:
            raise ValueError("eval.judge: eval.seqeval is set but no judge is configured "
                             "(set eval.judge.backend to 'hf' or 'http')")
        load_seqeval(cfg.eval.seqeval, cfg.eval.seqeval_limit)  # fail before any scoring
        judge = make_judge(cfg)
    table = pq.read_table(run_dir / "pool" / "eval.parquet")
    if table.num_rows == 0:
        raise ValueError("eval: no held-out rows (pool.eval_sources is empty or all rejected)")
    cols = [c for c in ("id", "category", "messages", "answer", "meta") if c in table.column_names]
    rows = table.select(cols).to_pylist()
    log.info("eval: scoring %d held-out rows", len(rows))
    model_dir = str(run_dir / "train" / "model")
    scored = evaluate(model_dir, rows, cfg)
    with open(out / "predictions.jsonl", "w") as f:
        for r in scored:
            f.write(json.dumps(r) + "\n")
    results = summarise(scored, rows)
    if judge is not None:
        results["seqeval"] = run_seqeval(cfg, model_dir, out, judge)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    summary = {k: results[f"macro_{k}"] for k in ("exact_match", "token_accuracy", "loss")}
    log.info("eval: macro %s", summary)
    if "seqeval" in results:
        summary["seqeval_following_rate"] = results["seqeval"]["following_rate"]
    return summary
