"""The whole pipeline on a real local Ray instance, and resume between stages."""

import json

import pytest

from instructmix.pipeline import run_all
from tests.conftest import tiny_config

pytestmark = pytest.mark.slow


def test_end_to_end_then_resume_between_stages(ray_local, tmp_path):
    cfg = tiny_config(tmp_path / "run")
    first = run_all(cfg, stop_after="select")  # "interrupted" after select
    assert list(first) == ["pool", "model", "probe", "policy", "select"]
    assert first["probe"]["summary"]["skipped"]  # iid needs no probes
    assert first["policy"]["summary"]["skipped"]  # nor a RAISE policy
    done = run_all(cfg)
    assert all(done[s].get("skipped") for s in ("pool", "model", "probe", "policy", "select"))
    assert not any(done[s].get("skipped") for s in ("train", "eval", "report"))
    run = tmp_path / "run"
    results = json.loads((run / "eval" / "results.json").read_text())
    assert set(results["per_category"]) == set(
        json.loads((run / "pool" / "ground_truth.json").read_text())["categories"])
    for scores in results["per_category"].values():
        assert scores["n"] == 4 and 0 <= scores["exact_match"] <= 1 and scores["loss"] > 0
    report = json.loads((run / "report" / "report.json").read_text())
    assert report["eval"]["results"]["per_category"] == results["per_category"]
    assert (run / "report" / "report.html").stat().st_size > 1000
    # a changed config re-runs the stages it feeds, and only those
    again = run_all(tiny_config(tmp_path / "run", eval={"max_new_tokens": 4}))
    assert all(again[s].get("skipped") for s in ("pool", "model", "probe", "select", "train"))
    assert not again["eval"].get("skipped") and not again["report"].get("skipped")
    # augmentation settings do not touch a run that trains on the plain selection
    plain = run_all(tiny_config(tmp_path / "run", eval={"max_new_tokens": 4},
                                augment={"tree": {"nodes": 5}, "sit": {"max_depth": 2}}))
    assert all(plain[s].get("skipped") for s in ("augment", "train", "eval", "compare"))


def test_alpaca_pool_and_eval_set_end_to_end(ray_local, tmp_path):
    """A user's data through config alone: sharded Alpaca files without ids as one named
    source, an Alpaca eval set without answers; exact match is scored against the reference
    responses and token accuracy reaches every table."""
    from instructmix.config import TestbedConfig
    from instructmix.data.testbed import generate

    train, evals = generate(0, TestbedConfig(items_per_category=30, eval_per_category=4,
                                             categories=["reverse", "upper", "add"]))
    data = tmp_path / "data"
    data.mkdir()

    def alpaca(row):
        return json.dumps({"instruction": row["messages"][0]["content"],
                           "output": row["messages"][1]["content"], "category": row["category"]})

    for k in (0, 1):
        (data / f"part-{k}.jsonl").write_text("".join(alpaca(r) + "\n" for r in train[k::2]))
    (tmp_path / "eval.jsonl").write_text("".join(alpaca(r) + "\n" for r in evals))
    cfg = tiny_config(tmp_path / "run",
                      pool={"sources": [{"path": str(data), "name": "mydata"}],
                            "eval_sources": [{"path": str(tmp_path / "eval.jsonl")}]},
                      select={"budget": 64}, compare={"strategies": ["iid"], "seeds": [0]})
    run_all(cfg)
    run = tmp_path / "run"
    stats = json.loads((run / "pool" / "stats.json").read_text())
    assert stats["read"] == stats["accepted"] == 90 and stats["eval"]["accepted"] == 12
    results = json.loads((run / "eval" / "results.json").read_text())
    assert results["macro_exact_match"] is not None
    for scores in results["per_category"].values():
        assert scores["reference"] == "response" and 0 <= scores["exact_match"] <= 1
        assert 0 <= scores["token_accuracy"] <= 1
    assert 0 <= results["macro_token_accuracy"] <= 1
    compare = json.loads((run / "compare" / "results.json").read_text())
    cell = compare["cells"][0]
    assert set(cell["exact_match"]) == set(cell["token_accuracy"]) == {"reverse", "upper", "add"}
    agg = compare["strategies"]["iid"]
    assert agg["macro_exact_match"] is not None and agg["macro_token_accuracy"]["n"] == 1
    table = (run / "compare" / "table.md").read_text()
    assert "| **macro** | **" in table and "token accuracy, upper" in table
    assert "n/a" not in table
    page = (run / "report" / "report.html").read_text()
    assert "Token accuracy per category" in page and "token accuracy, macro" in page
