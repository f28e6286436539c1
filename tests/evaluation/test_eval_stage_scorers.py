"""Pool stage -> eval stage on a real local Ray instance: each eval source's scorer and its
fields (choices, IFEval ids and kwargs, generation length) reach the eval rows and decide
`correct`. The model is a real tiny LM rigged to always say "7", so every answer is known."""

import contextlib
import json
import threading
import time

import psutil
import pyarrow.parquet as pq
import torch

from instructmix.config import ModelConfig
from instructmix.data.pool import run_pool
from instructmix.data.schema import meta_dict
from instructmix.evaluation.eval_stage import run_eval
from instructmix.layout import RunLayout
from instructmix.training.model_factory import build_model, train_tokenizer
from tests.conftest import tiny_config
from tests.processes import wait_for


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _sources(d):
    train = _jsonl(d / "train.jsonl", [{"instruction": f"say {k}", "output": str(k),
                                        "category": "say"} for k in range(8)])
    gsm = _jsonl(d / "gsm.jsonl", [
        {"question": "How many?", "answer": "7000 + 777 = 7777\n#### 7,777"},
        {"question": "How many more?", "answer": "#### 12"}])
    ifeval = _jsonl(d / "ifeval.jsonl", [{
        "key": 1001, "prompt": "Answer without commas, in German.",
        "instruction_id_list": ["punctuation:no_comma", "language:response_language"],
        "kwargs": [{}, {"language": "de"}]}])
    mc = _jsonl(d / "mc.jsonl", [
        {"question": "Which digit?", "options": ["7", "C"], "label": "A"},
        {"question": "Which letter?", "options": ["7", "C"], "label": "B"},
        {"question": "Broken", "options": ["7", "C"], "label": "E"}])
    plain = _jsonl(d / "plain.jsonl", [{"instruction": "sevens", "output": "77777777"}])
    return [{"path": train}], [
        {"path": gsm, "format": "mapping", "scorer": "number", "max_new_tokens": 4,
         "mapping": {"instruction": "question", "output": "answer"}},
        {"path": ifeval, "format": "mapping", "scorer": "ifeval", "name": "ifeval",
         "mapping": {"instruction": "prompt", "id": "key"}},
        {"path": mc, "format": "mapping", "scorer": "choice", "choices_field": "options",
         "choice_label": "letter", "mapping": {"instruction": "question", "answer": "label"}},
        {"path": plain}]


def _save_always_seven(path):
    tok = train_tokenizer(["How many? 0123456789 #,. abcdefghijklmnopqrstuvwxyz",
                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ"], "char", 512)
    model = build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2, max_positions=128), tok, 0)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[tok.convert_tokens_to_ids("7")] = 1.0
        model.transformer.ln_f.bias.fill_(1.0)
    model.save_pretrained(path)
    tok.save_pretrained(path)


@contextlib.contextmanager
def _scoring_processes():
    """The processes seen running a `score_rows` task (Ray titles a worker by its task)
    while the block runs, sampled every 20 ms."""
    seen, done = {}, threading.Event()

    def watch():
        while not done.is_set():
            for proc in psutil.process_iter(["cmdline"]):
                if (proc.info["cmdline"] or [""])[0].startswith("ray::score_rows"):
                    seen[proc.pid] = proc
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen.values()
    finally:
        done.set()
        thread.join()


def test_scorers_reach_eval_rows_and_results(ray_local, tmp_path):
    train, evals = _sources(tmp_path)
    run_dir = tmp_path / "run"
    cfg = tiny_config(run_dir, pool={"sources": train, "eval_sources": evals})
    run_pool(cfg, RunLayout(run_dir, "pool"))
    rows = {r["id"]: r for r in pq.read_table(run_dir / "pool" / "eval.parquet").to_pylist()}
    fields = {r["category"]: meta_dict(r["meta"])["eval"] for r in rows.values()}
    assert fields["ifeval"] == {"scorer": "ifeval",
                                "instruction_id_list": ["punctuation:no_comma",
                                                        "language:response_language"],
                                "kwargs": [{}, {"language": "de"}]}
    assert fields["gsm"] == {"scorer": "number", "max_new_tokens": 4}  # category = source
    assert fields["mc"]["choices"] == ["7", "C"] and fields["plain"] == {"scorer": "exact"}
    assert rows["1001"]["messages"][-1]["content"] == ""
    rejected = [json.loads(x) for x in (run_dir / "pool" / "rejected.jsonl").read_text()
                .splitlines()]
    assert [(r["kind"], r["split"]) for r in rejected] == [("bad choices", "eval")]
    assert "'E' is not a letter A-B" in rejected[0]["reason"]

    _save_always_seven(run_dir / "train" / "model")
    (run_dir / "eval").mkdir()
    with _scoring_processes() as scorers:
        summary = run_eval(cfg, RunLayout(run_dir, "eval"))
    assert scorers, "no scoring task was seen running"
    # each scoring task's worker exits after it: an idle one would keep the model's memory
    wait_for(lambda: not [p for p in scorers if p.is_running()], 30, "the scorers to exit")
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    pc = results["per_category"]
    assert {c: (v["scorer"], v["judged"], v["exact_match"]) for c, v in pc.items()} == {
        "gsm": ("number", 2, 0.5), "ifeval": ("ifeval", 1, 1.0), "mc": ("choice", 2, 0.5),
        "plain": ("exact", 1, 1.0), }
    assert pc["ifeval"]["uncovered"] == {"language:response_language": 1}
    assert pc["ifeval"]["loss"] is None and pc["gsm"]["loss"] is not None
    assert summary["exact_match"] == results["macro_exact_match"] == 0.75
    preds = {p["id"]: p for p in map(json.loads, (run_dir / "eval" / "predictions.jsonl")
                                     .read_text().splitlines())}
    gsm = [p for p in preds.values() if p["category"] == "gsm"]
    assert {p["prediction"] for p in gsm} == {"7777"}  # the source's 4 new tokens, not 8
    assert next(p for p in preds.values() if p["category"] == "plain")["prediction"] == \
        "77777777"
