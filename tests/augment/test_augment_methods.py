"""Tree-Instruct / SIT augmentation without Ray: the exact rule rewriter against the
testbed's own functions, the LLM rewriter's strict parsing through a scripted generator,
and token matching."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from instructmix.augment.llm_rewriter import LLMRewriter
from instructmix.augment.rules import RuleRewriter, parse
from instructmix.augment.sit import control_augment, sit_augment
from instructmix.augment.tokens import subset_size, token_match
from instructmix.augment.tree_instruct import check_counts, tree_augment
from instructmix.config import SitConfig, TreeConfig
from instructmix.data.complexity import complexity_score
from instructmix.data.testbed import apply_chain, complex_item, sequential_item
from instructmix.evaluation.judge import LLMJudge
from instructmix.generation.base import GenParams, Reject
from tests.conftest import rows_of_testbed


def _rows(n=6, **kw):
    train, _ = rows_of_testbed(0, n, 0, **kw)
    return train


def _row(rid, prompt, answer, category="x", meta=""):
    return {"id": rid, "category": category, "source": "t", "answer": answer, "meta": meta,
            "messages": [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": answer}]}


def task_of(prompt: str) -> str:
    """The text an LLMRewriter prompt works on (between its <task> tags)."""
    return prompt.split("<task>\n", 1)[1].rsplit("\n</task>", 1)[0]


class Scripted:
    """A Generator (our protocol) answering with `reply(prompt_text)`; records calls."""

    name = "scripted"

    def __init__(self, reply):
        self.reply, self.calls, self.params = reply, [], []

    def complete(self, prompts, params):
        self.calls.append(len(prompts))
        self.params.append(params)
        return [self.reply(p[-1]["content"]) for p in prompts]


def test_rules_answer_like_testbed_chains_and_trees():
    rng, rules = random.Random(3), RuleRewriter(seed=0)
    for depth in range(1, 5):
        for _ in range(25):
            prompt, answer, ops, steps = sequential_item(rng, depth)
            assert rules.respond([prompt]) == [answer]
            if depth > 1:
                assert rules.meta(prompt) == {"depth": depth, "ops": ops, "steps": steps}
            assert rules.complexity(prompt) == depth
    for nodes in (1, 3, 6):
        for _ in range(25):
            prompt, answer, ops = complex_item(rng, nodes)
            assert rules.respond([prompt]) == [answer]
            assert rules.complexity(prompt) == nodes == complexity_score(prompt, "")


def test_decompose_composite_task():
    rules = RuleRewriter(seed=0)
    assert rules.choose_modes(["reverse upper: abc"]) == ["decompose"]
    [chain] = rules.rewrite_sit(["reverse upper: abc"], ["decompose"])
    assert chain == "reverse then upper: abc"
    assert rules.respond([chain]) == ["cba | CBA"]
    assert rules.respond(["reverse upper: abc"]) == ["CBA"]
    assert rules.choose_modes(["reverse: abc"])[0] in ("prefix", "suffix")
    only = RuleRewriter(ops=["sort"], seed=0)
    assert only.rewrite_sit(["upper: abc"] * 2, ["prefix", "suffix"]) == [
        "sort then upper: abc", "upper then sort: abc"]
    with pytest.raises(ValueError):
        RuleRewriter(ops=["shout"])


def test_unchainable_categories_kept_or_rejected_with_reasons():
    rules = RuleRewriter(seed=0)
    rows = [_row("d", "sort: bdac", "dcba", "sort_desc"), _row("a", "add: 3 4", "7", "add"),
            _row("n", "noise: abc", "qwe", "noise"), _row("x", "double: 12", "24", "double")]
    items, rejects = sit_augment(rows, rules, SitConfig(max_depth=4, depth_weights=[0, 0, 0, 1]),
                                 seed=0)
    got = {it["origin_id"]: it for it in items}
    assert got["d"]["mode"] == "keep" and got["d"]["answer"] == "dcba"
    assert got["d"]["messages"][0]["content"] == "sort: bdac"  # tag never leaks
    assert got["a"]["answer"] == "7" and got["x"]["answer"] == "24"
    assert [(r["origin_id"], r["step"], r["reason"]) for r in rejects] == [
        ("n", "respond", "rules: category noise has no exact answer")]
    items, rejects = tree_augment(rows, rules, TreeConfig(nodes=3))
    assert not items
    assert [(r["origin_id"], r["step"], r["reason"]) for r in rejects] == [
        (r["id"], "add_nodes[1]", f"rules: category {r['category']} has no string operation")
        for r in rows]


def test_tree_adds_exact_nodes_per_round():
    rows = _rows(5, categories=["reverse", "rev_upper"])
    rules = RuleRewriter(seed=1)
    items, rejects = tree_augment(rows, rules, TreeConfig(nodes=3, rounds=2))
    assert not rejects and len(items) == len(rows)
    for it in items:
        base = 2 if it["category"] == "rev_upper" else 1
        chain = json.loads(it["chain"])  # same shape as SIT / control chains
        assert [c["mode"] for c in chain] == ["original", "tree+3", "tree+3"]
        original = next(r for r in rows if r["id"] == it["origin_id"])
        assert chain[0]["instruction"] == original["messages"][0]["content"]
        assert chain[-1]["instruction"] == it["messages"][0]["content"]
        assert [rules.complexity(c["instruction"]) for c in chain] == [base, base + 3, base + 6]
        assert it["complexity"] == base + 6 and it["kind"] == "tree"
        meta = json.loads(it["meta"])
        word = parse(it["messages"][0]["content"]).text
        assert it["answer"] == apply_chain(meta["ops"], word)[-1] == it["messages"][1]["content"]
        assert meta["complexity"] == base + 6


def test_sit_depths_chains_and_exact_steps():
    rows = _rows(100, categories=["reverse", "upper", "rev_upper"])
    items, rejects = sit_augment(rows, RuleRewriter(seed=2), SitConfig(max_depth=4), seed=5)
    assert not rejects and len(items) == len(rows)
    hist = Counter(it["depth"] for it in items)
    assert set(hist) == {1, 2, 3, 4} and min(hist.values()) > 40  # uniform over 300 rows
    for it in items:
        chain, meta = json.loads(it["chain"]), json.loads(it["meta"] or "{}")
        assert len(chain) == it["depth"]  # original + one entry per added sub-task
        assert [c["mode"] for c in chain[1:]] == ([] if it["mode"] == "none"
                                                  else it["mode"].split(","))
        if it["category"] == "rev_upper" and it["depth"] > 1:
            assert chain[1]["mode"] == "decompose"
        if it["depth"] > 1:
            word = parse(it["messages"][0]["content"]).text
            assert meta["depth"] == it["depth"]
            assert it["answer"] == " | ".join(apply_chain(meta["ops"], word))
    weighted, _ = sit_augment(rows, RuleRewriter(seed=2),
                              SitConfig(max_depth=4, depth_weights=[0, 0, 1, 1]), seed=5)
    assert {it["depth"] for it in weighted} == {3, 4}


def _why(rejects):
    return Counter((r["step"], r["reason"]) for r in rejects)


def test_known_outcomes_and_control():
    # 56 rows: 4 of each of 10 categories, 16 sequential chains (depths 1-4), 4 complex2
    rows = _rows(4, sequential_per_depth=4, complex_nodes=[2], complex_per_level=4)
    rules = RuleRewriter(seed=0)
    noise = {("respond", "rules: category noise has no exact answer"): 4}
    items, rejects = sit_augment(rows, rules, SitConfig(), seed=1)
    assert (len(items), _why(rejects)) == (52, noise)
    items, rejects = tree_augment(rows, rules, TreeConfig())
    no_op = "rules: category {} has no string operation"
    assert len(items) == 24 and _why(rejects) == {
        **{("add_nodes[1]", no_op.format(c)): 4
           for c in ("add", "double", "sort_desc", "noise", "parity")},
        **{("add_nodes[1]", f"rules: a chain of {d} steps is not one expression"): 4
           for d in (2, 3, 4)}}
    items, rejects = control_augment(rows, rules)
    assert (len(items), _why(rejects)) == (52, noise)
    assert [it["origin_id"] for it in items] == [r["id"] for r in rows
                                                 if r["category"] != "noise"]
    for it in items:  # the exact rewriter reproduces every testbed answer
        original = next(r for r in rows if r["id"] == it["origin_id"])
        assert it["answer"] == original["answer"] and it["kind"] == "control"
    with pytest.raises(RuntimeError):
        check_counts(rows, items, [])


def test_translate_then_answer():
    rows = [_row("t", "What is 2+2?", "4", meta=json.dumps({"de": "Was ist 2+2?"})),
            _row("p", "reverse: abc", "cba", "reverse")]
    cfg = SitConfig(max_depth=1, translation_field="de")
    items, rejects = sit_augment(rows, RuleRewriter(seed=0), cfg, seed=0)
    assert not rejects
    got = {it["origin_id"]: it for it in items}
    t = got["t"]
    assert t["mode"] == "translate" and t["depth"] == 2
    assert "Was ist 2+2?" in t["messages"][0]["content"]
    assert t["messages"][1]["content"] == "What is 2+2?\n\n4"
    assert [c["mode"] for c in json.loads(t["chain"])] == ["original", "translate"]
    assert got["p"]["mode"] == "none" and got["p"]["depth"] == 1


def test_llm_rejects_malformed_outputs():
    replies = iter(["maybe", " Prefix. ", "keep", "- Decompose: split it", "", "42"])
    llm = LLMRewriter(Scripted(lambda _: next(replies)), GenParams())
    bad, good, keep, first_word, empty, digits = llm.choose_modes(["a"] * 6)
    assert bad == Reject("llm: mode reply is not one of decompose/prefix/suffix/keep", "maybe")
    assert (good, keep, first_word) == ("prefix", "keep", "decompose")
    assert (empty.raw, digits.raw) == ("", "42") and "not one of" in digits.reason
    task = "Translate the sentence into French: the cat sleeps."
    replies = iter(["", "  Do A  then b ", "New task: Do B first, then do a.",
                    "The answer is: le chat dort.",
                    "First find the verb of the sentence, then translate it into French: "
                    "the cat sleeps."])
    gen = Scripted(lambda _: next(replies))
    out = LLMRewriter(gen).rewrite_sit(["do a then b", "do a then b", "do a", task, task, "x"],
                                       ["prefix", "suffix", "prefix", "prefix", "prefix",
                                        "keep"])
    assert out[0] == Reject("llm: empty rewrite", "")
    assert out[1] == Reject("llm: rewrite repeats the input unchanged", "  Do A  then b ")
    assert out[2] == "Do B first, then do a."
    # an answer instead of a rewrite keeps none of translate/sentence/french/cat/sleeps
    assert out[3] == Reject("llm: rewrite keeps 0% of the input's content words, needs 50%",
                            "The answer is: le chat dort.")
    assert out[4].startswith("First find the verb")
    assert out[5] == Reject("llm: unknown SIT mode 'keep'")  # sit_augment never asks it
    assert gen.calls == [5]  # one batched call, nothing sent for the keep row
    verdicts = iter(["YES", "no.", "Sure, it does", "**Yes**, every step"])
    judge = LLMJudge(Scripted(lambda _: next(verdicts))).judge_following(["i"] * 4, ["r"] * 4)
    assert judge[0] is True and judge[1] is False and judge[3] is True
    assert judge[2] == Reject("llm: judge answer is not YES or NO", "Sure, it does")


def test_llm_tree_filters():
    base = "Write a short poem about the sea."
    long_ok = base + " " + " ".join(f"word{k}" for k in range(14))
    replies = {"short": base + " Add rhyme.", "long": base + " x" * 120,
               "banned": long_ok + " Use one tree node.", "ok": long_ok}
    cfg = TreeConfig(nodes=3, min_added_words=12, max_words=100)
    rows = [_row(k, base, "a poem") for k in replies]

    def reply(prompt):
        if prompt in (base, long_ok):
            return "fine answer"  # respond(): the instruction is the user turn
        return replies[current.pop(0)]

    current = list(replies)
    gen = Scripted(reply)
    items, rejects = tree_augment(rows, LLMRewriter(gen), cfg)
    reasons = {r["origin_id"]: r["reason"] for r in rejects}
    assert reasons == {
        "short": "tree: rewrite has 9 words, needs at least 19 (7 + 12)",
        "long": "tree: rewrite has 127 words, more than 100",
        "banned": "tree: leaked procedure word 'node'"}  # the first banned word found
    assert [it["origin_id"] for it in items] == ["ok"] and items[0]["answer"] == ""
    assert gen.calls == [4, 1]  # one batched call per round, one for the responses
    assert items[0]["complexity"] > complexity_score(base)


def test_llm_sit_batches_and_allows_words_already_present():
    def reply(prompt):
        if "Reply with one word" in prompt:
            return "suffix"
        if "Rewrite the task" in prompt:
            return task_of(prompt) + " Then summarise the result."
        return "done"

    gen = Scripted(reply)
    rows = [_row(f"r{k}", f"Describe tree number {k}.", "old") for k in range(6)]
    items, rejects = sit_augment(rows, LLMRewriter(gen), SitConfig(max_depth=3), seed=0)
    assert not rejects and len(items) == 6
    assert len(gen.calls) <= 1 + 2 * 2  # choose+rewrite per round (2 rounds max) + respond
    for it in items:
        assert it["messages"][0]["content"].count("Then summarise") == it["depth"] - 1
    tree_cfg = TreeConfig(min_added_words=0)
    grow = Scripted(lambda p: task_of(p) + " with a tree x" if "<task>" in p else "done")
    items, rejects = tree_augment(rows, LLMRewriter(grow), tree_cfg)
    assert not rejects  # 'tree' was already in every input


def test_llm_short_calls_cap_tokens_and_keep_truncated_replies():
    gen = Scripted(lambda p: "suffix" if "Reply with one word" in p else
                   "YES" if "<request>" in p else task_of(p) + " x" if "<task>" in p else "x")
    params = GenParams(max_new_tokens=300, temperature=0.5, reject_truncated=False)
    llm = LLMRewriter(gen, params)
    llm.choose_modes(["a"])
    LLMJudge(gen, params).judge_following(["a"], ["b"])
    llm.rewrite_sit(["a"], ["suffix"])
    llm.add_nodes(["a"], 3)
    llm.respond(["a"])
    short = GenParams(max_new_tokens=8, temperature=0.5, reject_truncated=False)
    full = GenParams(max_new_tokens=300, temperature=0.5, reject_truncated=True)
    assert gen.params == [short, short, full, full, full]
    tiny = LLMRewriter(gen, GenParams(max_new_tokens=4))
    assert tiny._short == GenParams(max_new_tokens=4, reject_truncated=False)


def test_sit_items_follow_the_rows_order():
    # translation rows are made first and depth-1 rows finish before growing ones: without
    # the final sort the items would come out grouped that way, not in the rows' order
    rows = _rows(8, categories=["reverse", "upper", "rev_upper"])
    rows.insert(3, _row("t", "What is 2+2?", "4", meta=json.dumps({"de": "Was ist 2+2?"})))
    items, rejects = sit_augment(rows, RuleRewriter(seed=2),
                                 SitConfig(max_depth=4, translation_field="de"), seed=5)
    assert not rejects
    assert [it["origin_id"] for it in items] == [r["id"] for r in rows]
    assert len({it["depth"] for it in items}) > 2  # rows finished in different rounds


def test_token_match_stays_under_and_close():
    rng = random.Random(0)
    sizes = [rng.randint(5, 200) for _ in range(300)]
    for target in (0, 150, 5000, 20000, 10**7):
        idx = token_match(sizes, sizes, target, seed=1)
        n, total = subset_size(sizes, sizes, idx)
        assert total <= target and n == len(idx)
        left = [sizes[k] for k in range(len(sizes)) if k not in set(idx)]
        assert all(s > target - total for s in left)  # nothing else fits: within one item
    assert token_match(sizes, sizes, 5000, seed=1) == token_match(sizes, lambda s: s, 5000, 1)
    assert token_match(sizes, sizes, 5000, seed=1) != token_match(sizes, sizes, 5000, seed=2)


def test_complexity_score():
    assert complexity_score("reverse upper: abc") == 2
    assert complexity_score("add: 3 4") == 1
    assert complexity_score("anything", json.dumps({"complexity": 6})) == 6
    assert complexity_score("x", json.dumps({"ops": ["reverse", "upper", "sort"]})) == 3
    assert complexity_score("Write a poem about the sea and the sea wind") == 4
