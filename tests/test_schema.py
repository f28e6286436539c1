import pytest

from instructmix.data.schema import RowError, to_canonical


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
    ({"messages": [{"role": "assistant", "content": "x"}]}, "no user turn"),
    ({"foo": 1}, "cannot tell the format"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_rows_have_reasons(row, reason):
    with pytest.raises(RowError, match=reason):
        to_canonical(row, "auto", {}, "s", "f")
