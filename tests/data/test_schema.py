import pytest

from instructmix.data.schema import RowError, fallback_id, to_canonical


def test_alpaca_with_input_becomes_two_turns():
    row = to_canonical({"instruction": "Add", "input": "2 2", "output": "4"}, "auto", {}, "s",
                       "fallback")
    assert row["messages"] == [{"role": "user", "content": "Add\n\n2 2"},
                               {"role": "assistant", "content": "4"}]
    assert row["id"] == "fallback" and row["source"] == "s" and row["category"] == ""


def test_messages_and_mapping():
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"}]
    row = to_canonical({"id": 7, "messages": msgs, "category": "chat"}, "auto", {}, "s", "f")
    assert row["id"] == "7" and row["messages"] == msgs and row["category"] == "chat"
    mapped = to_canonical({"question": "2+2?", "rationale": "4", "task": "math"}, "mapping",
                          {"instruction": "question", "output": "rationale",
                           "category": "task"}, "s", "f")
    assert mapped["messages"][0]["content"] == "2+2?" and mapped["category"] == "math"


@pytest.mark.parametrize("row, reason", [
    ({"output": "x"}, "missing field 'instruction'"),
    ({"instruction": "x", "output": ""}, "'output' is empty"),
    ({"instruction": {"a": 1}, "output": "x"}, "must be a string"),
    ({"instruction": "x", "output": True}, "must be a string"),
    ({"messages": []}, "non-empty list"),
    ({"messages": [{"role": "user", "content": "x"}]}, "last message"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "role must be one of"),
    ({"messages": [{"role": "assistant", "content": "x"}]}, "no non-empty user turn"),
    ({"foo": 1}, "cannot tell the format"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_rows_have_reasons(row, reason):
    with pytest.raises(RowError, match=reason):
        to_canonical(row, "auto", {}, "s", "f")


@pytest.mark.parametrize("row, kind, reason", [
    ({"instruction": 42, "output": "x"}, "wrong type",
     "field 'instruction' must be a string, got int"),
    ({"instruction": "x", "output": 3.5}, "wrong type",
     "field 'output' must be a string, got float"),
    ({"instruction": "x", "input": ["a"], "output": "y"}, "wrong type",
     "field 'input' must be a string, got list"),
    ({"instruction": "x", "output": "y", "id": [1]}, "wrong type", "field 'id' must be a string"),
    ({"instruction": "x", "output": "y", "answer": {"a": 1}}, "wrong type",
     "field 'answer' must be a string, got dict"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]},
     "empty field", r"messages\[1\].content \(the response\) is empty"),
    ({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]},
     "wrong type", r"messages\[0\].content must be a string, got int"),
    ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]},
     "bad messages", "no non-empty user turn"),
    ({"instruction": " ", "output": "y"}, "empty field", "field 'instruction' is empty"),
])
def test_wrong_types_and_empty_responses_are_rejected_naming_the_field(row, kind, reason):
    with pytest.raises(RowError, match=reason) as err:
        to_canonical(row, "auto", {}, "s", "f")
    assert err.value.kind == kind


def test_identifiers_and_answers_may_be_numbers():
    row = to_canonical({"id": 7, "category": 3, "instruction": "2+2?", "output": "4",
                        "answer": 4}, "auto", {}, "s", "f")
    assert (row["id"], row["category"], row["answer"]) == ("7", "3", "4")
    assert to_canonical({"instruction": "x", "output": "y", "answer": 0.5}, "auto", {}, "s",
                        "f")["answer"] == "0.5"
    with pytest.raises(RowError, match="'id' must be a string, got bool"):
        to_canonical({"id": True, "instruction": "x", "output": "y"}, "auto", {}, "s", "f")


def test_fallback_ids_are_unique_per_origin_and_stable():
    origins = [f"/data/{d}/part-{k}.jsonl:{line}" for d in ("a", "b") for k in (0, 1)
               for line in range(1, 50)]
    ids = [fallback_id("mydata", o) for o in origins]
    assert len(set(ids)) == len(ids)
    assert ids == [fallback_id("mydata", o) for o in origins]  # a re-run gives the same
    assert all(i.startswith("mydata-") for i in ids)
