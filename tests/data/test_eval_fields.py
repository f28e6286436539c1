"""Eval rows carry what their scorer needs (`meta["eval"]`); malformed choices and IFEval
fields are rejected with the field and the reason."""

import json

import pytest

from instructmix.config import EvalSourceConfig
from instructmix.data.eval_fields import eval_spec
from instructmix.data.read import parse_batch
from instructmix.data.schema import meta_dict
from tests.conftest import SHARED_DATA

IFEVAL_MAP = {"instruction": "prompt", "id": "key"}


def _parse(rows: list, **source) -> list[dict]:
    """Rows through `parse_batch` as one eval source: (error, kind, row fields) each."""
    src = EvalSourceConfig(path="x", **source)
    n = len(rows)
    out = parse_batch({"raw": [json.dumps(r).encode() for r in rows],
                       "origin": [f"f.jsonl:{k + 1}" for k in range(n)],
                       "fmt": [src.format] * n, "source": ["src"] * n,
                       "mapping": [json.dumps(src.mapping)] * n, "order": list(range(n)),
                       "eval": [eval_spec(src)] * n}, max_chars=10_000)
    return [{"error": out["error"][k], "kind": out["kind"][k], "id": out["id"][k],
             "answer": out["answer"][k], "messages": json.loads(out["messages_json"][k]),
             "eval": meta_dict(out["meta"][k]).get("eval")} for k in range(n)]


def test_choice_rows_by_text_index_and_letter():
    q = {"instruction": "Capital of France?", "choices": ["Rome", "Paris", "Oslo"]}
    text, index, letter = (_parse([dict(q, answer=a)], scorer="choice", choices_field="choices",
                                  choice_label=label)[0]
                           for a, label in (("Paris", "text"), (1, "index"), ("b", "letter")))
    for row in (text, index, letter):
        assert row["error"] == ""
        assert row["eval"] == {"scorer": "choice", "choices": ["Rome", "Paris", "Oslo"],
                               "gold": 1}
        assert row["answer"] == "Paris"
        assert row["messages"][-1] == {"role": "assistant", "content": "Paris"}  # no output


@pytest.mark.parametrize("row, label, reason", [
    ({"answer": "Paris"}, "text", "missing field 'choices'"),
    ({"choices": "Rome, Paris", "answer": "Paris"}, "text", "must be a list of at least 2"),
    ({"choices": ["Paris"], "answer": "Paris"}, "text", "must be a list of at least 2"),
    ({"choices": ["Rome", ""], "answer": "Rome"}, "text", "option 1 must be a non-empty"),
    ({"choices": ["Rome", True], "answer": "Rome"}, "text", "option 1 must be a non-empty"),
    ({"choices": ["Rome", "Rome "], "answer": "Rome"}, "text", "repeats an option"),
    ({"choices": ["Rome", "Oslo"], "answer": "Paris"}, "text", "'Paris' is not one of"),
    ({"choices": ["Rome", "Oslo"], "answer": 2}, "index", "is not an index 0-1"),
    ({"choices": ["Rome", "Oslo"], "answer": "C"}, "letter", "is not a letter A-B"),
])
def test_malformed_choices_are_rejected(row, label, reason):
    got = _parse([dict(row, instruction="Capital?")], scorer="choice",
                 choices_field="choices", choice_label=label)[0]
    assert got["kind"] == "bad choices" and reason in got["error"], got["error"]


def test_ifeval_rows_need_no_response():
    row = {"key": 7, "prompt": "Write without commas.",
           "instruction_id_list": ["punctuation:no_comma", "keywords:existence"],
           "kwargs": [{}, {"keywords": ["sea"], "unused": None}]}
    got = _parse([row], scorer="ifeval", format="mapping", mapping=IFEVAL_MAP,
                 max_new_tokens=300)[0]
    assert got["error"] == "" and got["id"] == "7"
    assert got["messages"] == [{"role": "user", "content": "Write without commas."},
                               {"role": "assistant", "content": ""}]
    assert got["eval"] == {"scorer": "ifeval", "max_new_tokens": 300,
                           "instruction_id_list": row["instruction_id_list"],
                           "kwargs": [{}, {"keywords": ["sea"]}]}  # nulls dropped


@pytest.mark.parametrize("fields, reason", [
    ({"kwargs": [{}]}, "'instruction_id_list' must be a non-empty list"),
    ({"instruction_id_list": [], "kwargs": []}, "'instruction_id_list' must be a non-empty"),
    ({"instruction_id_list": ["punctuation:no_comma"], "kwargs": []}, "must be a list of 1"),
    ({"instruction_id_list": ["punctuation:no_comma"], "kwargs": ["x"]}, "must be an object"),
    ({"instruction_id_list": ["length_constraints:number_words"],
      "kwargs": [{"num_words": 3}]}, "must have exactly ['num_words', 'relation']"),
    ({"instruction_id_list": ["length_constraints:number_words"],
      "kwargs": [{"num_words": 3, "relation": "more"}]}, "relation of"),
    ({"instruction_id_list": ["keywords:existence"], "kwargs": [{"keywords": "sea"}]},
     "must be a list of non-empty strings"),
])
def test_malformed_ifeval_fields_are_rejected(fields, reason):
    got = _parse([dict(fields, key=1, prompt="p")], scorer="ifeval", format="mapping",
                 mapping=IFEVAL_MAP)[0]
    assert got["kind"] == "bad ifeval fields" and reason in got["error"], got["error"]


def test_unknown_ifeval_ids_pass_to_be_reported_uncovered():
    got = _parse([{"key": 1, "prompt": "p", "instruction_id_list": ["my:own_rule"],
                   "kwargs": [{"x": 1}]}], scorer="ifeval", format="mapping",
                 mapping=IFEVAL_MAP)[0]
    assert got["error"] == "" and got["eval"]["kwargs"] == [{"x": 1}]


def test_exact_and_number_rows_still_need_a_response():
    rows = [{"instruction": "2+2?", "output": ""}, {"instruction": "2+2?", "output": "#### 4"}]
    empty, ok = _parse(rows, scorer="number", max_new_tokens=256)
    assert empty["kind"] == "empty field" and "'output' is empty" in empty["error"]
    assert ok["eval"] == {"scorer": "number", "max_new_tokens": 256}
    assert _parse(rows[1:])[0]["eval"] == {"scorer": "exact"}


def test_real_gsm8k_and_ifeval_rows_are_accepted():
    gsm, ifeval = SHARED_DATA / "gsm8k" / "test.jsonl", SHARED_DATA / "ifeval" / "input_data.jsonl"
    if not (gsm.is_file() and ifeval.is_file()):
        pytest.skip(f"{gsm} or {ifeval} is absent (public data beside the project)")
    rows = [json.loads(line) for line in ifeval.read_text().splitlines()]
    got = _parse(rows, scorer="ifeval", format="mapping", mapping=IFEVAL_MAP)
    assert [g["error"] for g in got] == [""] * len(rows) == [""] * 541
    rows = [json.loads(line) for line in gsm.read_text().splitlines()[:50]]
    got = _parse(rows, scorer="number", format="mapping",
                 mapping={"instruction": "question", "output": "answer"})
    assert all(g["error"] == "" and "####" in g["messages"][-1]["content"] for g in got)
