"""Evaluation by sequential depth: exact chain scores, SeqEval loading and judging, the
report section, and (slow) run_eval end to end with a scripted judge."""

from __future__ import annotations

import json

import pytest

from instructmix.data.schema import meta_dict
from instructmix.evaluation.depth import (
    chain_scores,
    judge_seqeval,
    level_keys,
    load_seqeval,
    step_results,
)
from instructmix.evaluation.summary import summarise
from instructmix.generation.base import GenParams, Reject
from instructmix.layout import RunLayout
from tests.conftest import rows_of_testbed


def chain_row(rid: str, steps: list[str]) -> dict:
    meta = {"depth": len(steps), "ops": ["x"] * len(steps), "steps": steps}
    return {"id": rid, "category": "sequential", "answer": " | ".join(steps),
            "meta": json.dumps(meta)}


def scored_row(rid: str, prediction, category="sequential", correct=None) -> dict:
    return {"id": rid, "category": category, "loss": 1.0, "token_accuracy": 0.5,
            "prediction": prediction,
            "correct": correct}


# --- exact chain scores -------------------------------------------------------------------

def test_step_results():
    steps = ["cba", "CBA", "ABC"]
    assert step_results("cba | CBA | ABC", steps) == (3, True)
    assert step_results(" cba|CBA |ABC ", steps) == (3, True)  # parts are stripped
    assert step_results("cba | xxx | ABC", steps) == (2, False)
    assert step_results("cba | CBA", steps) == (2, False)  # a missing step
    assert step_results("cba | CBA | ABC | more", steps) == (3, False)  # an extra step
    assert step_results("", steps) == (0, False)
    assert step_results("ab | ", ["ab", ""]) == (2, True)  # an empty step is a step


def test_chain_scores_hand_made():
    rows = [chain_row("a", ["cba", "CBA", "ABC"]),          # 2 of 3 right
            chain_row("b", ["x", "xx", "XX"]),              # all right
            chain_row("c", ["q", "qq", "QQ"]),              # all right plus an extra step
            chain_row("d", ["hello"]),                      # depth 1, right
            chain_row("e", ["world"]),                      # depth 1, no prediction
            {"id": "f", "category": "complex2", "answer": "Z",
             "meta": json.dumps({"complexity": 2, "ops": ["a", "b"]})},
            {"id": "g", "category": "complex2", "answer": "Y",
             "meta": json.dumps({"complexity": 2, "ops": ["a", "b"]})},
            {"id": "h", "category": "reverse", "answer": "ab", "meta": ""}]
    scored = [scored_row("a", "cba | CBX | ABC"), scored_row("b", "x | xx | XX"),
              scored_row("c", "q | qq | QQ | QQQ"), scored_row("d", "hello"),
              scored_row("e", None), scored_row("f", "Z", "complex2", True),
              scored_row("g", "?", "complex2", False), scored_row("h", "ab", "reverse", True)]
    res = chain_scores(rows, scored)
    assert res["by_depth"] == {
        "1": {"n": 1, "followed": 1, "following_rate": 1.0, "step_accuracy": 1.0},
        "3": {"n": 3, "followed": 1, "following_rate": pytest.approx(1 / 3),
              "step_accuracy": pytest.approx(8 / 9)}}
    assert res["by_complexity"] == {"2": {"n": 2, "exact_match": 0.5}}
    # the depth-3 chain alone: following 0, step accuracy 2/3
    alone = chain_scores(rows[:1], scored[:1])["by_depth"]["3"]
    assert alone["following_rate"] == 0 and alone["step_accuracy"] == pytest.approx(2 / 3)
    # the extra-step chain alone: every step right, but not following
    extra = chain_scores(rows[2:3], scored[2:3])["by_depth"]["3"]
    assert extra["following_rate"] == 0 and extra["step_accuracy"] == 1.0


def test_chain_scores_empty_without_chains():
    rows = [{"id": "h", "category": "reverse", "answer": "ab", "meta": ""}]
    assert chain_scores(rows, [scored_row("h", "ab", "reverse", True)]) == {
        "by_depth": {}, "by_complexity": {}}


@pytest.mark.parametrize("value, expected", [
    ('{"depth": 2}', {"depth": 2}), ({"depth": 2}, {"depth": 2}), ("", {}), (None, {}),
    ("{not json", {}), ("[1, 2]", {}), ("3", {}), (b'{"a": 1}', {"a": 1}), (b"\xff", {}),
    (7, {}), (["depth"], {})])
