"""Decontamination: n-grams by hand, and planted overlaps through the pool stage on a real
local Ray instance."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq

from instructmix.data.decontam import build_index, gram_hashes, words
from instructmix.data.pool import run_pool
from instructmix.layout import RunLayout
from tests.conftest import REPO, tiny_config

A = ("Alice carefully folded seventeen paper cranes before the lighthouse keeper rang "
     "the evening bell across the quiet harbour town")  # 19 words
B = ("Compute the total weight of the cargo that the blue ship carried from Lisbon to "
     "Oslo during the winter storm")  # 20 words
C = ("Describe how a violin maker selects spruce for the soundboard and why the grain "
     "matters")  # 15 words
EVAL = [{"id": "e1", "instruction": A, "output": "x"},
        {"id": "e2", "instruction": " ".join(B.split()[:8]),
         "input": " ".join(B.split()[8:]), "output": "x"},
        {"id": "e3", "instruction": "Name a primary colour", "output": "red"},
        {"id": "e4", "instruction": C, "output": "x"}]
A13 = " ".join(A.split()[3:16]).upper() + ","  # 13 words of A, other case and punctuation
B13 = B.split()[4:17]  # crosses e2's instruction/input boundary too
C12 = " ".join(C.split()[:12])
POOL = [
    {"id": "clean1", "instruction": "Write a haiku about autumn rain", "output": "..."},
    {"id": "in_prompt", "instruction": f"Retell this: {A13} then stop.", "output": "ok"},
    {"id": "across_input", "instruction": "Solve. " + " ".join(B13[:7]),
     "input": " ".join(B13[7:]) + " please", "output": "42"},
    {"id": "in_response", "instruction": "Quote a sentence", "output": f"Sure: {A13}"},
    {"id": "only12", "instruction": f"{C12} in detail", "output": "wood"},
    {"id": "same_prompt", "instruction": "name a PRIMARY colour!", "output": "blue"},
    {"id": "five", "instruction": "Tell me: and why the grain matters here", "output": "it does"},
    {"id": "clean2", "instruction": "List three prime numbers", "output": "2, 3, 5"},
]


def test_words_lowercase_and_split_on_non_alphanumerics():
    assert words("Hello, World! It's 3.5 x_y Café--ok") == [
        "hello", "world", "it", "s", "3", "5", "x", "y", "café", "ok"]
    assert words(" ... ") == []


def test_gram_hashes_match_exactly_the_shared_ngrams():
    a, b = words("the quick brown fox jumps"), words("A quick, brown FOX sat")
    ha, hb = gram_hashes(a, 3), gram_hashes(b, 3)
    assert len(ha) == len(hb) == 3 and len(set(ha.tolist())) == 3
    # only "quick brown fox" is shared: a's gram 1 is b's gram 1
    assert set(ha.tolist()) & set(hb.tolist()) == {int(ha[1])} and ha[1] == hb[1]
    assert len(gram_hashes(a, 5)) == 1 and len(gram_hashes(a, 6)) == 0
    # word order matters
    assert not set(gram_hashes(words("fox brown quick"), 3).tolist()) & set(ha.tolist())


def test_gram_hashes_are_the_same_in_another_process():
    code = ("from instructmix.data.decontam import gram_hashes, words;"
            "print(gram_hashes(words('one two three four'), 2).tolist())")
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=REPO, check=True).stdout
    assert json.loads(out) == gram_hashes(words("one two three four"), 2).tolist()


def test_build_index_counts_short_items_and_keeps_the_first_item_per_ngram():
    rows = [{"id": i, "source": s, "origin": f"f:{i}",
             "messages": [{"role": "user", "content": t}, {"role": "assistant", "content": "x"}]}
            for i, s, t in [("a", "s1", "one two three four"), ("b", "s1", "one two"),
                            ("c", "s2", "two three four five")]]
    index, counts = build_index(rows, 3)
    assert counts == {"items": {"s1": 2, "s2": 1}, "too_short": {"s1": 1}}
    # grams: a: (one two three) (two three four); c: (two three four) (three four five)
    assert len(index["keys"]) == 3 and sorted(index["item"].tolist()) == [0, 0, 2]
    assert len(index["prompt_keys"]) == 3


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(tmp_path, name, **decontamination):
    _write(tmp_path / "pool.jsonl", POOL)
    _write(tmp_path / "evalset.jsonl", EVAL)
    cfg = tiny_config(tmp_path / name, pool={
        "sources": [{"path": str(tmp_path / "pool.jsonl"), "name": "pool"}],
        "eval_sources": [{"path": str(tmp_path / "evalset.jsonl"), "name": "evalset"}],
        "num_clusters": 2, "decontamination": decontamination})
    run_pool(cfg, RunLayout(tmp_path / name, "pool"))
    out = tmp_path / name / "pool"
    stats = json.loads((out / "stats.json").read_text())
    lines = (out / "rejected.jsonl").read_text().splitlines()
    rejected = {r["id"]: r for r in map(json.loads, lines) if r.get("split") != "eval"}
    accepted = {r["id"] for r in pq.read_table(out / "shards").to_pylist()}
    # counted from the files: every pool row is in the shards or rejected.jsonl, once
    assert len(accepted) + len(rejected) == len(POOL) == stats["read"]
    assert not accepted & set(rejected) and stats["counts_add_up"]
    assert len(accepted) == stats["accepted"] and len(rejected) == stats["rejected"]
    return stats, rejected, accepted


def test_planted_overlaps_are_rejected_with_the_eval_item(ray_local, tmp_path):
    stats, rejected, accepted = _run(tmp_path, "n13")
    assert set(rejected) == {"in_prompt", "across_input", "in_response"}
    assert {r["kind"] for r in rejected.values()} == {"contaminated"}
    reason = rejected["in_prompt"]["reason"]
    assert reason.startswith("13-gram overlap with eval item 'e1' (eval source 'evalset', ")
    assert reason.endswith(f'evalset.jsonl:1): "{A13.lower()[:-1]}"')
    assert "'e2'" in rejected["across_input"]["reason"]
    assert " ".join(B13).lower() in rejected["across_input"]["reason"]
    assert "'e1'" in rejected["in_response"]["reason"]
    assert rejected["in_prompt"]["raw_text"].startswith("Retell this:")
    assert stats["rejected_by_reason"] == {"contaminated": 3}
    assert stats["decontamination"] == {
        "enabled": True, "ngram": 13, "pool_text": "prompt+response", "eval_items": 4,
        "eval_items_indexed": 3, "eval_items_too_short": 1, "pool_rows_rejected": 3,
        "per_eval_source": {"evalset": {"items": 4, "too_short": 1, "pool_rows_rejected": 3}},
        "eval_items_duplicating_pool_prompts": {"count": 1, "ids": ["e3"]}}
    assert stats["eval"]["accepted"] == 4  # the eval set itself is untouched


def test_ngram_and_pool_text_are_configurable(ray_local, tmp_path):
    stats, rejected, _ = _run(tmp_path, "n5", ngram=5, pool_text="prompt")
    # n=5 also catches the 12-word and the 5-word overlaps; the response is not searched
    assert set(rejected) == {"in_prompt", "across_input", "only12", "five"}
    assert rejected["only12"]["reason"].startswith("5-gram overlap with eval item 'e4'")
    assert rejected["five"]["reason"].endswith('evalset.jsonl:4): "and why the grain matters"')
    dc = stats["decontamination"]
    assert dc["pool_rows_rejected"] == 4 == stats["rejected_by_reason"]["contaminated"]
    assert dc["eval_items_too_short"] == 1  # e3 has 4 words


def test_disabled_rejects_nothing(ray_local, tmp_path):
    stats, rejected, accepted = _run(tmp_path, "off", enabled=False)
    assert not rejected and accepted == {r["id"] for r in POOL}
    assert stats["decontamination"] == {"enabled": False}
