import json

import pytest

from instructmix.data import testbed
from tests.conftest import rows_of_testbed


def gen(seed: int, items: int, evals: int, **testbed_section):
    """The testbed generator on a testbed config section built from plain arguments."""
    return rows_of_testbed(seed, items, evals, **testbed_section)


def test_deterministic_by_seed():
    a = gen(3, 20, 5, sequential_per_depth=4, complex_nodes=[3], complex_per_level=4)
    b = gen(3, 20, 5, sequential_per_depth=4, complex_nodes=[3], complex_per_level=4)
    c = gen(4, 20, 5)
    assert a == b
    assert a[0][:180] != c[0][:180]


def test_at_least_eight_categories_with_held_out_sets():
    train, evals = gen(0, 30, 10)
    cats = {r["category"] for r in train}
    assert len(cats) >= 8 and cats == {r["category"] for r in evals}
    for cat in cats:
        train_prompts = {r["messages"][0]["content"] for r in train if r["category"] == cat}
        eval_prompts = {r["messages"][0]["content"] for r in evals if r["category"] == cat}
        assert len(eval_prompts) == 10 and not train_prompts & eval_prompts
    assert len({r["id"] for r in train + evals}) == len(train) + len(evals)


def _prompt_word(row):
    return row["messages"][0]["content"].split(": ", 1)[1]


def test_composite_equals_composition_of_its_parts():
    train, _ = gen(1, 50, 1)
    for row in [r for r in train if r["category"] == "rev_upper"]:
        w = _prompt_word(row)
        assert row["answer"] == testbed.OPS["upper"](testbed.OPS["reverse"](w))
        assert row["answer"] == w[::-1].upper()
    for row in [r for r in train if r["category"] == "double"]:
        a = int(_prompt_word(row))
        assert row["answer"] == str(a + a)


def test_conflict_pair_shares_surface_with_contradictory_targets():
    train, _ = gen(2, 200, 1)
    asc = {r["messages"][0]["content"]: r["answer"] for r in train if r["category"] == "sort_asc"}
    desc = {r["messages"][0]["content"]: r["answer"] for r in train
            if r["category"] == "sort_desc"}
    assert all(p.startswith("sort: ") for p in list(asc) + list(desc))
    for p, a in asc.items():
        assert a == "".join(sorted(_prompt_word({"messages": [{"content": p}]})))
    both = set(asc) & set(desc)
    assert all(asc[p] != desc[p] for p in both if len(set(asc[p])) > 1)


def test_noise_targets_unrelated_to_input():
    train, _ = gen(0, 200, 1)
    noise = [r for r in train if r["category"] == "noise"]
    same = sum(r["answer"] in (_prompt_word(r), _prompt_word(r)[::-1]) for r in noise)
    assert same <= 2


def test_ground_truth_consistent_with_tasks():
    gt = testbed.ground_truth()
    cats = set(gt["categories"])
    assert cats == set(testbed.TASKS)
    for e in gt["interactions"]:
        assert e["i"] in cats and e["j"] in cats and e["sign"] in "+-0"
    for e in gt["prerequisites"]:
        assert {"i": e["dependent"], "j": e["base"], "sign": "+", "kind": "prerequisite"} in \
            gt["interactions"]
    assert json.loads(json.dumps(gt)) == gt


def test_sequential_items_answer_every_step():
    train, evals = gen(0, 1, 1, sequential_per_depth=8)
    seq = [r for r in train + evals if r["category"] == "sequential"]
    assert {json.loads(r["meta"])["depth"] for r in seq} == {1, 2, 3, 4}
    for r in seq:
        meta = json.loads(r["meta"])
        word = _prompt_word(r)
        assert meta["steps"] == testbed.apply_chain(meta["ops"], word)
        assert r["answer"].split(" | ") == meta["steps"]
        assert len(meta["ops"]) == meta["depth"]


def test_complexity_knob_counts_operation_nodes():
    train, _ = gen(0, 1, 1, complex_nodes=[1, 3, 6], complex_per_level=5)
    for n in (1, 3, 6):
        rows = [r for r in train if r["category"] == f"complex{n}"]
        assert len(rows) == 5
        for r in rows:
            meta = json.loads(r["meta"])
            assert meta["complexity"] == n == r["messages"][0]["content"].count("(")


def test_held_out_set_that_exhausts_a_category_is_an_error_naming_it():
    # `double` has 100 distinct prompts (0..99): holding out all of them leaves no training
    # prompt (this used to loop forever); asking for more than exist is an error too
    with pytest.raises(ValueError, match="'double'.*eval_per_category=100"):
        gen(0, 10, 100, categories=["double"])
    with pytest.raises(ValueError, match="'double' has too few distinct prompts"):
        gen(0, 10, 101, categories=["double"])
    train, evals = gen(0, 10, 60, categories=["double"])
    assert len(train) == 10 and len(evals) == 60
