"""The pool stage on a real local Ray instance."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from instructmix.data.pool import run_pool

from .conftest import SHARED_DATA, tiny_config

BAD_LINES = [
    b'{"id": "a1", "instruction": "Say hi", "output": "hi", "category": "greet"}',
    b'{"id": "a2", "instruction": "Add 2 and 2", "output": "4"',  # malformed JSON
    b'{"id": "a3", "output": "no instruction"}',  # missing field
    b'{"id": "a4", "instruction": ["a", "list"], "output": "x"}',  # wrong type
    b'{"id": "a1", "instruction": "Same id again", "output": "dup"}',  # duplicate id
    b"",  # empty line
    b'{"id": "a6", "instruction": "caf\xe9", "output": "x"}',  # not UTF-8
    b'{"id": "a7", "messages": [{"role": "user", "content": "hello"},'
    b' {"role": "assistant", "content": "hey"}], "category": "greet"}',
    b'{"id": "a8", "messages": [{"role": "user", "content": "no response"}]}',
    b"[1, 2, 3]",
    b'{"instruction": "Name a colour", "output": "red", "category": "colours"}',
]


def _run(tmp_path, sources, **pool):
    cfg = tiny_config(tmp_path / "run", pool={"sources": sources, **pool})
    out = tmp_path / "run" / "pool"
    out.mkdir(parents=True)
    summary = run_pool(cfg, out)
    stats = json.loads((out / "stats.json").read_text())
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    accepted = pq.read_table(out / "shards").to_pylist()
    return summary, stats, rejected, accepted


def test_bad_rows_are_quarantined_with_reasons(ray_local, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(BAD_LINES) + b"\n")
    summary, stats, rejected, accepted = _run(tmp_path, [{"path": str(path)}])
    assert stats["read"] == len(BAD_LINES) == stats["accepted"] + stats["rejected"]
    assert stats["counts_add_up"] and summary["rejected"] == len(rejected) == 8
    assert sorted(r["id"] for r in accepted)[:2] == ["a1", "a7"]
    assert next(r for r in accepted if r["id"] == "a1")["messages"][-1]["content"] == "hi"
    reasons = {r["origin"].rsplit(":", 1)[1]: r["reason"] for r in rejected}
    assert reasons["2"].startswith("malformed JSON")
    assert reasons["3"] == "missing field 'instruction'"
    assert "must be a string" in reasons["4"]
    assert reasons["5"].startswith("duplicate id 'a1'") and reasons["5"].endswith(":1)")
    assert reasons["6"] == "empty line"
    assert reasons["7"].startswith("not valid UTF-8")
    assert "last message" in reasons["9"] and "JSON object" in reasons["10"]
    assert all(r["reason"] for r in rejected)
    for row in accepted:
        assert len(row["embedding"]) == 384 and row["n_tokens"] > 0 and row["category"]


def test_parquet_mapping_and_kmeans_categories(ray_local, tmp_path):
    rows = [{"q": f"question {k} about {'cats' if k % 2 else 'numbers'}", "a": str(k)}
            for k in range(30)]
    rows.append({"q": None, "a": "x"})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data.parquet")
    src = {"path": str(tmp_path / "data.parquet"), "format": "mapping",
           "mapping": {"instruction": "q", "output": "a"}}
    _, stats, rejected, accepted = _run(tmp_path, [src], num_clusters=2)
    assert stats["read"] == 31 and stats["accepted"] == 30 and len(rejected) == 1
    assert rejected[0]["reason"] == "missing field 'instruction'"
    assert stats["categories_assigned_by_kmeans"] == 30
    assert {r["category"] for r in accepted} == {"cluster-00", "cluster-01"}


def test_json_array_file(ray_local, tmp_path):
    rows = [{"instruction": f"say {k}", "output": str(k)} for k in range(5)] + [{"x": 1}]
    (tmp_path / "rows.json").write_text(json.dumps(rows, indent=2))
    _, stats, rejected, accepted = _run(tmp_path, [{"path": str(tmp_path / "rows.json")}])
    assert stats["read"] == 6 and len(accepted) == 5
    assert rejected[0]["origin"].endswith("rows.json:item6")


def test_testbed_pool_writes_eval_and_ground_truth(ray_local, tmp_path):
    summary, stats, rejected, accepted = _run(tmp_path, [])
    assert summary["accepted"] == 9 * 40 and not rejected
    assert (tmp_path / "run" / "pool" / "ground_truth.json").is_file()
    evals = pq.read_table(tmp_path / "run" / "pool" / "eval.parquet").to_pylist()
    assert len(evals) == 9 * 4 and all(r["answer"] for r in evals)


SHARED = [
    ("niv2/niv2_definitions_pos_example.jsonl", {"format": "alpaca"}),
    ("t0_p3_subset/t0_train_50k_first50_per_template.jsonl", {"format": "alpaca"}),
    ("flan_cot/flan_v2_cot_train.jsonl",
     {"format": "mapping", "mapping": {"instruction": "question", "output": "rationale",
                                       "answer": "answer", "category": "category"}}),
]


@pytest.mark.parametrize("rel, fmt", SHARED, ids=["niv2", "t0", "flan_cot"])
def test_shared_real_data(ray_local, tmp_path, rel, fmt):
    path = SHARED_DATA / rel
    if not path.is_file():
        pytest.skip(f"shared data not present: {path}")
    _, stats, rejected, accepted = _run(tmp_path, [{"path": str(path), "limit": 300, **fmt}])
    assert stats["read"] == 300 == stats["accepted"] + stats["rejected"]
    assert stats["accepted"] > 250
    assert all(r["reason"] for r in rejected)
    assert all(r["category"] and r["messages"][0]["role"] == "user" for r in accepted)
