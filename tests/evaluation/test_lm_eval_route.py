"""lm-evaluation-harness on a tiny real model, offline: task YAMLs over local JSONL files.
lm-eval's multiple-choice answers equal our own log-likelihood argmax on every doc, and a
model that always says "C" gets exactly the exact match its outputs allow. Then the config
checks, run_eval writing `lm_eval` into the results (Ray), and the report's table."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from instructmix.config import ConfigError, LmEvalConfig, load_config
from instructmix.evaluation.lm_eval_route import headline, run_lm_eval
from tests.fixtures.tiny_lm import build_tiny_lm

lm_eval = pytest.importorskip("lm_eval")

QUESTIONS = ["what is 2+2?", "pick a colour", "which letter?", "say hi", "odd one out",
             "best guess", "name a river", "x or y?"]
CHOICES = [["ab", "cd", "ef"], ["gh", "ij", "kl"], ["mn", "op", "qr"], ["st", "uv", "wx"],
           ["yz", "AB", "CD"], ["EF", "GH", "IJ"], ["KL", "MN", "OP"], ["QR", "ST", "UV"]]
MC_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: multiple_choice
test_split: test
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: label
doc_to_choice: choices
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
GEN_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: generate_until
test_split: test
doc_to_text: "Say: {{{{prompt}}}}\\n"
doc_to_target: "{{{{target}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
"""


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No hub: the tasks read local JSONL files only."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def write_task(folder, name: str, template: str, docs: list[dict]) -> None:
    folder.mkdir(exist_ok=True)
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / f"{name}.yaml").write_text(template.format(name=name, data=data))