def test_meta_dict_never_raises(value, expected):
    assert meta_dict(value) == expected


def test_chain_scores_reads_dict_and_bad_meta():
    rows = [{"id": "d", "meta": {"depth": 2, "steps": ["a", "b"]}},
            {"id": "bad", "meta": "{oops"}, {"id": "list", "meta": "[]"}]
    scored = [scored_row(r["id"], "a | b") for r in rows]
    assert chain_scores(rows, scored)["by_depth"] == {
        "2": {"n": 1, "followed": 1, "following_rate": 1.0, "step_accuracy": 1.0}}


def test_level_keys_numeric_order():
    assert level_keys({"10": 0, "2": 0, "1": 0, "9": 0}) == ["1", "2", "9", "10"]
    assert level_keys({"all": 0, "3": 0, 1: 0}) == [1, "3", "all"]  # non-numbers last
    assert level_keys(None) == [] and level_keys([1, 2]) == []


def _testbed_eval():
    _, evals = rows_of_testbed(0, 2, 2, sequential_per_depth=8, complex_nodes=[2, 4],
                                complex_per_level=8)
    return evals


def _perfect(rows):
    return [scored_row(r["id"], r["answer"], r["category"], True) for r in rows]


def test_testbed_perfect_predictions():
    rows = _testbed_eval()
    res = chain_scores(rows, _perfect(rows))
    assert list(res["by_depth"]) == ["1", "2", "3", "4"]
    for d in res["by_depth"].values():
        assert d == {"n": 2, "followed": 2, "following_rate": 1.0, "step_accuracy": 1.0}
    assert res["by_complexity"] == {"2": {"n": 2, "exact_match": 1.0},
                                    "4": {"n": 2, "exact_match": 1.0}}


def test_testbed_last_step_dropped():
    """Every chain answered without its last step: nothing followed, (d-1)/d of the steps."""
    rows = _testbed_eval()
    scored = []
    for r in rows:
        steps = json.loads(r["meta"])["steps"] if r["category"] == "sequential" else None
        pred = " | ".join(steps[:-1]) if steps else "wrong"
        scored.append(scored_row(r["id"], pred, r["category"], pred == r["answer"]))
    res = chain_scores(rows, scored)
    for d, v in res["by_depth"].items():
        assert v["following_rate"] == 0
        assert v["step_accuracy"] == pytest.approx((int(d) - 1) / int(d))
    assert all(v["exact_match"] == 0 for v in res["by_complexity"].values())


def test_summarise_backward_compatible():
    rows = _testbed_eval()
    scored = _perfect(rows)
    plain = summarise(scored)
    assert "by_depth" not in plain and "by_complexity" not in plain
    full = summarise(scored, rows)
    assert {k: full[k] for k in plain} == plain
    assert set(full["by_depth"]) == {"1", "2", "3", "4"}
    assert set(full["by_complexity"]) == {"2", "4"}
    only_tasks = [r for r in rows if not r["meta"]]
    assert "by_depth" not in summarise(_perfect(only_tasks), only_tasks)


# --- SeqEval loading ----------------------------------------------------------------------

