"""Eval stage: per-category accuracy under each eval source's scorer (exact match of the
greedy generation by default; final number, multiple choice or IFEval rules: `scoring.py`)
and response loss on the held-out sets, scored by Ray tasks in parallel chunks. Writes
`EVAL.results` and `EVAL.predictions`; with testbed chains, scores by sequential depth and
complexity (`depth.chain_scores`); with `eval.seqeval`, answers the SeqEval prompts with the
trained model, has `eval.judge` judge them and writes `EVAL.seqeval`; with `eval.lm_eval`,
runs lm-evaluation-harness tasks on the trained model (`lm_eval_route`)."""

from __future__ import annotations

import logging

from instructmix import storage
from instructmix.cluster import cluster_cpus
from instructmix.config import RunConfig
from instructmix.evaluation.depth import judge_seqeval, load_seqeval
from instructmix.evaluation.lm_eval_route import headline, lm_eval_on_ray
from instructmix.evaluation.summary import summarise
from instructmix.generation.base import Reject
from instructmix.layout import EVAL, POOL, RUN, TRAIN, RunLayout

log = logging.getLogger("instructmix")


def evaluate(model_dir: str, rows: list[dict], cfg: RunConfig) -> list[dict]:
    """Score rows with Ray tasks: one chunk per CPU (1 torch thread each) or per GPU. Each
    task's worker process exits after it (`max_calls=1`): kept as idle workers, they held
    0.9-1.2 GB each after configs/real.yaml's eval (SmolLM2-135M), which later stages need."""
    import ray

    from instructmix.evaluation.scoring import score_rows

    scorer = ray.remote(max_calls=1)(score_rows)
    if cfg.eval.use_gpu:  # no GPU yet (`cluster.require_gpus`): one task waits for one
        task, slots = scorer.options(num_gpus=1), int(ray.cluster_resources().get("GPU", 1))
    else:
        task, slots = scorer.options(num_cpus=1), cluster_cpus()
    n = max(1, min(slots, len(rows)))
    chunks = [rows[k::n] for k in range(n)]
    device = "cuda" if cfg.eval.use_gpu else "cpu"
    model = storage.portable(model_dir)  # a remote run's: each task fetches it on its node
    refs = [task.remote(model, c, cfg.eval.batch_size, cfg.eval.max_new_tokens,
                        cfg.train.max_seq_len, device) for c in chunks if c]
    return [r for part in ray.get(refs) for r in part]


def make_judge(cfg: RunConfig, layout: RunLayout):
    """The SeqEval judge over the generator `eval.judge` names."""
    from instructmix.evaluation.judge import LLMJudge
    from instructmix.generation.base import GenParams
    from instructmix.generation.factory import make_generator
    jc = cfg.eval.judge
    gen = make_generator(jc, layout.model_path(), layout.path(RUN.cache),
                         section="eval.judge")  # outside eval/: kept when eval re-runs
    return LLMJudge(gen, GenParams(max_new_tokens=jc.max_new_tokens,
                                      temperature=jc.temperature))


def context_rejects(model_dir: str, rows: list[dict], max_new_tokens: int) -> dict:
    """{id: Reject} for rows whose prompt plus `max_new_tokens` does not fit the model's
    context (greedy generation would fail on them)."""
    from transformers import AutoConfig

    from instructmix.training.collate import load_tokenizer
    from instructmix.training.model_factory import context_length

    context = context_length(AutoConfig.from_pretrained(model_dir))
    if not context:
        return {}
    tok = load_tokenizer(model_dir)
    out = {}
    for r in rows:
        prompt = tok.apply_chat_template(r["messages"][:-1], tokenize=False,
                                         add_generation_prompt=True)
        n = len(tok(prompt, add_special_tokens=False)["input_ids"])
        if n + max_new_tokens > context:
            out[r["id"]] = Reject(f"prompt of {n} tokens + {max_new_tokens} new tokens does "
                                  f"not fit the model's context of {context}")
    return out


def run_seqeval(cfg: RunConfig, model_dir: str, layout: RunLayout, judge) -> dict:
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
    layout.write_jsonl(EVAL.seqeval, res.pop("records"))
    res["file"] = str(cfg.eval.seqeval)
    return res


def run_eval(cfg: RunConfig, layout: RunLayout) -> dict:
    judge = None
    if cfg.eval.seqeval:
        if cfg.eval.judge is None:
            raise ValueError("eval.judge: eval.seqeval is set but no judge is configured "
                             "(set eval.judge.backend to 'hf' or 'http')")
        load_seqeval(cfg.eval.seqeval, cfg.eval.seqeval_limit)  # fail before any scoring
        judge = make_judge(cfg, layout)
    table = layout.read_table(POOL.eval)
    if table.num_rows == 0:
        raise ValueError("eval: no held-out rows (pool.eval_sources is empty or all rejected)")
    cols = [c for c in ("id", "category", "messages", "answer", "meta") if c in table.column_names]
    rows = table.select(cols).to_pylist()
    log.info("eval: scoring %d held-out rows", len(rows))
    model_dir = str(layout.path(TRAIN.model))
    scored = evaluate(model_dir, rows, cfg)
    layout.write_jsonl(EVAL.predictions, scored)
    results = summarise(scored, rows)
    if judge is not None:
        results["seqeval"] = run_seqeval(cfg, model_dir, layout, judge)
    if cfg.eval.lm_eval is not None:
        results["lm_eval"] = lm_eval_on_ray(model_dir, cfg)
        log.info("eval: lm-eval %s", headline(results["lm_eval"]))
    layout.write_json(EVAL.results, results, indent=2)
    summary = {k: results[f"macro_{k}"] for k in ("exact_match", "token_accuracy", "loss")}
    log.info("eval: macro %s", summary)
    if "seqeval" in results:
        summary["seqeval_following_rate"] = results["seqeval"]["following_rate"]
    return summary
