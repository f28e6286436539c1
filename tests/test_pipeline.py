"""The whole pipeline on a real local Ray instance, and resume between stages."""

import json

import pytest

from instructmix.pipeline import run_all

from .conftest import tiny_config

pytestmark = pytest.mark.slow


def test_end_to_end_then_resume_between_stages(ray_local, tmp_path):
    cfg = tiny_config(tmp_path / "run")
    first = run_all(cfg, stop_after="select")  # "interrupted" after select
    assert list(first) == ["pool", "model", "probe", "select"]
    assert first["probe"]["summary"]["skipped"]  # iid needs no probes
    done = run_all(cfg)
    assert all(done[s].get("skipped") for s in ("pool", "model", "probe", "select"))
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
