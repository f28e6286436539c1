"""The run report from a fake run directory (no Ray, no model)."""

from __future__ import annotations

import json
import math

from instructmix.layout import COMPARE, REPORT, RunLayout
from instructmix.report import run_report
from instructmix.report.figures import bar_chart, line_chart
from tests.report.fakes import (  # noqa: F401 - RESULTS, fake_run: used by other test modules
    CATS,
    HISTORY,
    RESULTS,
    SELECT_SUMMARY,
    STATS,
    TRAIN_SUMMARY,
    fake_run,
)


def report_of(root, cfg):
    """(summary, report.json, report.html) of the report stage run on `root`."""
    summary = run_report(cfg, RunLayout(root, "report"))
    lay = RunLayout(root)
    return summary, json.loads(lay.read_text(REPORT.json)), lay.read_text(REPORT.html)


def test_report_round_trip(tmp_path):
    cfg = fake_run(tmp_path)
    summary, rep, page = report_of(tmp_path, cfg)
    assert summary["macro_exact_match"] == 0.5

    for key in ["config", "pool", "selection", "training", "eval", "stages", "generated_at"]:
        assert key in rep
    assert rep["config"] == cfg.model_dump(mode="json")
    assert rep["pool"] == STATS
    assert rep["selection"]["strategy"] == "iid"
    assert rep["selection"]["summary"] == SELECT_SUMMARY
    assert rep["training"]["summary"] == TRAIN_SUMMARY
    assert rep["training"]["history"] == HISTORY
    assert rep["eval"]["results"] == RESULTS
    assert rep["stages"] == {"pool": 1.5, "model": 0.2, "select": 0.7, "train": 9.0, "eval": 3.0,
                             "probe": None, "policy": None, "augment": None, "compare": None}
    assert rep["problems"] == [] and rep["missing"] == []

    # eval scores + eval loss, training loss + throughput, selection bars, pool bars
    assert page.count("<svg") >= 6
    for cat in CATS:
        assert cat in page
    assert "<script" not in page and "http" not in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt; &amp; y" in page
    assert page.count("add-") == 3  # at most three example predictions per category
    assert "<th>iid</th>" in page
    assert "too_long" in page and "rev_upper" in page
    assert "Decontamination against the eval set" in page and "eval-dup-7" in page
    assert "not available" not in page
    # stages that did not run say so
    assert page.count("not run: the") >= 3


def test_report_without_eval_results(tmp_path):
    cfg = fake_run(tmp_path, with_eval_results=False)
    summary, rep, page = report_of(tmp_path, cfg)
    assert summary["macro_exact_match"] is None
    assert f"not available: {tmp_path / 'eval' / 'results.json'}" in page
    assert "Training loss" in page
    assert rep["eval"]["results"] is None
    assert "no eval results" in page


def test_empty_run_dir_does_not_crash(tmp_path):
    (tmp_path / "report").mkdir()
    from instructmix.config import RunConfig

    _, rep, page = report_of(tmp_path, RunConfig(run_dir=str(tmp_path)))
    assert "not available" in page
    assert "Compare stage not run" in page
    assert rep["problems"] == [] and len(rep["missing"]) == 4


def test_figure_helpers_handle_missing_values():
    svg = bar_chart(["a", "b"], [None, float("nan")], title="t", xlabel="x", vmax=1.0)
    assert svg.count("n/a</text>") == 2
    assert "no data" in line_chart({"s": ([], [])}, title="t", xlabel="x", ylabel="y")
    assert "no data" in line_chart({"s": ([1, 2], [None, math.nan])}, title="t", xlabel="x",
                                   ylabel="y")
    one = line_chart({"s": ([1], [2.0])}, title="t", xlabel="x", ylabel="y")
    assert "no data" not in one and "line2d" in one  # the single point is drawn


def test_a_one_seed_arm_keeps_its_verdict_after_the_json_round_trip(tmp_path):
    from instructmix.report.compare import _verdict_blocks

    lay = RunLayout(tmp_path)
    (tmp_path / "compare").mkdir()
    one = {"differences": [0.1], "mean": 0.1, "lo": -math.inf, "hi": math.inf,
           "beats": False, "loses": False, "seeds": [0], "level": 0.95}
    lay.write_json(COMPARE.results, {"paired": {"exact_match": {"one": one}}})
    stored = json.loads((tmp_path / "compare" / "results.json").read_text())
    assert stored["paired"]["exact_match"]["one"]["lo"] is None  # ±inf is stored as null
    [block] = _verdict_blocks(stored["paired"]["exact_match"], "iid")
    assert "one seed gives no interval" in json.dumps(block, ensure_ascii=False)