def own_choices(model_dir: str) -> list[int]:
    """Per question, the choice of highest summed log-likelihood of ' ' + choice after the
    prompt, scored here without lm-eval (character tokenizer: no merges across the cut)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    picks = []
    for q, choices in zip(QUESTIONS, CHOICES, strict=True):
        context = f"Question: {q}\nAnswer:"
        n = len(tok(context, add_special_tokens=False)["input_ids"])
        scores = []
        for c in choices:
            ids = tok(context + " " + c, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logp = model(torch.tensor([ids])).logits[0].log_softmax(-1)
            scores.append(sum(logp[i - 1, ids[i]].item() for i in range(n, len(ids))))
        picks.append(max(range(len(choices)), key=scores.__getitem__))
    return picks


def mc_tasks(folder, model_dir: str) -> list[int]:
    """Two tasks over the same questions: gold = our own pick (tiny_mc_right) and gold =
    another choice (tiny_mc_wrong). Returns our picks."""
    picks = own_choices(model_dir)
    for name, shift in (("tiny_mc_right", 0), ("tiny_mc_wrong", 1)):
        write_task(folder, name, MC_YAML, [
            {"question": q, "choices": c, "label": (p + shift) % len(c)}
            for q, c, p in zip(QUESTIONS, CHOICES, picks, strict=True)])
    return picks


def always_c_model(path) -> str:
    """A tiny model whose argmax is "C" after every prefix (lm_head is tied to wte)."""
    from transformers import AutoModelForCausalLM

    build_tiny_lm(path, chat_template=False)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        from transformers import AutoTokenizer

        c = AutoTokenizer.from_pretrained(path).convert_tokens_to_ids("C")
        model.lm_head.weight.zero_()
        model.lm_head.weight[c] = 1.0
        model.transformer.ln_f.bias.fill_(1.0)
    model.save_pretrained(path)
    return str(path)


@pytest.mark.slow  # a real lm-eval run: ~15 s
def test_multiple_choice_acc_equals_our_own_loglikelihood_argmax(tmp_path):
    model_dir = build_tiny_lm(tmp_path / "model", chat_template=False)
    picks = mc_tasks(tmp_path / "tasks", model_dir)
    assert len(set(picks)) > 1  # the picks are not one fixed position
    lc = LmEvalConfig(tasks=["tiny_mc_right", "tiny_mc_wrong"],
                      include_path=str(tmp_path / "tasks"), batch_size=4)
    out = run_lm_eval(model_dir, lc)
    json.dumps(out)  # JSON-able as it is
    right, wrong = out["results"]["tiny_mc_right"], out["results"]["tiny_mc_wrong"]
    # acc 1 / 0 only if lm-eval picks what we pick on every one of the 8 questions
    assert right["metrics"]["acc"]["value"] == 1.0
    assert wrong["metrics"]["acc"]["value"] == 0.0
    assert right["metrics"]["acc"]["stderr"] == 0.0
    assert (right["n"], right["n_total"], right["num_fewshot"]) == (8, 8, 0)
    assert out["lm_eval_version"] == lm_eval.__version__
    assert (out["tasks"], out["limit"], out["num_fewshot"]) == (lc.tasks, None, None)
    assert headline(out) == "tiny_mc_right acc=1, tiny_mc_wrong acc=0"


@pytest.mark.slow  # a real lm-eval run: ~15 s
def test_generate_until_exact_match_of_a_model_that_always_says_c(tmp_path):
    model_dir = always_c_model(tmp_path / "model")
    docs = [{"prompt": "c please", "target": "CCCC"}, {"prompt": "b please", "target": "BBBB"},
            {"prompt": "more c", "target": "CCCC"}, {"prompt": "short", "target": "CC"},
            {"prompt": "not scored (limit)", "target": "CCCC"}]
    write_task(tmp_path / "tasks", "tiny_gen", GEN_YAML, docs)
    lc = LmEvalConfig(tasks=["tiny_gen"], include_path=str(tmp_path / "tasks"), limit=4,
                      num_fewshot=0)
    res = run_lm_eval(model_dir, lc)["results"]["tiny_gen"]
    # greedy "CCCC" (max_gen_toks 4) matches 2 of the first 4 targets
    assert res["metrics"]["exact_match"]["value"] == 0.5
    assert (res["n"], res["n_total"], res["version"]) == (4, 5, 2.0)


# --- config: checked at load time, naming eval.lm_eval ---------------------------------

def _error(overrides) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    return str(e.value)


def test_config_with_local_tasks_loads(tmp_path):
    write_task(tmp_path / "tasks", "tiny_gen", GEN_YAML, [{"prompt": "a", "target": "A"}])
    cfg = load_config(None, [f"eval.lm_eval={{tasks: [tiny_gen, gsm8k], include_path: "
                             f"{tmp_path / 'tasks'}, limit: 5}}"])
    assert cfg.eval.lm_eval.tasks == ["tiny_gen", "gsm8k"] and cfg.eval.lm_eval.limit == 5


def test_unknown_task_names_the_field_and_a_close_name(tmp_path):
    write_task(tmp_path / "tasks", "tiny_gen", GEN_YAML, [{"prompt": "a", "target": "A"}])
    msg = _error([f"eval.lm_eval={{tasks: [tiny_gen, gsm8kk], include_path: "
                  f"{tmp_path / 'tasks'}}}"])
    assert "eval.lm_eval.tasks: unknown task(s) ['gsm8kk']" in msg
    assert "did you mean 'gsm8k'?" in msg and "eval.lm_eval.include_path" in msg


def test_missing_include_path_and_empty_tasks(tmp_path):
    msg = _error([f"eval.lm_eval={{tasks: [x], include_path: {tmp_path / 'nowhere'}}}"])
    assert "eval.lm_eval.include_path:" in msg and "is not a folder" in msg
    assert "eval.lm_eval.tasks" in _error(["eval.lm_eval={tasks: []}"])


def test_lm_eval_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # `import lm_eval` now fails
    msg = _error(["eval.lm_eval={tasks: [mmlu]}"])
    assert "eval.lm_eval: lm-evaluation-harness is not installed" in msg
    assert "instructmix[lmeval]" in msg


# --- run_eval on Ray, and the report ------------------------------------------------------

@pytest.mark.slow
def test_run_eval_writes_lm_eval_results(ray_local, tmp_path):
    import pyarrow as pa

    from instructmix.evaluation.eval_stage import run_eval
    from instructmix.layout import EVAL, POOL, TRAIN, RunLayout
    from tests.conftest import rows_of_testbed, tiny_config

    run_dir = tmp_path / "run"
    _, rows = rows_of_testbed(0, 2, 1, categories=["reverse", "upper"])
    RunLayout(run_dir, "pool").write_table(POOL.eval, pa.Table.from_pylist(rows))
    model_dir = build_tiny_lm(RunLayout(run_dir).path(TRAIN.model), chat_template=True)
    mc_tasks(tmp_path / "tasks", model_dir)
    cfg = tiny_config(run_dir, model={"max_positions": 128}, eval={"lm_eval": {
        "tasks": ["tiny_mc_right"], "include_path": str(tmp_path / "tasks")}})
    run_eval(cfg, RunLayout(run_dir, "eval"))
    lm = RunLayout(run_dir).read_json(EVAL.results)["lm_eval"]
    assert lm["model"] == model_dir
    assert lm["results"]["tiny_mc_right"]["metrics"]["acc"]["value"] == 1.0


def test_report_shows_the_lm_eval_table(tmp_path):
    from instructmix.layout import EVAL, RunLayout
    from tests.report.test_report import fake_run, report_of

    cfg = fake_run(tmp_path)
    results = RunLayout(tmp_path).read_json(EVAL.results)
    results["lm_eval"] = {"lm_eval_version": "0.4.13", "tasks": ["gsm8k"], "limit": 50,
                          "num_fewshot": None, "results": {"gsm8k": {"n": 50, "metrics": {
                              "exact_match/strict-match": {"value": 0.125, "stderr": 0.047}}}}}
    RunLayout(tmp_path, "eval").write_json(EVAL.results, results)
    _, _, page = report_of(tmp_path, cfg)
    assert "lm-evaluation-harness" in page and "exact_match/strict-match" in page
    assert "0.125" in page and "0.047" in page