def _write(tmp_path, obj, name="seq.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_load_seqeval_rows_and_limit(tmp_path):
    p = _write(tmp_path, [{"instruction": f"do {k}" if k != 3 else " ", "iteration": k % 4 + 1}
                          for k in range(6)])
    items = load_seqeval(p, None)
    assert items[0] == {"id": "seqeval-0", "instruction": "do 0", "depth": 1}
    assert [i["depth"] for i in items] == [1, 2, 3, 4, 1, 2]
    assert items[3]["instruction"] == " "  # kept: counted as rejected later, not dropped
    assert [i["id"] for i in load_seqeval(p, 2)] == ["seqeval-0", "seqeval-1"]


@pytest.mark.parametrize("content, message", [
    ({"instruction": "x", "iteration": 1}, "JSON array"),
    ("[{", "not valid JSON"),
    ([{"instruction": "a", "iteration": 1}, {"iteration": 2}], "item 1: 'instruction' must "
                                                                "be a string, found None"),
    ([{"instruction": 3, "iteration": 2}], "item 0: 'instruction' must be a string, found 3"),
    ([{"instruction": "a"}], "item 0: 'iteration' must be an integer 1..8, found None"),
    ([{"instruction": "a", "iteration": 9}], "found 9"),
    ([{"instruction": "a", "iteration": 0}], "found 0"),
    ([{"instruction": "a", "iteration": "2"}], "found '2'"),
    ([{"instruction": "a", "iteration": True}], "found True"),
    (["just text"], "item 0: expected an object"),
])
def test_load_seqeval_errors(tmp_path, content, message):
    p = _write(tmp_path, content)
    with pytest.raises(ValueError, match="seq.json") as e:
        load_seqeval(p, None)
    assert message in str(e.value)


def test_load_seqeval_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_seqeval(tmp_path / "nope.json", None)


def test_load_shared_seqeval():
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "seqeval" / "seqEval.json"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    items = load_seqeval(path, None)
    assert len(items) == len(json.loads(path.read_text()))
    assert {i["depth"] for i in items} == {1, 2, 3, 4}
    assert len(load_seqeval(path, 50)) == 50


# --- judging ------------------------------------------------------------------------------

class ScriptedJudge:
    """judge_following returns a fixed list of verdicts."""

    def __init__(self, verdicts):
        self.verdicts, self.seen = verdicts, []

    def judge_following(self, instructions, responses):
        self.seen.append((list(instructions), list(responses)))
        return self.verdicts[: len(instructions)]


ITEMS = [{"id": f"seqeval-{k}", "instruction": f"task {k}", "depth": d}
         for k, d in enumerate([1, 1, 2, 2, 2, 3])]


def test_judge_seqeval_counts_rejects():
    judge = ScriptedJudge([True, False, True, Reject("llm: judge answer is not YES or NO",
                                                      "maybe"), "yes?"])
    responses = ["r0", "r1", "r2", "r3", "r4", Reject("prompt too long")]
    res = judge_seqeval(ITEMS, responses, judge)
    # the item without a response never reaches the judge
    assert judge.seen == [([f"task {k}" for k in range(5)], responses[:5])]
    assert (res["n"], res["judged"], res["followed"], res["rejected"]) == (6, 3, 2, 3)
    assert res["following_rate"] == pytest.approx(2 / 3)
    assert res["reject_reasons"] == {"judge returned str, not a verdict": 1,
                                     "llm: judge answer is not YES or NO": 1,
                                     "no response: prompt too long": 1}
    assert res["by_depth"]["1"] == {"n": 2, "judged": 2, "followed": 1, "following_rate": 0.5,
                                    "rejected": 0, "reject_reasons": {}}
    assert res["by_depth"]["2"]["judged"] == 1 and res["by_depth"]["2"]["rejected"] == 2
    assert res["by_depth"]["3"]["following_rate"] is None
    recs = res["records"]
    assert len(recs) == 6
    assert recs[0] == {"id": "seqeval-0", "prompt": "task 0", "depth": 1, "response": "r0",
                       "verdict": True, "reject_reason": None}
    assert recs[3]["verdict"] is None and recs[3]["reject_reason"].startswith("llm: judge")
    assert recs[5]["response"] is None


def test_judge_seqeval_length_mismatch():
    with pytest.raises(ValueError, match="6 items but 2 responses"):
        judge_seqeval(ITEMS, ["a", "b"], ScriptedJudge([]))
    with pytest.raises(ValueError, match="returned 1 verdicts for 6"):
        judge_seqeval(ITEMS, ["r"] * 6, ScriptedJudge([True]))


class ScriptedGenerator:
    """Our Generator protocol: replies from a script, in order."""

    name = "scripted"

    def __init__(self, replies):
        self.replies, self.prompts = list(replies), []

    def complete(self, prompts, params: GenParams):
        self.prompts += prompts
        return [self.replies.pop(0) for _ in prompts]


def test_judge_through_llm_judge():
    from instructmix.evaluation.judge import LLMJudge

    gen = ScriptedGenerator(["YES", "no.", "Maybe", Reject("http: timeout"), "**YES**", ""])
    res = judge_seqeval(ITEMS, [f"r{k}" for k in range(6)], LLMJudge(gen, GenParams()))
    assert len(gen.prompts) == 6 and "task 0" in gen.prompts[0][-1]["content"]
    assert (res["judged"], res["followed"], res["rejected"]) == (3, 2, 3)
    assert res["reject_reasons"]["http: timeout"] == 1
    assert sum(res["reject_reasons"].values()) == 3


# --- report ---------------------------------------------------------------------------------

def test_report_depth_section(tmp_path):
    from instructmix.report import run_report
    from tests.report.test_report import RESULTS, fake_run

    cfg = fake_run(tmp_path)
    rows = _testbed_eval()
    results = dict(RESULTS, **chain_scores(rows, _perfect(rows)))
    res = judge_seqeval(ITEMS, ["r"] * 6, ScriptedJudge([True, False, True, True,
                                                          Reject("unparseable <x>"), False]))
    res.pop("records")
    results["seqeval"] = res
    (tmp_path / "eval" / "results.json").write_text(json.dumps(results))
    run_report(cfg, RunLayout(tmp_path, "report"))
    page = (tmp_path / "report" / "report.html").read_text()
    assert "By sequential depth" in page and "per-step accuracy" in page
    assert "complexity (nodes)" in page and "SeqEval (judged)" in page
    assert "unparseable &lt;x&gt; (1)" in page
    assert "not available" not in page
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    assert rep["eval"]["results"]["by_depth"]["4"]["following_rate"] == 1.0


def test_report_without_depth(tmp_path):
    from instructmix.report import run_report
    from tests.report.test_report import fake_run

    run_report(fake_run(tmp_path), RunLayout(tmp_path, "report"))
    assert "By sequential depth" not in (tmp_path / "report" / "report.html").read_text()
    other = tmp_path / "other"
    other.mkdir()
    run_report(fake_run(other, with_eval_results=False), RunLayout(other, "report"))
    assert "By sequential depth" not in (other / "report" / "report.html").read_text()


# --- run_eval end to end (Ray) ----------------------------------------------------------------

@pytest.mark.slow
def test_run_eval_with_chains_and_seqeval(ray_local, tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from instructmix.config import GeneratorConfig
    from instructmix.evaluation import eval_stage
    from instructmix.training.model_factory import build_model, train_tokenizer
    from tests.conftest import tiny_config

    rows = _testbed_eval()
    seq = _write(tmp_path, [{"instruction": "reverse then upper: abc", "iteration": 2},
                            {"instruction": "upper: xy", "iteration": 1},
                            {"instruction": "z" * 200, "iteration": 3},
                            {"instruction": "", "iteration": 4}])
    with pytest.raises(ValueError, match="eval.judge"):  # caught when the config is built
        tiny_config(tmp_path / "run", eval={"seqeval": str(seq)}, model={"max_positions": 128})
    cfg = tiny_config(tmp_path / "run", model={"max_positions": 128})
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"seqeval": str(seq)})})
    run_dir = tmp_path / "run"
    (run_dir / "pool").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), run_dir / "pool" / "eval.parquet")
    texts = [m["content"] for r in rows for m in r["messages"]]
    tok = train_tokenizer(texts, "char", 512)
    model = build_model(cfg.model, tok, 0)
    model.save_pretrained(run_dir / "train" / "model")
    tok.save_pretrained(run_dir / "train" / "model")
    out = run_dir / "eval"
    out.mkdir()

    with pytest.raises(ValueError, match="eval.judge"):
        eval_stage.run_eval(cfg, RunLayout(run_dir, "eval"))

    judge = ScriptedJudge([True, False])
    monkeypatch.setattr(eval_stage, "make_judge", lambda *args, **kwargs: judge)
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(
        update={"judge": GeneratorConfig(backend="http")})})
    summary = eval_stage.run_eval(cfg, RunLayout(run_dir, "eval"))
    results = json.loads((out / "results.json").read_text())
    assert set(results["by_depth"]) == {"1", "2", "3", "4"}
    assert set(results["by_complexity"]) == {"2", "4"}
    seqeval = results["seqeval"]
    assert (seqeval["n"], seqeval["judged"], seqeval["followed"], seqeval["rejected"]) == (
        4, 2, 1, 2)
    assert summary["seqeval_following_rate"] == 0.5
    recs = [json.loads(line) for line in (out / "seqeval.jsonl").read_text().splitlines()]
    assert [r["depth"] for r in recs] == [2, 1, 3, 4]
    assert "does not fit the model's context" in recs[2]["reject_reason"]
    assert recs[3]["reject_reason"] == "no response: empty instruction in the SeqEval file"
    assert isinstance(recs[0]["response"], str) and recs[0]["verdict"] is True
